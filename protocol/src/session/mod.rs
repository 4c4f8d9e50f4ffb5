//! Sessions: PQXDH followed by the Double Ratchet, bound to both device identities (SPEC.md §6).
//!
//! A [`Session`] is created by [`Session::initiate`] (from a verified prekey bundle) or by
//! [`Session::respond`] (from a received prekey message). Until the initiator has decrypted a
//! reply, every message it sends is a [`SessionMessage::Prekey`], so the responder can set up
//! the session from whichever message arrives first.

mod errors;
mod identity;
mod messages;
mod persist;

pub use errors::{DecryptError, EncryptError, SessionCreationError};
pub use identity::PeerIdentity;
pub use messages::{PrekeyMessage, RatchetMessage, SessionMessage};

use core::fmt;

use rand_core::CryptoRng;

use crate::agreement::{self, PrekeyInit, ResponderPrekeys};
use crate::consts::MAX_PLAINTEXT_LEN;
use crate::keys::{DeviceKeyPair, VerifiedBundle, VerifiedCertificate};
use crate::ratchet::{DoubleRatchet, RatchetError};

/// An end-to-end encrypted session between one local and one remote device.
pub struct Session {
    local: PeerIdentity,
    remote: PeerIdentity,
    ratchet: DoubleRatchet,
    /// Initiator only: the agreement data attached to outgoing messages until a reply arrives.
    pending: Option<PrekeyInit>,
    /// `EK_A` public: identifies this session's key agreement (both sides).
    base_key: [u8; 32],
}

impl Session {
    /// Starts a session with the device of a verified bundle (PQXDH initiator, SPEC.md §5.2).
    ///
    /// `local_certificate` must certify `local_device` (both its identity and signing keys).
    pub fn initiate<R: CryptoRng + ?Sized>(
        local_device: &DeviceKeyPair,
        local_certificate: &VerifiedCertificate,
        remote: &VerifiedBundle,
        rng: &mut R,
    ) -> Result<Self, SessionCreationError> {
        check_local(local_device, local_certificate)?;
        let (shared, init) = agreement::initiate(local_device, remote, rng)?;
        let ratchet = DoubleRatchet::initiator(shared, remote.signed_prekey.public_key(), rng)
            .map_err(|_| SessionCreationError::NonContributoryKey)?;
        Ok(Self {
            local: PeerIdentity::from(local_certificate),
            remote: PeerIdentity::from(remote.certificate()),
            ratchet,
            base_key: init.ephemeral_key,
            pending: Some(init),
        })
    }

    /// Accepts a session from a prekey message sent by `sender` (PQXDH responder, SPEC.md §5.3)
    /// and decrypts the message it carries.
    ///
    /// `prekeys` are the secrets named by [`PrekeyMessage::signed_prekey_id`] and friends. After
    /// success the caller deletes the one-time prekeys it used, and keeps
    /// [`Session::base_key`] to recognise replays of this prekey message.
    pub fn respond<R: CryptoRng + ?Sized>(
        local_device: &DeviceKeyPair,
        local_certificate: &VerifiedCertificate,
        prekeys: &ResponderPrekeys<'_>,
        sender: &VerifiedCertificate,
        message: &PrekeyMessage,
        rng: &mut R,
    ) -> Result<(Self, Vec<u8>), SessionCreationError> {
        check_local(local_device, local_certificate)?;
        let shared = agreement::respond(
            local_device,
            prekeys,
            sender.identity_key().as_bytes(),
            &message.init,
        )?
        .ok_or(SessionCreationError::PrekeyMismatch)?;
        let mut session = Self {
            local: PeerIdentity::from(local_certificate),
            remote: PeerIdentity::from(sender),
            ratchet: DoubleRatchet::responder(shared, prekeys.signed_prekey.secret()),
            pending: None,
            base_key: message.init.ephemeral_key,
        };
        let plaintext = session
            .decrypt_ratchet(&message.message, rng)
            .map_err(SessionCreationError::Decrypt)?;
        Ok((session, plaintext))
    }

