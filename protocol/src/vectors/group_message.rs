//! `group_message.json`: a sender key's distribution and four group messages, delivered out
//! of order (SPEC.md §14.5–14.6).

use serde::{Deserialize, Serialize};

use super::fixtures::ed25519_verifies;
use super::ratchet_spec::aead_encrypt;
use super::{
    ScriptedRng, check_against_file, draw, hex, hkdf_sha256, hmac_sha256, push_varint, seeded,
    unhex, unhex_vec,
};
use crate::content::{Body, Content};
use crate::group::{GroupDecryptError, GroupId, GroupMessage, OwnSenderKey, PeerSenderKey};
use crate::keys::{AccountPublicKey, DeviceId};
use crate::wire::Handle;

const SEED: u64 = 21;

const DESCRIPTION: &str = "Sender keys and group messages (SPEC.md §14.5-14.6). Drawn in this \
    order: key_id (4 bytes, little-endian u32), chain_key_0 (32), signing_seed (32, an Ed25519 \
    secret seed; signing_public is its public key). Chain: seed_i = HMAC-SHA256(chain_key_i, \
    0x01), chain_key_i+1 = HMAC-SHA256(chain_key_i, 0x02); key || nonce = HKDF-SHA256(salt = \
    32 zero bytes, ikm = seed_i, info = \"Kith-v1 group message keys\"), 32 + 12 bytes. \
    associated_data = 0x01 || group_id:[16] || epoch varint || sender_account:[32] || \
    sender_device:[16] || key_id varint || iteration varint; ciphertext = ChaCha20-Poly1305(key, \
    nonce, plaintext, associated_data); signature = Ed25519(signing_seed, \"Kith-v1 group \
    message\" || associated_data || ciphertext length varint || ciphertext); message = \
    associated_data || ciphertext length varint || ciphertext || signature. The distribution \
    (group_id || epoch varint || key_id varint || iteration varint || chain_key:[32] || \
    signing_public:[32]) is given at iteration 0, and as the encoded Content (tag 2, SenderKey) \
    that carries it over a 1:1 session. The receiver gets the messages in delivery_order: 0, 2, \
    1 (from a stored skipped key), 3; then 1 again is a duplicate.";

#[derive(Serialize, Deserialize)]
struct GroupMessageVector {
    description: String,
    group_id: String,
    epoch: u64,
    sender_account: String,
    sender_device: String,
    key_id: u32,
    chain_key_0: String,
    signing_seed: String,
    signing_public: String,
    distribution: String,
    distribution_content: String,
    delivery_order: Vec<usize>,
    messages: Vec<MessageRecord>,
}

#[derive(Serialize, Deserialize)]
struct MessageRecord {
    iteration: u32,
    chain_key: String,
    seed: String,
    key: String,
    nonce: String,
    plaintext: String,
    associated_data: String,
    ciphertext: String,
    signature: String,
    message: String,
}

const EPOCH: u64 = 3;
const DELIVERY: [usize; 4] = [0, 2, 1, 3];

fn compute() -> GroupMessageVector {
    let mut rng = seeded(SEED);
    let group_id = GroupId::from_bytes(draw(&mut rng));
    let account = AccountPublicKey::from_bytes(draw(&mut rng));
    let device = DeviceId::from_bytes(draw(&mut rng));
    let (key_id, chain_key, signing_seed) = (
        draw::<4>(&mut rng),
        draw::<32>(&mut rng),
        draw::<32>(&mut rng),
    );
    let mut script = ScriptedRng::new(&[&key_id, &chain_key, &signing_seed]);
    let mut own = OwnSenderKey::generate(group_id, EPOCH, &mut script);
    script.finish();
    let distribution = own.distribution();
    let content = Content {
        message_id: draw(&mut rng),
        sent_at: 1_700_000_000,
        sender: Handle::parse("alice").expect("valid"),
        body: Body::SenderKey(distribution.clone()),
    };
    let content_bytes = content.to_bytes();
    let mut chain = chain_key;
    let messages = (0..4u32)
        .map(|i| {
            let plaintext = format!("group message {i}");
            let message = own
                .encrypt((&account, device), plaintext.as_bytes())
                .expect("encrypts");
            let record = spec_record(i, &chain, &plaintext, &message);
            chain = hmac_sha256(&chain, &[2]);
            record
        })
        .collect();
    GroupMessageVector {
        description: DESCRIPTION.to_owned(),
        group_id: hex(group_id.as_bytes()),
        epoch: EPOCH,
        sender_account: hex(account.as_bytes()),
        sender_device: hex(device.as_bytes()),
        key_id: u32::from_le_bytes(key_id),
        chain_key_0: hex(chain_key),
        signing_seed: hex(signing_seed),
        signing_public: hex(distribution.signing_key),
        distribution: hex(crate::encoding::encode(&distribution)),
        // The 1:1 content that carries the distribution.
        distribution_content: hex(&content_bytes[..]),
        delivery_order: DELIVERY.to_vec(),
        messages,
    }
}

