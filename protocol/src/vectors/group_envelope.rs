//! `group_envelope.json`: one group message sealed in a group envelope (SPEC.md §14.7).

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};

use super::group_state::People;
use super::padding::spec_padded_len;
use super::{ScriptedRng, check_against_file, draw, hex, hkdf_sha256, seeded, unhex, unhex_vec};
use crate::group::{OwnSenderKey, open_group, seal_group};
use crate::keys::DeviceId;

const SEED: u64 = 22;

const DESCRIPTION: &str = "Group envelope (SPEC.md §14.7) of the genesis state in state (a \
    SignedGroupState, see group_state.json; its envelope_secret is given separately). \
    envelope_key = HKDF-SHA256(salt = 32 zero bytes, ikm = envelope_secret, info = \
    \"Kith-v1 group envelope\" || group_id:[16] || epoch as u64 big-endian) (info given as \
    hkdf_info). The group_message (see group_message.json) is padded to padded_len bytes (SPEC.md \
    §7.3: message || 0x80 || zeros); envelope = 0x11 || nonce:[24] || \
    XChaCha20-Poly1305(envelope_key, nonce, padded message, associated data = 0x11).";

#[derive(Serialize, Deserialize)]
struct GroupEnvelopeVector {
    description: String,
    state: String,
    group_id: String,
    epoch: u64,
    envelope_secret: String,
    hkdf_info: String,
    envelope_key: String,
    group_message: String,
    padded_len: usize,
    nonce: String,
    envelope: String,
}

fn compute() -> GroupEnvelopeVector {
    let mut rng = seeded(SEED);
    let people = People::draw(&mut rng);
    let (group_id, secret) = (draw::<16>(&mut rng), draw::<32>(&mut rng));
    let state = people
        .genesis(group_id, secret)
        .verify_genesis()
        .expect("genesis");
    let sender_key = [draw::<4>(&mut rng).to_vec(), draw::<64>(&mut rng).to_vec()].concat();
    let mut script = ScriptedRng::new(&[&sender_key]);
    let mut own = OwnSenderKey::generate(state.state().group_id(), 0, &mut script);
    script.finish();
    let sender = (
        &people.accounts[1].0.public_key(),
        DeviceId::from_bytes(draw(&mut rng)),
    );
    let message = own
        .encrypt(sender, b"see you all tonight")
        .expect("encrypts");
    let nonce = draw::<24>(&mut rng);
    let mut script = ScriptedRng::new(&[&nonce]);
    let envelope = seal_group(&state, &message, &mut script).expect("seals");
    script.finish();
    let info = [
        &b"Kith-v1 group envelope"[..],
        &group_id,
        &0u64.to_be_bytes(),
    ]
    .concat();
    let message_bytes = message.to_bytes();
    GroupEnvelopeVector {
        description: DESCRIPTION.to_owned(),
        state: hex(&state.signed().to_bytes()[..]),
        group_id: hex(group_id),
        epoch: 0,
        envelope_secret: hex(secret),
        envelope_key: hex(hkdf_sha256::<32>(&[0u8; 32], &secret, &info)),
        hkdf_info: hex(info),
        padded_len: spec_padded_len(message_bytes.len()),
        group_message: hex(message_bytes),
        nonce: hex(nonce),
        envelope: hex(envelope),
    }
}

#[test]
fn group_envelope_vector() {
    let v = check_against_file("group_envelope.json", &compute());
    let mut info = b"Kith-v1 group envelope".to_vec();
    info.extend_from_slice(&unhex::<16>(&v.group_id));
    info.extend_from_slice(&v.epoch.to_be_bytes());
    assert_eq!(unhex_vec(&v.hkdf_info), info);
    let key = hkdf_sha256::<32>(&[0u8; 32], &unhex::<32>(&v.envelope_secret), &info);
    assert_eq!(unhex::<32>(&v.envelope_key), key);
    let envelope = unhex_vec(&v.envelope);
    assert_eq!(envelope[0], 0x11);
    assert_eq!(envelope[1..25], unhex::<24>(&v.nonce));
    let cipher = XChaCha20Poly1305::new(&key.into());
    let padded = cipher
        .decrypt(
            &XNonce::from(unhex::<24>(&v.nonce)),
            Payload {
                msg: &envelope[25..],
                aad: &[0x11],
            },
        )
        .expect("opens");
    assert_eq!(padded.len(), v.padded_len);
    let message = unhex_vec(&v.group_message);
    assert_eq!(padded[..message.len()], message[..]);
    assert_eq!(padded[message.len()], 0x80);
    assert!(padded[message.len() + 1..].iter().all(|&b| b == 0));
    let state = crate::group::VerifiedGroupState::from_bytes(&unhex_vec(&v.state)).expect("state");
    assert_eq!(hex(state.state().group_id().as_bytes()), v.group_id);
    let opened = open_group(&state, &envelope).expect("opens");
    assert_eq!(opened.to_bytes(), message);
}
