//! Device authentication to a relay: the signed challenge transcript (SPEC.md §9.2).
//!
//! The relay opens every connection with a [`ServerFrame::Challenge`](super::ServerFrame) carrying
//! a fresh random nonce. The device answers with [`Request::Authenticate`](super::Request) or
//! [`Request::Register`](super::Request), signing [`auth_transcript`] with its device signing key.
//! The transcript binds the relay's name (so a signature for one relay is useless at another),
//! the nonce (so it cannot be replayed) and, when the transport offers it, the TLS channel (so a
//! man in the middle terminating TLS cannot forward it).

use thiserror::Error;

use crate::consts::{MAX_RELAY_NAME_LEN, labels};
use crate::keys::{DeviceId, DeviceKeyPair, DeviceSigningPublicKey};

/// Why an authentication transcript could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The relay name is longer than [`MAX_RELAY_NAME_LEN`] bytes.
    #[error("relay name exceeds {MAX_RELAY_NAME_LEN} bytes")]
    RelayNameTooLong,
}

/// The bytes a device signs to authenticate to a relay.
///
/// ```text
/// transcript = "Kith-v1 relay auth" || len(relay_name):u8 || relay_name
///              || nonce:[32] || device_id:[16]
///              || (0x00 | 0x01 || channel_binding:[32])
/// ```
///
/// `channel_binding` is the 32-byte TLS exporter value for the connection when both ends can
/// compute it (`None` when TLS is terminated by a proxy in front of the relay).
pub fn auth_transcript(
    relay_name: &str,
    nonce: &[u8; 32],
    channel_binding: Option<&[u8; 32]>,
    device_id: &DeviceId,
) -> Result<Vec<u8>, AuthError> {
    if relay_name.len() > MAX_RELAY_NAME_LEN {
        return Err(AuthError::RelayNameTooLong);
    }
    // MAX_RELAY_NAME_LEN < 256, so this conversion cannot fail; the error keeps it panic-free.
    let name_len = u8::try_from(relay_name.len()).map_err(|_| AuthError::RelayNameTooLong)?;
    let mut out =
        Vec::with_capacity(labels::RELAY_AUTH.len() + 1 + relay_name.len() + 32 + 16 + 33);
    out.extend_from_slice(labels::RELAY_AUTH);
    out.push(name_len);
    out.extend_from_slice(relay_name.as_bytes());
    out.extend_from_slice(nonce);
    out.extend_from_slice(device_id.as_bytes());
    match channel_binding {
        None => out.push(0x00),
        Some(binding) => {
            out.push(0x01);
            out.extend_from_slice(binding);
        }
    }
    Ok(out)
}

/// Signs the authentication transcript with `device`'s signing key.
///
/// `relay_name` must be the name the device itself meant to connect to (from its own
/// configuration), not the name the relay announced in its challenge.
pub fn sign_auth(
    device: &DeviceKeyPair,
    relay_name: &str,
    nonce: &[u8; 32],
    channel_binding: Option<&[u8; 32]>,
    device_id: &DeviceId,
) -> Result<[u8; 64], AuthError> {
    let transcript = auth_transcript(relay_name, nonce, channel_binding, device_id)?;
    Ok(device.sign(&transcript))
}

/// Whether `signature` is `key`'s signature over the authentication transcript. A relay name
/// over the limit never verifies.
pub fn verify_auth(
    key: &DeviceSigningPublicKey,
    relay_name: &str,
    nonce: &[u8; 32],
    channel_binding: Option<&[u8; 32]>,
    device_id: &DeviceId,
    signature: &[u8; 64],
) -> bool {
    auth_transcript(relay_name, nonce, channel_binding, device_id)
        .is_ok_and(|transcript| key.verify(&transcript, signature))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::fixtures::Fixture;

    const NONCE: [u8; 32] = [7; 32];
    const BINDING: [u8; 32] = [9; 32];

    #[test]
    fn transcript_layout() {
        let id = DeviceId::from_bytes([1; 16]);
        let t = auth_transcript("relay.example", &NONCE, None, &id).unwrap();
        let expected = [
            &b"Kith-v1 relay auth"[..],
            &[13],
            b"relay.example",
            &NONCE,
            &[1; 16],
            &[0],
        ]
        .concat();
        assert_eq!(t, expected);
        let t = auth_transcript("", &NONCE, Some(&BINDING), &id).unwrap();
        let expected = [
            &b"Kith-v1 relay auth"[..],
            &[0],
            &NONCE,
            &[1; 16],
            &[1],
            &BINDING,
        ]
        .concat();
        assert_eq!(t, expected);
    }

    #[test]
    fn relay_name_over_the_limit_is_an_error() {
        let id = DeviceId::from_bytes([1; 16]);
        assert!(auth_transcript(&"a".repeat(MAX_RELAY_NAME_LEN), &NONCE, None, &id).is_ok());
        for len in [MAX_RELAY_NAME_LEN + 1, 256, 10_000] {
            let name = "a".repeat(len);
            assert_eq!(
                auth_transcript(&name, &NONCE, None, &id),
                Err(AuthError::RelayNameTooLong)
            );
        }
    }

    #[test]
    fn sign_verify_round_trip() {
        let f = Fixture::new(20);
        let key = f.device.signing_public();
        for binding in [None, Some(&BINDING)] {
            let sig = sign_auth(&f.device, "relay.example", &NONCE, binding, &f.device_id).unwrap();
            assert!(verify_auth(
                &key,
                "relay.example",
                &NONCE,
                binding,
                &f.device_id,
                &sig
            ));
        }
    }

    #[test]
    fn verify_fails_on_any_other_input() {
        let f = Fixture::new(21);
        let other = Fixture::new(22);
        let key = f.device.signing_public();
        let id = f.device_id;
        let sig = sign_auth(&f.device, "relay.example", &NONCE, Some(&BINDING), &id).unwrap();
        assert!(!verify_auth(
            &key,
            "relay.evil",
            &NONCE,
            Some(&BINDING),
            &id,
            &sig
        ));
        assert!(!verify_auth(
            &key,
            "relay.example",
            &[8; 32],
            Some(&BINDING),
            &id,
            &sig
        ));
        assert!(!verify_auth(
            &key,
            "relay.example",
            &NONCE,
            Some(&BINDING),
            &other.device_id,
            &sig
        ));
        assert!(!verify_auth(
            &key,
            "relay.example",
            &NONCE,
            Some(&[0; 32]),
            &id,
            &sig
        ));
        assert!(!verify_auth(&key, "relay.example", &NONCE, None, &id, &sig));
        assert!(!verify_auth(
            &other.device.signing_public(),
            "relay.example",
            &NONCE,
            Some(&BINDING),
            &id,
            &sig
        ));
        let long = "a".repeat(MAX_RELAY_NAME_LEN + 1);
        assert!(!verify_auth(&key, &long, &NONCE, Some(&BINDING), &id, &sig));
    }

    #[test]
    fn sign_rejects_long_relay_name() {
        let f = Fixture::new(23);
        let long = "a".repeat(MAX_RELAY_NAME_LEN + 1);
        assert_eq!(
            sign_auth(&f.device, &long, &NONCE, None, &f.device_id),
            Err(AuthError::RelayNameTooLong)
        );
    }
}
