//! The Double Ratchet state machine (SPEC.md §6.1, §6.7).
//!
//! Decryption is staged: keys are derived into temporaries and the state is changed only
//! after the AEAD accepted the message, so a forged, replayed or corrupted message leaves the
//! session exactly as it was.

use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use x25519_dalek::StaticSecret;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::RatchetError;
use super::chain_key::ChainKey;
use super::header::Header;
use super::message_key::MessageKey;
use super::ratchet_key::RatchetKeyPair;
use super::root_key::RootKey;
use super::skipped::{SkippedKey, SkippedKeys};
use crate::consts::MAX_SKIP;
use crate::dh::dh;

/// The receiving chain: the peer's current ratchet key `DHr` and `CKr`.
#[derive(Clone)]
struct ReceivingChain {
    ratchet_key: [u8; 32],
    chain: ChainKey,
}

/// One side's Double Ratchet state.
pub(crate) struct DoubleRatchet {
    root: RootKey,
    /// `DHs`: our current ratchet key pair (its public key cached for the message headers).
    self_ratchet: RatchetKeyPair,
    /// `CKs`; `None` for the responder until its first DH ratchet step.
    sending: Option<ChainKey>,
    receiving: Option<ReceivingChain>,
    /// `PN`.
    previous_chain_length: u32,
    skipped: SkippedKeys,
}

/// What a successful decryption changes, applied only after the AEAD accepted the message.
struct Staged {
    skipped: Vec<SkippedKey>,
    receiving: ReceivingChain,
    /// Root key after `KDF_RK(RK, DH(DHs, DHr'))` when the message started a new chain.
    new_root: Option<RootKey>,
}

impl DoubleRatchet {
    /// Initiator ("Alice"): `RK, CKs = KDF_RK(SK, DH(DHs, SPK_B))` with a fresh `DHs`.
    pub(crate) fn initiator<R: CryptoRng + ?Sized>(
        shared_secret: RootKey,
        remote_ratchet_key: &[u8; 32],
        rng: &mut R,
    ) -> Result<Self, RatchetError> {
        let self_ratchet = RatchetKeyPair::random(rng);
        let dh_out = dh(self_ratchet.secret(), remote_ratchet_key)
            .map_err(|_| RatchetError::NonContributory)?;
        let (root, sending) = shared_secret.advance(&dh_out);
        Ok(Self {
            root,
            self_ratchet,
            sending: Some(sending),
            receiving: None,
            previous_chain_length: 0,
            skipped: SkippedKeys::default(),
        })
    }

    /// Responder ("Bob"): `RK = SK`, `DHs` = the signed prekey pair, no chains yet.
    pub(crate) fn responder(shared_secret: RootKey, signed_prekey: &StaticSecret) -> Self {
        Self {
            root: shared_secret,
            self_ratchet: RatchetKeyPair::from_secret(signed_prekey.clone()),
            sending: None,
            receiving: None,
            previous_chain_length: 0,
            skipped: SkippedKeys::default(),
        }
    }

    /// Encrypts with the next sending message key. `ad_prefix || header` is the AD.
    pub(crate) fn encrypt(
        &mut self,
        ad_prefix: &[u8],
        plaintext: &[u8],
    ) -> Result<(Header, Vec<u8>), RatchetError> {
        let chain = self.sending.as_ref().ok_or(RatchetError::NoSendingChain)?;
        let next = chain.next().ok_or(RatchetError::ChainExhausted)?;
        let header = Header {
            ratchet_key: self.self_ratchet.public(),
            previous_chain_length: self.previous_chain_length,
            message_number: chain.index(),
        };
        let key = chain.message_key();
        self.sending = Some(next);
        let ciphertext = key.encrypt(&associated_data(ad_prefix, header), plaintext);
        Ok((header, ciphertext))
    }

    /// Decrypts a message; on any error the state is unchanged.
    pub(crate) fn decrypt<R: CryptoRng + ?Sized>(
        &mut self,
        ad_prefix: &[u8],
        header: Header,
        ciphertext: &[u8],
        rng: &mut R,
    ) -> Result<Vec<u8>, RatchetError> {
        let ad = associated_data(ad_prefix, header);
        if let Some(position) = self
            .skipped
            .position(&header.ratchet_key, header.message_number)
        {
            let key = self
                .skipped
                .key(position)
                .ok_or(RatchetError::Authentication)?;
            let plaintext = key
                .decrypt(&ad, ciphertext)
                .map_err(|_| RatchetError::Authentication)?;
            self.skipped.remove(position);
            return Ok(plaintext);
        }
        let (staged, key) = self.stage(header)?;
        let plaintext = key
            .decrypt(&ad, ciphertext)
            .map_err(|_| RatchetError::Authentication)?;
        self.commit(staged, header, rng)?;
        Ok(plaintext)
    }

