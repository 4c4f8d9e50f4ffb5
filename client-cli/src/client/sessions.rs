//! The sessions with each remote device: the active one (used to send) and a few older ones
//! kept to decrypt messages that were already on their way when a new session started.

use kith_protocol::rand_core::CryptoRng;
use kith_protocol::{DecryptError, PrekeyMessage, Session, SessionMessage, VerifiedCertificate};
use zeroize::Zeroizing;

use super::records::{self, SessionSetRecord};
use crate::store::{Batch, LocalStore, StoreError, Table};

/// Sessions kept per remote device (the active one and older ones).
const MAX_SESSIONS_PER_DEVICE: usize = 4;

/// A message a session decrypted.
pub(super) struct Opened {
    /// The plaintext.
    pub(super) plaintext: Zeroizing<Vec<u8>>,
    /// How many earlier messages of the same sender this one revealed as not received yet
    /// (the ratchet counters skip them); 0 when nothing new is missing.
    pub(super) missing: usize,
}

/// The sessions with one remote device, the active one first.
///
/// Stored under the device's account key and device id together: a device id is chosen by its
/// owner, so another account claiming the same id must not reach (or displace) these sessions.
pub(super) struct SessionSet {
    group: Vec<u8>,
    sessions: Vec<Session>,
}

impl SessionSet {
    /// Loads the sessions with `device` (none yet is an empty set).
    pub(super) fn load(
        store: &LocalStore,
        device: &VerifiedCertificate,
    ) -> Result<Self, StoreError> {
        let group = [
            device.account_key().as_bytes().as_slice(),
            device.device_id().as_bytes(),
        ]
        .concat();
        let sessions = match store.get(Table::Sessions, &group, &[])? {
            None => Vec::new(),
            Some(bytes) => {
                let record: SessionSetRecord = records::decode(&bytes)?;
                record
                    .sessions
                    .iter()
                    .map(|s| Session::from_bytes(s).map_err(|_| StoreError::Corrupt))
                    .collect::<Result<_, _>>()?
            }
        };
        Ok(Self { group, sessions })
    }

    /// The session used to send to `device`, if there is one with its current identity key.
    pub(super) fn active_mut(&mut self, device: &VerifiedCertificate) -> Option<&mut Session> {
        self.sessions
            .first_mut()
            .filter(|s| s.remote().identity_key() == device.identity_key())
    }

    /// Makes `session` the active one, keeping a bounded number of older ones.
    pub(super) fn make_active(&mut self, session: Session) {
        self.sessions.insert(0, session);
        self.sessions.truncate(MAX_SESSIONS_PER_DEVICE);
    }

    /// Whether one of the sessions belongs to this prekey message.
    pub(super) fn has_session_for(&self, message: &PrekeyMessage) -> bool {
        self.sessions.iter().any(|s| s.matches(message))
    }

    /// Decrypts with the session the message belongs to, trying the active one first, and
    /// makes that session the active one. `OtherSession` when a prekey message starts a new
    /// session; `Authentication` when no session accepts a ratchet message.
    pub(super) fn decrypt<R: CryptoRng + ?Sized>(
        &mut self,
        sender: &VerifiedCertificate,
        message: &SessionMessage,
        rng: &mut R,
    ) -> Result<Opened, DecryptError> {
        let mut last = DecryptError::OtherSession;
        for at in 0..self.sessions.len() {
            let Some(session) = self.sessions.get_mut(at) else {
                break;
            };
            let skipped_before = session.skipped_keys();
            match session.decrypt(sender, message, rng) {
                Ok(plaintext) => {
                    // Keys the ratchet set aside for messages numbered before this one: each
                    // is a message that was sent but has not arrived (yet).
                    let missing = session.skipped_keys().saturating_sub(skipped_before);
                    let session = self.sessions.remove(at);
                    self.sessions.insert(0, session);
                    return Ok(Opened {
                        plaintext: Zeroizing::new(plaintext),
                        missing,
                    });
                }
                // A replay is final: another session cannot have sent the same message.
                Err(DecryptError::Duplicate) => return Err(DecryptError::Duplicate),
                Err(DecryptError::OtherSession) => {}
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Adds the sessions to `batch`.
    pub(super) fn save(&self, batch: &mut Batch) -> Result<(), StoreError> {
        let record = SessionSetRecord {
            sessions: self
                .sessions
                .iter()
                .map(|s| s.to_bytes().to_vec())
                .collect(),
        };
        batch.put(
            Table::Sessions,
            &self.group,
            &[],
            &records::encode(&record)?,
        );
        Ok(())
    }
}

/// Whether a prekey message with this base key was accepted before (replay detection for
/// sessions that have since been dropped).
pub(super) fn base_key_seen(store: &LocalStore, base_key: &[u8; 32]) -> Result<bool, StoreError> {
    Ok(store.get(Table::BaseKeys, base_key, &[])?.is_some())
}

/// Records a base key as accepted.
pub(super) fn remember_base_key(batch: &mut Batch, base_key: &[u8; 32]) {
    batch.put(Table::BaseKeys, base_key, &[], &[1]);
}
