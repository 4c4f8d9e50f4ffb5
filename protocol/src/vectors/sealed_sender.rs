//! `sealed_sender.json`: one sealed envelope (SPEC.md §7).

use serde::{Deserialize, Serialize};

use super::fixtures::{Party, PartyRecord, x25519_public};
use super::padding::spec_padded_len;
use super::ratchet_spec::aead_encrypt;
use super::{
    ScriptedRng, check_against_file, draw, hex, hkdf_sha256, seeded, unhex, unhex_vec, x25519,
};
use crate::ratchet::Header;
use crate::sealed::{OpenError, open, seal};
use crate::session::{RatchetMessage, SessionMessage};

const SEED: u64 = 4;

const DESCRIPTION: &str = "Sealed-sender envelope (SPEC.md §7) from sender to recipient. The \
    sealed message is session_message (a SessionMessage, SPEC.md §6.9, here a ratchet message \
    with an arbitrary header and ciphertext: sealing treats it as opaque). sealed_content = \
    sender.certificate || recipient.account_public || recipient.device_id || session_message \
    without its leading version byte; padded to padded_len bytes (SPEC.md §7.3: content || 0x80 \
    || zeros, see padding.json). E = X25519 public key of ephemeral_secret; shared_secret = \
    X25519(ephemeral_secret, recipient.identity_public) = X25519(recipient.identity_secret, E); \
    key || nonce = HKDF-SHA256(salt = hkdf_salt = E || recipient.identity_public, ikm = \
    shared_secret, info = \"Kith-v1 sealed sender\"), 32 + 12 bytes; associated_data = \
    \"Kith-v1 sealed\" || 0x01 || recipient.identity_public || E; envelope = 0x01 || E || \
    ChaCha20-Poly1305(key, nonce, padded sealed_content, associated_data). Opening with the \
    recipient's secrets yields the sender's certificate (verified) and session_message.";

#[derive(Serialize, Deserialize)]
struct SealedVector {
    description: String,
    sender: PartyRecord,
    recipient: PartyRecord,
    session_message: String,
    ephemeral_secret: String,
    ephemeral_public: String,
    shared_secret: String,
    hkdf_salt: String,
    key: String,
    nonce: String,
    associated_data: String,
    sealed_content: String,
    content_len: usize,
    padded_len: usize,
    envelope: String,
}

fn compute() -> SealedVector {
    let mut rng = seeded(SEED);
    let sender = Party::draw(&mut rng);
    let recipient = Party::draw(&mut rng);
    let header = Header {
        ratchet_key: draw(&mut rng),
        previous_chain_length: 3,
        message_number: 7,
    };
    let ciphertext = draw::<48>(&mut rng).to_vec();
    let message = SessionMessage::Ratchet(RatchetMessage::new(header, ciphertext));
    let ephemeral = draw::<32>(&mut rng);

    let mut script = ScriptedRng::new(&[&ephemeral]);
    let envelope = seal(
        &sender.certificate,
        &recipient.certificate,
        &message,
        &mut script,
    )
    .expect("seal");
    script.finish();

    let mut vector = spec_envelope(
        sender.record(),
        recipient.record(),
        &message.to_bytes(),
        &ephemeral,
    );
    // The envelope as the crate sealed it; the test compares it with the spec's.
    vector.envelope = hex(envelope);
    vector
}

/// Builds the whole vector from the spec's formulas with the primitives directly.
fn spec_envelope(
    sender: PartyRecord,
    recipient: PartyRecord,
    session_message: &[u8],
    ephemeral_secret: &[u8; 32],
) -> SealedVector {
    let recipient_key = unhex::<32>(&recipient.identity_public);
    let ephemeral_public = x25519_public(ephemeral_secret);
    let shared_secret = x25519(ephemeral_secret, &recipient_key);
    assert_eq!(
        shared_secret,
        x25519(&unhex(&recipient.identity_secret), &ephemeral_public)
    );
    let salt = [ephemeral_public, recipient_key].concat();
    let okm: [u8; 44] = hkdf_sha256(&salt, &shared_secret, b"Kith-v1 sealed sender");
    let (key, nonce) = okm.split_at(32);
    let (key, nonce): ([u8; 32], [u8; 12]) = (key.try_into().unwrap(), nonce.try_into().unwrap());
    let ad = [
        &b"Kith-v1 sealed"[..],
        &[0x01],
        &recipient_key,
        &ephemeral_public,
    ]
    .concat();

    let mut content = unhex_vec(&sender.certificate);
    content.extend_from_slice(&unhex::<32>(&recipient.account_public));
    content.extend_from_slice(&unhex::<16>(&recipient.device_id));
    assert_eq!(session_message[0], 0x01, "session message version");
    content.extend_from_slice(&session_message[1..]);
    let padded_len = spec_padded_len(content.len());
    let mut padded = content.clone();
    padded.push(0x80);
    padded.resize(padded_len, 0);

    let envelope = [
        &[0x01][..],
        &ephemeral_public,
        &aead_encrypt(&key, &nonce, &ad, &padded),
    ]
    .concat();
    SealedVector {
        description: DESCRIPTION.to_owned(),
        sender,
        recipient,
        session_message: hex(session_message),
        ephemeral_secret: hex(ephemeral_secret),
        ephemeral_public: hex(ephemeral_public),
        shared_secret: hex(shared_secret),
        hkdf_salt: hex(salt),
        key: hex(key),
        nonce: hex(nonce),
        associated_data: hex(ad),
        content_len: content.len(),
        sealed_content: hex(content),
        padded_len,
        envelope: hex(envelope),
    }
}

#[test]
fn sealed_sender_vector() {
    let recorded = check_against_file("sealed_sender.json", &compute());
    let sender = recorded.sender.party();
    let recipient = recorded.recipient.party();
    let session_message = unhex_vec(&recorded.session_message);

    // Every field again from the spec, from the recorded inputs.
    let spec = spec_envelope(
        recorded.sender.party().record(),
        recorded.recipient.party().record(),
        &session_message,
        &unhex(&recorded.ephemeral_secret),
    );
    assert_eq!(
        serde_json::to_value(&spec).unwrap(),
        serde_json::to_value(&recorded).unwrap(),
        "the spec's envelope differs from the recorded one"
    );

    // The recipient opens it: the sender's certificate and the message come out.
    let envelope = unhex_vec(&recorded.envelope);
    let opened = open(&recipient.device, &recipient.certificate, &envelope).expect("open");
    assert_eq!(opened.sender, sender.certificate);
    assert_eq!(opened.message.to_bytes(), session_message);

    // Any change to the envelope fails authentication; the sender cannot open it.
    let mut tampered = envelope.clone();
    *tampered.last_mut().unwrap() ^= 1;
    assert_eq!(
        open(&recipient.device, &recipient.certificate, &tampered).unwrap_err(),
        OpenError::Authentication
    );
    assert!(open(&sender.device, &sender.certificate, &envelope).is_err());
}