    /// Derives the message key for `header` without changing state.
    fn stage(&self, header: Header) -> Result<(Staged, MessageKey), RatchetError> {
        match &self.receiving {
            Some(current) if current.ratchet_key == header.ratchet_key => {
                if header.message_number < current.chain.index() {
                    return Err(RatchetError::Duplicate);
                }
                let (skipped, key, chain) =
                    skip_to(&current.chain, header.ratchet_key, header.message_number)?;
                let receiving = ReceivingChain {
                    ratchet_key: header.ratchet_key,
                    chain,
                };
                Ok((
                    Staged {
                        skipped,
                        receiving,
                        new_root: None,
                    },
                    key,
                ))
            }
            current => {
                let mut skipped = Vec::new();
                if let Some(current) = current
                    && header.previous_chain_length >= current.chain.index()
                {
                    let (rest, last, _) = skip_to(
                        &current.chain,
                        current.ratchet_key,
                        header.previous_chain_length,
                    )?;
                    skipped = rest;
                    // The key *at* PN belongs to no message (PN counts messages): drop it.
                    drop(last);
                }
                let dh_out = dh(self.self_ratchet.secret(), &header.ratchet_key)
                    .map_err(|_| RatchetError::NonContributory)?;
                let (root, chain) = self.root.advance(&dh_out);
                let (more, key, chain) =
                    skip_to(&chain, header.ratchet_key, header.message_number)?;
                skipped.extend(more);
                let receiving = ReceivingChain {
                    ratchet_key: header.ratchet_key,
                    chain,
                };
                Ok((
                    Staged {
                        skipped,
                        receiving,
                        new_root: Some(root),
                    },
                    key,
                ))
            }
        }
    }

    /// Applies a staged decryption. Everything fallible (the sending half of a DH ratchet step)
    /// is computed before the first field changes, so an error leaves the state untouched.
    fn commit<R: CryptoRng + ?Sized>(
        &mut self,
        staged: Staged,
        header: Header,
        rng: &mut R,
    ) -> Result<(), RatchetError> {
        // DH ratchet step, sending half: PN = Ns, new DHs, RK, CKs = KDF_RK(RK, DH(DHs, DHr)).
        let step = match staged.new_root {
            Some(root) => {
                let self_ratchet = RatchetKeyPair::random(rng);
                let dh_out = dh(self_ratchet.secret(), &header.ratchet_key)
                    .map_err(|_| RatchetError::NonContributory)?;
                let (root, sending) = root.advance(&dh_out);
                Some((self_ratchet, root, sending))
            }
            None => None,
        };
        self.skipped.extend(staged.skipped);
        self.receiving = Some(staged.receiving);
        if let Some((self_ratchet, root, sending)) = step {
            self.previous_chain_length = self.sending.as_ref().map_or(0, ChainKey::index);
            self.self_ratchet = self_ratchet;
            self.root = root;
            self.sending = Some(sending);
        }
        Ok(())
    }

    /// Number of stored skipped keys (for tests and diagnostics).
    pub(crate) fn skipped_len(&self) -> usize {
        self.skipped.len()
    }
}

/// Advances `chain` to message number `target`, returning the keys of the messages skipped on
/// the way, the key for `target`, and the chain key after it. At most `MAX_SKIP` keys are
/// skipped.
fn skip_to(
    chain: &ChainKey,
    ratchet_key: [u8; 32],
    target: u32,
) -> Result<(Vec<SkippedKey>, MessageKey, ChainKey), RatchetError> {
    if target.saturating_sub(chain.index()) > MAX_SKIP {
        return Err(RatchetError::TooFarAhead);
    }
    let mut skipped = Vec::new();
    let mut current = chain.clone();
    while current.index() < target {
        skipped.push(SkippedKey {
            ratchet_key,
            key: current.message_key(),
        });
        current = current.next().ok_or(RatchetError::ChainExhausted)?;
    }
    let key = current.message_key();
    let next = current.next().ok_or(RatchetError::ChainExhausted)?;
    Ok((skipped, key, next))
}

/// `AD = ad_prefix || header (40 bytes)`.
fn associated_data(ad_prefix: &[u8], header: Header) -> Vec<u8> {
    [ad_prefix, &header.to_ad_bytes()].concat()
}

/// The persisted form of a [`DoubleRatchet`] (inside the session byte form, SPEC.md §6.8).
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub(crate) struct RatchetState {
    root_key: [u8; 32],
    self_ratchet: [u8; 32],
    sending: Option<ChainState>,
    receiving: Option<ReceivingState>,
    previous_chain_length: u32,
    skipped: Vec<SkippedState>,
}

#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct ChainState {
    key: [u8; 32],
    index: u32,
}

#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct ReceivingState {
    ratchet_key: [u8; 32],
    chain: ChainState,
}

#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct SkippedState {
    ratchet_key: [u8; 32],
    index: u32,
    key: [u8; 32],
}