/// The record of iteration `i`, keys derived with the primitives directly.
fn spec_record(i: u32, chain: &[u8; 32], plaintext: &str, message: &GroupMessage) -> MessageRecord {
    let seed = hmac_sha256(chain, &[1]);
    let okm = hkdf_sha256::<44>(&[0u8; 32], &seed, b"Kith-v1 group message keys");
    let bytes = message.to_bytes();
    let ciphertext = message.ciphertext.as_slice();
    let ad_len = bytes.len() - 64 - ciphertext.len() - varint_len(ciphertext.len());
    MessageRecord {
        iteration: i,
        chain_key: hex(chain),
        seed: hex(seed),
        key: hex(&okm[..32]),
        nonce: hex(&okm[32..]),
        plaintext: hex(plaintext.as_bytes()),
        associated_data: hex(&bytes[..ad_len]),
        ciphertext: hex(ciphertext),
        signature: hex(message.signature),
        message: hex(&bytes),
    }
}

fn varint_len(n: usize) -> usize {
    let mut out = Vec::new();
    push_varint(&mut out, u64::try_from(n).expect("small"));
    out.len()
}

#[test]
fn group_message_vector() {
    let v = check_against_file("group_message.json", &compute());
    let mut chain = unhex::<32>(&v.chain_key_0);
    for m in &v.messages {
        assert_eq!(unhex::<32>(&m.chain_key), chain);
        let seed = hmac_sha256(&chain, &[1]);
        assert_eq!(unhex::<32>(&m.seed), seed);
        let okm = hkdf_sha256::<44>(&[0u8; 32], &seed, b"Kith-v1 group message keys");
        assert_eq!(
            (unhex_vec(&m.key), unhex_vec(&m.nonce)),
            (okm[..32].to_vec(), okm[32..].to_vec())
        );
        let mut ad = vec![1u8];
        ad.extend_from_slice(&unhex::<16>(&v.group_id));
        push_varint(&mut ad, v.epoch);
        ad.extend_from_slice(&unhex::<32>(&v.sender_account));
        ad.extend_from_slice(&unhex::<16>(&v.sender_device));
        push_varint(&mut ad, u64::from(v.key_id));
        push_varint(&mut ad, u64::from(m.iteration));
        assert_eq!(unhex_vec(&m.associated_data), ad);
        let ciphertext = unhex_vec(&m.ciphertext);
        let (key, nonce) = (unhex::<32>(&m.key), unhex::<12>(&m.nonce));
        assert_eq!(
            aead_encrypt(&key, &nonce, &ad, &unhex_vec(&m.plaintext)),
            ciphertext
        );
        let mut signed_part = ad.clone();
        push_varint(
            &mut signed_part,
            u64::try_from(ciphertext.len()).expect("small"),
        );
        signed_part.extend_from_slice(&ciphertext);
        let signed = [&b"Kith-v1 group message"[..], &signed_part].concat();
        let signature = unhex::<64>(&m.signature);
        assert!(ed25519_verifies(
            &unhex(&v.signing_public),
            &signed,
            &signature
        ));
        assert_eq!(
            unhex_vec(&m.message),
            [&signed_part[..], &signature].concat()
        );
        chain = hmac_sha256(&chain, &[2]);
    }
    let mut distribution = unhex_vec(&v.group_id);
    push_varint(&mut distribution, v.epoch);
    push_varint(&mut distribution, u64::from(v.key_id));
    push_varint(&mut distribution, 0);
    distribution.extend_from_slice(&unhex::<32>(&v.chain_key_0));
    distribution.extend_from_slice(&unhex::<32>(&v.signing_public));
    assert_eq!(unhex_vec(&v.distribution), distribution);
    let content = unhex_vec(&v.distribution_content);
    assert!(content.ends_with(&[&[2u8][..], &distribution].concat()));
    // The receiver, out of order.
    let Body::SenderKey(received) = Content::from_bytes(&content).expect("decodes").body else {
        panic!("a SenderKey body")
    };
    let account = AccountPublicKey::from_bytes(unhex(&v.sender_account));
    let device = DeviceId::from_bytes(unhex(&v.sender_device));
    let mut peer = PeerSenderKey::from_distribution(&received, account, device);
    for &i in &v.delivery_order {
        let message =
            GroupMessage::from_bytes(&unhex_vec(&v.messages[i].message)).expect("decodes");
        let plaintext = peer.decrypt(&message).expect("decrypts");
        assert_eq!(plaintext[..], unhex_vec(&v.messages[i].plaintext)[..]);
    }
    let again = GroupMessage::from_bytes(&unhex_vec(&v.messages[1].message)).expect("decodes");
    assert_eq!(peer.decrypt(&again), Err(GroupDecryptError::Duplicate));
}
