//! The Double Ratchet written out from SPEC.md §6.2–6.5 and §6.9 with the primitives directly
//! (hkdf, hmac, chacha20poly1305 crates), to check `ratchet.json` independently of
//! `crate::ratchet` and `crate::session`.

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, KeyInit, Nonce};

use super::fixtures::{PartyRecord, PrekeysRecord, x25519_public};
use super::pqxdh::{prekey_init_bytes, spec_agreement, spec_encapsulate};
use super::ratchet::{MessageRecord, Planned, Randomness, RootStep};
use super::{hex, hkdf_sha256, hmac_sha256, push_varint, unhex, x25519};

/// `KDF_RK(RK, DH_out)` → `(RK', CK)`: HKDF-SHA256(salt = RK, ikm = DH_out,
/// info = "Kith-v1 ratchet root"), 64 bytes split in two.
fn kdf_rk(root_key: &[u8; 32], dh_output: &[u8; 32]) -> ([u8; 32], [u8; 32]) {
    let okm: [u8; 64] = hkdf_sha256(root_key, dh_output, b"Kith-v1 ratchet root");
    let (root, chain) = okm.split_at(32);
    (
        root.try_into().expect("32 bytes"),
        chain.try_into().expect("32 bytes"),
    )
}

/// `CK_N` from `CK_0`: `CK_{i+1} = HMAC-SHA256(CK_i, 0x02)`.
fn chain_key_at(chain_key: &[u8; 32], index: u32) -> [u8; 32] {
    (0..index).fold(*chain_key, |ck, _| hmac_sha256(&ck, &[0x02]))
}

/// `MK = HMAC-SHA256(CK, 0x01)`.
fn message_key(chain_key: &[u8; 32]) -> [u8; 32] {
    hmac_sha256(chain_key, &[0x01])
}

/// AEAD key and nonce: HKDF-SHA256(salt = 0x00 × 32, ikm = MK, info = "Kith-v1 message keys"),
/// 44 bytes = key (32) || nonce (12).
fn message_cipher(message_key: &[u8; 32]) -> ([u8; 32], [u8; 12]) {
    let okm: [u8; 44] = hkdf_sha256(&[0; 32], message_key, b"Kith-v1 message keys");
    (
        okm[..32].try_into().expect("32 bytes"),
        okm[32..].try_into().expect("12 bytes"),
    )
}

/// ChaCha20-Poly1305 (RFC 8439) with the crate used directly.
pub(super) fn aead_encrypt(key: &[u8; 32], nonce: &[u8; 12], ad: &[u8], msg: &[u8]) -> Vec<u8> {
    ChaCha20Poly1305::new(&Key::from(*key))
        .encrypt(&Nonce::from(*nonce), Payload { msg, aad: ad })
        .expect("encrypts")
}

/// The message header as the spec names it.
#[derive(Clone, Copy)]
struct SpecHeader {
    ratchet_key: [u8; 32],
    previous_chain_length: u32,
    message_number: u32,
}

/// `AD = version (0x01) || sender (account || device id || identity) || recipient (same)
/// || ratchet_key || PN:u32 BE || N:u32 BE` (SPEC.md §6.5).
fn associated_data(sender: &PartyRecord, recipient: &PartyRecord, header: SpecHeader) -> Vec<u8> {
    let mut ad = vec![0x01];
    for end in [sender, recipient] {
        ad.extend_from_slice(&unhex::<32>(&end.account_public));
        ad.extend_from_slice(&unhex::<16>(&end.device_id));
        ad.extend_from_slice(&unhex::<32>(&end.identity_public));
    }
    ad.extend_from_slice(&header.ratchet_key);
    ad.extend_from_slice(&header.previous_chain_length.to_be_bytes());
    ad.extend_from_slice(&header.message_number.to_be_bytes());
    ad
}

/// `SessionMessage = 0x01 || tag (0x00 Prekey || PrekeyInit, or 0x01) || ratchet_key
/// || PN:varint || N:varint || len(ciphertext):varint || ciphertext` (SPEC.md §6.9).
fn session_message(prekey_init: Option<&[u8]>, header: SpecHeader, ciphertext: &[u8]) -> Vec<u8> {
    let mut out = vec![0x01];
    match prekey_init {
        Some(init) => {
            out.push(0x00);
            out.extend_from_slice(init);
        }
        None => out.push(0x01),
    }
    out.extend_from_slice(&header.ratchet_key);
    push_varint(&mut out, header.previous_chain_length.into());
    push_varint(&mut out, header.message_number.into());
    push_varint(
        &mut out,
        u64::try_from(ciphertext.len()).expect("length fits"),
    );
    out.extend_from_slice(ciphertext);
    out
}

