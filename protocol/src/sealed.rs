//! Sealed sender (SPEC.md §7): the relay sees a recipient device id and an opaque blob; the
//! sender's certificate travels inside the encryption.
//!
//! ```text
//! e      = fresh X25519 key;  E = e·G;  IK_R = recipient identity key
//! S      = X25519(e, IK_R)   (must be contributory)
//! k || n = HKDF-SHA256(salt = E || IK_R, ikm = S, info = "Kith-v1 sealed sender") → 32 + 12 bytes
//! AD     = "Kith-v1 sealed" || version:u8 || IK_R || E
//! Envelope = version:u8 (= 1) || E:[32] || ChaCha20-Poly1305(k, n, pad(SealedContent), AD)
//! SealedContent = sender_certificate:DeviceCertificate || recipient_account:[32]
//!                 || recipient_device:[16] || message:SessionMessage (without its version byte)
//! ```

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, KeyInit, Nonce};
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use x25519_dalek::StaticSecret;
use zeroize::Zeroizing;

use crate::consts::{MAX_BODY_LEN, PROTOCOL_VERSION, labels};
use crate::dh::{dh, public_of};
use crate::encoding;
use crate::kdf::{hkdf_sha256, split_key_nonce};
use crate::keys::{
    AccountPublicKey, DeviceCertificate, DeviceId, DeviceKeyPair, VerifiedCertificate,
};
use crate::padding;
use crate::session::SessionMessage;

/// Overhead of an envelope around the padded content: version, `E`, Poly1305 tag.
const ENVELOPE_OVERHEAD: usize = 1 + 32 + 16;

#[derive(Serialize, Deserialize)]
struct SealedContent {
    sender_certificate: DeviceCertificate,
    recipient_account: AccountPublicKey,
    recipient_device: DeviceId,
    message: SessionMessage,
}

/// A sealed envelope, opened: the verified sender and the session message.
#[derive(Debug, Clone)]
pub struct OpenedEnvelope {
    /// The sender's certificate, signature checked. Whether this account is who the user thinks
    /// it is, is for safety numbers to tell.
    pub sender: VerifiedCertificate,
    /// The session message, to pass to [`crate::Session::decrypt`] or
    /// [`crate::Session::respond`].
    pub message: SessionMessage,
}

/// Why an envelope could not be sealed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The recipient's identity key is of small order.
    #[error("the recipient identity key is non-contributory")]
    NonContributoryKey,
    /// The sealed envelope would exceed the relay's body limit.
    #[error("envelope of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Envelope length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// Why an envelope could not be opened. Authentication failures are one variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Too short, too long, or not an envelope.
    #[error("malformed envelope")]
    Malformed,
    /// Another protocol version.
    #[error("unsupported envelope version {found}")]
    UnsupportedVersion {
        /// Version found.
        found: u8,
    },
    /// Not sealed to this device, tampered with, or the sender certificate does not verify.
    #[error("envelope authentication failed")]
    Authentication,
}

/// Seals `message` from `sender` (this device's certificate) to `recipient` (the peer device's
/// verified certificate).
pub fn seal<R: CryptoRng + ?Sized>(
    sender: &VerifiedCertificate,
    recipient: &VerifiedCertificate,
    message: &SessionMessage,
    rng: &mut R,
) -> Result<Vec<u8>, SealError> {
    let content = SealedContent {
        sender_certificate: sender.certificate().clone(),
        recipient_account: *recipient.account_key(),
        recipient_device: recipient.device_id(),
        message: message.clone(),
    };
    // Sized for the padding up front so padding never reallocates (and so never leaves an
    // unzeroized copy of the plaintext behind).
    let mut plaintext = encoding::encode_zeroizing_with_capacity(&content, padding::padded_len);
    let len = ENVELOPE_OVERHEAD + padding::padded_len(plaintext.len());
    if len > MAX_BODY_LEN {
        return Err(SealError::TooLarge {
            len,
            max: MAX_BODY_LEN,
        });
    }
    padding::pad(&mut plaintext);
    let ephemeral = StaticSecret::random_from_rng(rng);
    let ephemeral_public = public_of(&ephemeral);
    let recipient_key = recipient.identity_key().as_bytes();
    let shared = dh(&ephemeral, recipient_key).map_err(|_| SealError::NonContributoryKey)?;
    let cipher = EnvelopeCipher::new(&shared, &ephemeral_public, recipient_key);
    let mut envelope = Vec::with_capacity(len);
    envelope.push(PROTOCOL_VERSION);
    envelope.extend_from_slice(&ephemeral_public);
    envelope.extend_from_slice(&cipher.seal(&plaintext));
    Ok(envelope)
}

