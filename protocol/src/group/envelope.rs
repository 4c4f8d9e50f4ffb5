//! The group envelope (SPEC.md §14.7): hides the group, the sender and the epoch from the
//! relay, which stores the body once for all recipient devices.
//!
//! ```text
//! envelope_key  = HKDF-SHA256(salt = 32 zero bytes, ikm = envelope_secret,
//!                             info = "Kith-v1 group envelope" || group_id:[16] || epoch:u64 BE)
//! GroupEnvelope = version:u8 (= GROUP_ENVELOPE_VERSION = 0x11) || nonce:[24]
//!                 || XChaCha20-Poly1305(envelope_key, nonce, pad(GroupMessage), AD = version)
//! ```
//!
//! The envelope names no group: a receiver tries the current (and previous) state of each of
//! its groups in turn (trial decryption). Each try is one HKDF and one Poly1305 check over the
//! envelope, a few microseconds for short messages, so a client in a few dozen groups opens
//! an envelope in well under a millisecond; a client caches the envelope keys per state.

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{Key, KeyInit, XChaCha20Poly1305, XNonce};
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use super::message::GroupMessage;
use super::verify::VerifiedGroupState;
use super::{GroupOpenError, GroupSealError};
use crate::consts::{GROUP_ENVELOPE_VERSION, MAX_BODY_LEN, labels};
use crate::kdf::hkdf_sha256;
use crate::padding;

/// Bytes of a group envelope around the padded message: version, nonce, Poly1305 tag.
const GROUP_ENVELOPE_OVERHEAD: usize = 1 + 24 + 16;

/// Seals `message` for the members of `state`: pads it, encrypts it under the state's
/// envelope key with a fresh random nonce. The message must belong to the state's group and
/// epoch.
pub fn seal_group<R: CryptoRng + ?Sized>(
    state: &VerifiedGroupState,
    message: &GroupMessage,
    rng: &mut R,
) -> Result<Vec<u8>, GroupSealError> {
    let group = state.state();
    if message.group_id() != group.group_id() || message.epoch() != group.epoch() {
        return Err(GroupSealError::WrongGroupState);
    }
    let mut plaintext = Zeroizing::new(message.to_bytes());
    let len = GROUP_ENVELOPE_OVERHEAD + padding::padded_len(plaintext.len());
    if len > MAX_BODY_LEN {
        return Err(GroupSealError::TooLarge {
            len,
            max: MAX_BODY_LEN,
        });
    }
    padding::pad(&mut plaintext);
    let mut nonce = [0u8; 24];
    rng.fill_bytes(&mut nonce);
    // Fails only for inputs over 256 GiB; the envelope is capped at MAX_BODY_LEN above.
    #[allow(clippy::expect_used)]
    let ciphertext = cipher(state)
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: &plaintext,
                aad: &[GROUP_ENVELOPE_VERSION],
            },
        )
        .expect("length is bounded");
    let mut envelope = Vec::with_capacity(len);
    envelope.push(GROUP_ENVELOPE_VERSION);
    envelope.extend_from_slice(&nonce);
    envelope.extend_from_slice(&ciphertext);
    Ok(envelope)
}

/// Opens a group envelope with `state`: checks the AEAD and the padding, decodes the group
/// message and checks that it names the state's group and epoch. An envelope of another group
/// or epoch fails with [`GroupOpenError::Authentication`]; try the next state.
pub fn open_group(
    state: &VerifiedGroupState,
    envelope: &[u8],
) -> Result<GroupMessage, GroupOpenError> {
    if envelope.len() < GROUP_ENVELOPE_OVERHEAD || envelope.len() > MAX_BODY_LEN {
        return Err(GroupOpenError::Malformed);
    }
    let (version, rest) = envelope.split_at(1);
    if version[0] != GROUP_ENVELOPE_VERSION {
        return Err(GroupOpenError::UnsupportedVersion { found: version[0] });
    }
    let (nonce, ciphertext) = rest.split_at(24);
    let mut nonce_bytes = [0u8; 24];
    nonce_bytes.copy_from_slice(nonce);
    let padded = cipher(state)
        .decrypt(
            &XNonce::from(nonce_bytes),
            Payload {
                msg: ciphertext,
                aad: version,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| GroupOpenError::Authentication)?;
    let bytes = padding::unpad(&padded).ok_or(GroupOpenError::Authentication)?;
    let message = GroupMessage::from_bytes(bytes).map_err(|_| GroupOpenError::Authentication)?;
    let group = state.state();
    if message.group_id() != group.group_id() || message.epoch() != group.epoch() {
        return Err(GroupOpenError::Authentication);
    }
    Ok(message)
}

/// The envelope key of the state's group and epoch.
fn cipher(state: &VerifiedGroupState) -> XChaCha20Poly1305 {
    let key = envelope_key(state);
    XChaCha20Poly1305::new(&Key::from(*key))
}

/// `HKDF-SHA256(zero salt, envelope_secret, "Kith-v1 group envelope" || group_id || epoch BE)`.
fn envelope_key(state: &VerifiedGroupState) -> Zeroizing<[u8; 32]> {
    let group = state.state();
    let info = [
        labels::GROUP_ENVELOPE_INFO,
        group.group_id().as_bytes(),
        &group.epoch().to_be_bytes(),
    ]
    .concat();
    hkdf_sha256::<32>(&[0u8; 32], group.envelope_secret().as_bytes(), &info)
}