/// The session computed from the spec alone, from the recorded inputs.
pub(super) struct SpecSession<'a> {
    alice: &'a PartyRecord,
    bob: &'a PartyRecord,
    pub(super) kem_secret: [u8; 32],
    pub(super) shared_secret: [u8; 32],
    prekey_init: Vec<u8>,
    /// Public ratchet keys A0, B1, A1, B2.
    ratchet_publics: [[u8; 32]; 4],
    pub(super) steps: Vec<RootStep>,
}

impl<'a> SpecSession<'a> {
    pub(super) fn new(
        alice: &'a PartyRecord,
        bob: &'a PartyRecord,
        prekeys: &PrekeysRecord,
        randomness: &Randomness,
    ) -> Self {
        let [ek, m, ..] = randomness.bytes();
        let (kem_ciphertext, kem_secret) = spec_encapsulate(&prekeys.kem_prekey_public, &m);
        let shared_secret = spec_agreement(alice, bob, prekeys, &ek, &kem_secret).shared_secret;
        let prekey_init = prekey_init_bytes(&x25519_public(&ek), &kem_ciphertext, prekeys);

        // Each step: DH(own new ratchet secret, the peer's current ratchet key), where the
        // peer's first "ratchet key" is Bob's signed prekey.
        let secrets = randomness.ratchet_secrets();
        let mut peer_secrets = vec![unhex::<32>(&prekeys.signed_prekey_secret)];
        peer_secrets.extend_from_slice(&secrets[..3]);
        let mut root_key = shared_secret;
        let mut steps = Vec::new();
        let names = [
            "alice sending chain 0: DH(alice_ratchet_secret_0, bob signed prekey)",
            "bob sending chain 1: DH(bob_ratchet_secret_1, alice ratchet key 0)",
            "alice sending chain 1: DH(alice_ratchet_secret_1, bob ratchet key 1)",
            "bob sending chain 2: DH(bob_ratchet_secret_2, alice ratchet key 1)",
        ];
        for ((own, peer), name) in secrets.iter().zip(&peer_secrets).zip(names) {
            let dh_output = x25519(own, &x25519_public(peer));
            assert_eq!(
                dh_output,
                x25519(peer, &x25519_public(own)),
                "both sides agree"
            );
            let (new_root_key, chain_key) = kdf_rk(&root_key, &dh_output);
            steps.push(RootStep {
                step: name.to_owned(),
                root_key: hex(root_key),
                dh_output: hex(dh_output),
                new_root_key: hex(new_root_key),
                chain_key: hex(chain_key),
            });
            root_key = new_root_key;
        }
        Self {
            alice,
            bob,
            kem_secret,
            shared_secret,
            prekey_init,
            ratchet_publics: secrets.map(|s| x25519_public(&s)),
            steps,
        }
    }

    pub(super) fn message(&self, plan: &Planned) -> MessageRecord {
        let header = SpecHeader {
            ratchet_key: self.ratchet_publics[plan.chain],
            previous_chain_length: plan.previous_chain_length,
            message_number: plan.message_number,
        };
        let chain_key = chain_key_at(
            &unhex(&self.steps[plan.chain].chain_key),
            plan.message_number,
        );
        let message_key = message_key(&chain_key);
        let (aead_key, aead_nonce) = message_cipher(&message_key);
        let (sender, recipient) = match plan.from_alice {
            true => (self.alice, self.bob),
            false => (self.bob, self.alice),
        };
        let ad = associated_data(sender, recipient, header);
        let ciphertext = aead_encrypt(&aead_key, &aead_nonce, &ad, plan.plaintext);
        // Alice sends prekey messages until she has received r0 (her first chain only).
        let prekey_init = (plan.from_alice && plan.chain == 0).then_some(&self.prekey_init[..]);
        MessageRecord {
            name: plan.name.to_owned(),
            sender: if plan.from_alice { "alice" } else { "bob" }.to_owned(),
            plaintext: hex(plan.plaintext),
            ratchet_key: hex(header.ratchet_key),
            previous_chain_length: header.previous_chain_length,
            message_number: header.message_number,
            chain_key: hex(chain_key),
            message_key: hex(message_key),
            aead_key: hex(aead_key),
            aead_nonce: hex(aead_nonce),
            associated_data: hex(&ad),
            session_message: hex(session_message(prekey_init, header, &ciphertext)),
            ciphertext: hex(ciphertext),
        }
    }
}