/// Opens an envelope sealed to this device (`local_device`, certified by `local_certificate`).
///
/// Checks the AEAD, the padding, the sender certificate's signature, and that the envelope
/// names this account and device as recipient.
pub fn open(
    local_device: &DeviceKeyPair,
    local_certificate: &VerifiedCertificate,
    envelope: &[u8],
) -> Result<OpenedEnvelope, OpenError> {
    if envelope.len() < ENVELOPE_OVERHEAD || envelope.len() > MAX_BODY_LEN {
        return Err(OpenError::Malformed);
    }
    let (version, rest) = envelope.split_at(1);
    if version[0] != PROTOCOL_VERSION {
        return Err(OpenError::UnsupportedVersion { found: version[0] });
    }
    let (ephemeral_public, ciphertext) = rest.split_at(32);
    let mut ephemeral = [0u8; 32];
    ephemeral.copy_from_slice(ephemeral_public);
    // `IK_R`: cached in the key pair (no base-point multiply per envelope).
    let recipient_key = local_device.identity_public();
    let shared = local_device
        .identity_dh(&ephemeral)
        .map_err(|_| OpenError::Authentication)?;
    let cipher = EnvelopeCipher::new(&shared, &ephemeral, recipient_key.as_bytes());
    let padded = cipher.open(ciphertext).ok_or(OpenError::Authentication)?;
    let content = padding::unpad(&padded).ok_or(OpenError::Authentication)?;
    let content: SealedContent =
        encoding::decode(content, MAX_BODY_LEN).map_err(|_| OpenError::Authentication)?;
    let sender = content
        .sender_certificate
        .verify()
        .map_err(|_| OpenError::Authentication)?;
    let for_us = &content.recipient_account == local_certificate.account_key()
        && content.recipient_device == local_certificate.device_id();
    if !for_us {
        return Err(OpenError::Authentication);
    }
    Ok(OpenedEnvelope {
        sender,
        message: content.message,
    })
}

struct EnvelopeCipher {
    cipher: ChaCha20Poly1305,
    nonce: Nonce,
    associated_data: Vec<u8>,
}

impl EnvelopeCipher {
    fn new(shared: &Zeroizing<[u8; 32]>, ephemeral: &[u8; 32], recipient: &[u8; 32]) -> Self {
        let salt = [&ephemeral[..], &recipient[..]].concat();
        let okm = hkdf_sha256::<44>(&salt, &shared[..], labels::SEALED_SENDER_INFO);
        let (key, nonce) = split_key_nonce(&okm);
        let associated_data = [
            labels::SEALED_SENDER_AD,
            &[PROTOCOL_VERSION],
            recipient,
            ephemeral,
        ]
        .concat();
        Self {
            cipher: ChaCha20Poly1305::new(&Key::from(*key)),
            nonce: Nonce::from(nonce),
            associated_data,
        }
    }

    fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        // Fails only for inputs over 256 GiB; the envelope is capped at MAX_BODY_LEN above.
        #[allow(clippy::expect_used)]
        self.cipher
            .encrypt(
                &self.nonce,
                Payload {
                    msg: plaintext,
                    aad: &self.associated_data,
                },
            )
            .expect("length is bounded")
    }

    fn open(&self, ciphertext: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        self.cipher
            .decrypt(
                &self.nonce,
                Payload {
                    msg: ciphertext,
                    aad: &self.associated_data,
                },
            )
            .ok()
            .map(Zeroizing::new)
    }
}