    /// Encrypts `plaintext` (at most [`MAX_PLAINTEXT_LEN`] bytes) as the next message.
    pub fn encrypt(&mut self, plaintext: &[u8]) -> Result<SessionMessage, EncryptError> {
        if plaintext.len() > MAX_PLAINTEXT_LEN {
            return Err(EncryptError::TooLarge {
                len: plaintext.len(),
                max: MAX_PLAINTEXT_LEN,
            });
        }
        let ad = self.local.associated_data_to(&self.remote);
        let (header, ciphertext) = self.ratchet.encrypt(&ad, plaintext).map_err(|e| match e {
            RatchetError::ChainExhausted => EncryptError::ChainExhausted,
            _ => EncryptError::NotReady,
        })?;
        let message = RatchetMessage::new(header, ciphertext);
        Ok(match &self.pending {
            Some(init) => SessionMessage::Prekey(Box::new(PrekeyMessage {
                init: init.clone(),
                message,
            })),
            None => SessionMessage::Ratchet(message),
        })
    }

    /// Decrypts a message from `sender` (the certificate from the opened sealed envelope).
    ///
    /// Fails without changing the session when the sender is not this session's peer, the
    /// message belongs to another session, or it is forged, tampered with or replayed.
    pub fn decrypt<R: CryptoRng + ?Sized>(
        &mut self,
        sender: &VerifiedCertificate,
        message: &SessionMessage,
        rng: &mut R,
    ) -> Result<Vec<u8>, DecryptError> {
        if PeerIdentity::from(sender) != self.remote {
            return Err(DecryptError::WrongSender);
        }
        let inner = match message {
            SessionMessage::Prekey(prekey) if prekey.init.ephemeral_key != self.base_key => {
                return Err(DecryptError::OtherSession);
            }
            SessionMessage::Prekey(prekey) => &prekey.message,
            SessionMessage::Ratchet(message) => message,
        };
        let plaintext = self.decrypt_ratchet(inner, rng)?;
        if !matches!(message, SessionMessage::Prekey(_)) {
            // A ratchet message from the peer proves it has the session: stop sending prekeys.
            self.pending = None;
        }
        Ok(plaintext)
    }

    fn decrypt_ratchet<R: CryptoRng + ?Sized>(
        &mut self,
        message: &RatchetMessage,
        rng: &mut R,
    ) -> Result<Vec<u8>, DecryptError> {
        let ad = self.remote.associated_data_to(&self.local);
        self.ratchet
            .decrypt(&ad, message.header, message.ciphertext.as_slice(), rng)
            .map_err(DecryptError::from)
    }

    /// Whether `message` is a (possibly repeated) prekey message of this session.
    pub fn matches(&self, message: &PrekeyMessage) -> bool {
        message.init.ephemeral_key == self.base_key
    }

    /// The initiator's ephemeral key `EK_A`, which identifies this session's key agreement.
    pub fn base_key(&self) -> &[u8; 32] {
        &self.base_key
    }

    /// This device.
    pub fn local(&self) -> &PeerIdentity {
        &self.local
    }

    /// The peer device.
    pub fn remote(&self) -> &PeerIdentity {
        &self.remote
    }

    /// Number of skipped message keys currently held (bounded by `MAX_SKIPPED_KEYS`).
    pub fn skipped_keys(&self) -> usize {
        self.ratchet.skipped_len()
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("local", &self.local)
            .field("remote", &self.remote)
            .field("awaiting_reply", &self.pending.is_some())
            .finish_non_exhaustive()
    }
}

/// Whether `certificate` certifies `device`. Both public keys are cached in the key pair, so
/// this costs no public-key operation.
fn check_local(
    device: &DeviceKeyPair,
    certificate: &VerifiedCertificate,
) -> Result<(), SessionCreationError> {
    if certificate.identity_key() != &device.identity_public()
        || certificate.signing_key() != &device.signing_public()
    {
        return Err(SessionCreationError::LocalCertificateMismatch);
    }
    Ok(())
}