impl ChainState {
    fn of(chain: &ChainKey) -> Self {
        Self {
            key: *chain.as_bytes(),
            index: chain.index(),
        }
    }

    fn restore(&self) -> ChainKey {
        ChainKey::new(self.key, self.index)
    }
}

impl DoubleRatchet {
    pub(crate) fn to_state(&self) -> RatchetState {
        RatchetState {
            root_key: *self.root.as_bytes(),
            self_ratchet: self.self_ratchet.secret().to_bytes(),
            sending: self.sending.as_ref().map(ChainState::of),
            receiving: self.receiving.as_ref().map(|r| ReceivingState {
                ratchet_key: r.ratchet_key,
                chain: ChainState::of(&r.chain),
            }),
            previous_chain_length: self.previous_chain_length,
            skipped: self
                .skipped
                .iter()
                .map(|s| SkippedState {
                    ratchet_key: s.ratchet_key,
                    index: s.key.index(),
                    key: *s.key.as_bytes(),
                })
                .collect(),
        }
    }

    /// Restores a ratchet; `None` when the skipped-key list is over its bound.
    pub(crate) fn from_state(state: &RatchetState) -> Option<Self> {
        if state.skipped.len() > crate::consts::MAX_SKIPPED_KEYS {
            return None;
        }
        let mut skipped = SkippedKeys::default();
        skipped.extend(
            state
                .skipped
                .iter()
                .map(|s| SkippedKey {
                    ratchet_key: s.ratchet_key,
                    key: MessageKey::new(s.key, s.index),
                })
                .collect(),
        );
        Some(Self {
            root: RootKey::new(state.root_key),
            self_ratchet: RatchetKeyPair::from_secret(StaticSecret::from(state.self_ratchet)),
            sending: state.sending.as_ref().map(ChainState::restore),
            receiving: state.receiving.as_ref().map(|r| ReceivingChain {
                ratchet_key: r.ratchet_key,
                chain: r.chain.restore(),
            }),
            previous_chain_length: state.previous_chain_length,
            skipped,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::dh::public_of;

    const AD: &[u8] = b"ad";

    /// Alice (initiator) and Bob (responder) over the same shared secret and signed prekey.
    fn pair(rng: &mut ChaCha20Rng) -> (DoubleRatchet, DoubleRatchet) {
        let signed_prekey = StaticSecret::random_from_rng(rng);
        let alice =
            DoubleRatchet::initiator(RootKey::new([7; 32]), &public_of(&signed_prekey), rng)
                .unwrap();
        let bob = DoubleRatchet::responder(RootKey::new([7; 32]), &signed_prekey);
        (alice, bob)
    }

    /// The header of a message sent now carries `public_of(DHs)`, and the cache agrees.
    fn send(from: &mut DoubleRatchet, plaintext: &[u8]) -> (Header, Vec<u8>) {
        let (header, ciphertext) = from.encrypt(AD, plaintext).unwrap();
        assert_eq!(header.ratchet_key, public_of(from.self_ratchet.secret()));
        assert_eq!(from.self_ratchet.cached_public(), Some(header.ratchet_key));
        (header, ciphertext)
    }

    #[test]
    fn cached_ratchet_public_key_tracks_the_secret() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let (mut alice, mut bob) = pair(&mut rng);
        for round in 0u8..3 {
            for i in 0u8..2 {
                let (header, ciphertext) = send(&mut alice, &[round, i]);
                let plaintext = bob.decrypt(AD, header, &ciphertext, &mut rng).unwrap();
                assert_eq!(plaintext, [round, i]);
            }
            // Bob stepped his ratchet: a new key pair whose public key is not computed yet.
            assert_eq!(bob.self_ratchet.cached_public(), None);
            let (header, ciphertext) = send(&mut bob, &[round]);
            assert_eq!(
                alice.decrypt(AD, header, &ciphertext, &mut rng).unwrap(),
                [round]
            );
        }
    }

    #[test]
    fn restored_ratchet_sends_the_same_header_and_ciphertext() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let (mut alice, mut bob) = pair(&mut rng);
        let (header, ciphertext) = send(&mut alice, b"hello");
        bob.decrypt(AD, header, &ciphertext, &mut rng).unwrap();
        let (header, ciphertext) = send(&mut bob, b"hi");
        alice.decrypt(AD, header, &ciphertext, &mut rng).unwrap();
        for original in [&mut alice, &mut bob] {
            let state = original.to_state();
            let mut restored = DoubleRatchet::from_state(&state).unwrap();
            assert_eq!(restored.self_ratchet.cached_public(), None);
            assert_eq!(
                restored.self_ratchet.secret().to_bytes(),
                original.self_ratchet.secret().to_bytes()
            );
            let sent = send(&mut restored, b"again");
            assert_eq!(sent, send(original, b"again"));
        }
    }
}
