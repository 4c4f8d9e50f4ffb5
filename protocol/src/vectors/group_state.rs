//! `group_state.json`: a group's genesis and two changes, an admin's removal and a member's
//! leave (SPEC.md §14.1–14.4).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::fixtures::ed25519_verifies;
use super::{ScriptedRng, check_against_file, draw, hex, push_varint, seeded, unhex, unhex_vec};
use crate::encoding::BoundedString;
use crate::group::{GroupChange, GroupState, Member, SignedGroupState, VerifiedGroupState};
use crate::keys::AccountKeyPair;
use crate::wire::Handle;

const SEED: u64 = 20;

const DESCRIPTION: &str = "Group states (SPEC.md §14). state = 0x01 (GROUP_STATE_VERSION) || \
    group_id:[16] || epoch as LEB128 varint || name as varint length || UTF-8 || member count as \
    varint || members (account_public:[32] || handle as varint length || bytes || admin 0x00/0x01) \
    || previous_hash:[32] || envelope_secret:[32]. signature = Ed25519(signer's account key, \
    \"Kith-v1 group state\" || state); signed = state || signer account_public:[32] || \
    signature:[64]; hash = SHA-256(\"Kith-v1 group state hash\" || signed). Genesis: epoch 0, \
    previous_hash zero, group_id and envelope_secret drawn in that order, creator first and \
    admin. Each change: epoch + 1, previous_hash = hash of the previous state, a fresh \
    envelope_secret (the only draw). Step 1: the admin removes bob; step 2: alice (not an \
    admin) leaves, accepted because the state is the previous one minus exactly alice.";

#[derive(Serialize, Deserialize)]
struct GroupStateVector {
    description: String,
    name: String,
    people: Vec<PersonRecord>,
    states: Vec<StateRecord>,
}

#[derive(Serialize, Deserialize)]
struct PersonRecord {
    handle: String,
    account_secret: String,
    account_public: String,
}

#[derive(Serialize, Deserialize)]
struct StateRecord {
    change: String,
    signer: String,
    group_id: String,
    epoch: u64,
    previous_hash: String,
    envelope_secret: String,
    state: String,
    signature: String,
    signed: String,
    hash: String,
}

/// The vector's three people (facilitator, alice, bob) and the group's name.
pub(super) struct People {
    pub(super) accounts: Vec<(AccountKeyPair, Handle)>,
}

impl People {
    pub(super) fn draw(rng: &mut rand_chacha::ChaCha20Rng) -> Self {
        let accounts = ["facilitator", "alice", "bob"]
            .into_iter()
            .map(|h| {
                let secret = draw::<32>(rng);
                let handle = Handle::parse(h).expect("valid handle");
                (AccountKeyPair::from_secret_bytes(&secret), handle)
            })
            .collect();
        Self { accounts }
    }

    fn member(&self, i: usize, admin: bool) -> Member {
        Member {
            account_key: self.accounts[i].0.public_key(),
            handle: self.accounts[i].1.clone(),
            admin,
        }
    }

    /// The genesis signed by the facilitator, with scripted group id and envelope secret.
    pub(super) fn genesis(&self, group_id: [u8; 16], secret: [u8; 32]) -> SignedGroupState {
        let mut script = ScriptedRng::new(&[&group_id, &secret]);
        let genesis = GroupState::genesis(
            BoundedString::new("Tuesday circle").expect("short name"),
            &self.accounts[0].0,
            self.accounts[0].1.clone(),
            vec![self.member(1, false), self.member(2, false)],
            &mut script,
        )
        .expect("valid genesis");
        script.finish();
        genesis
    }
}

fn next(
    current: &VerifiedGroupState,
    change: GroupChange,
    signer: &AccountKeyPair,
    secret: [u8; 32],
) -> VerifiedGroupState {
    let mut script = ScriptedRng::new(&[&secret]);
    let signed = current
        .successor(change, signer, &mut script)
        .expect("valid change");
    script.finish();
    current.verify_successor(&signed).expect("verifies")
}

fn record(change: &str, signer: &str, state: &VerifiedGroupState, secret: [u8; 32]) -> StateRecord {
    let signed = state.signed().to_bytes();
    let split = signed.len() - 32 - 64;
    StateRecord {
        change: change.to_owned(),
        signer: signer.to_owned(),
        group_id: hex(state.state().group_id().as_bytes()),
        epoch: state.state().epoch(),
        previous_hash: hex(state.state().previous_hash()),
        envelope_secret: hex(secret),
        state: hex(&signed[..split]),
        signature: hex(&signed[split + 32..]),
        signed: hex(&signed[..]),
        hash: hex(state.hash()),
    }
}

fn compute() -> GroupStateVector {
    let mut rng = seeded(SEED);
    let people = People::draw(&mut rng);
    let (group_id, secrets) = (
        draw::<16>(&mut rng),
        [0, 1, 2].map(|_| draw::<32>(&mut rng)),
    );
    let genesis = people
        .genesis(group_id, secrets[0])
        .verify_genesis()
        .expect("genesis");
    let bob = people.accounts[2].0.public_key();
    let removed = next(
        &genesis,
        GroupChange::RemoveMembers(vec![bob]),
        &people.accounts[0].0,
        secrets[1],
    );
    let left = next(
        &removed,
        GroupChange::Leave,
        &people.accounts[1].0,
        secrets[2],
    );
    GroupStateVector {
        description: DESCRIPTION.to_owned(),
        name: "Tuesday circle".to_owned(),
        people: people
            .accounts
            .iter()
            .map(|(account, handle)| PersonRecord {
                handle: handle.as_str().to_owned(),
                account_secret: hex(&account.to_secret_bytes()[..]),
                account_public: hex(account.public_key().as_bytes()),
            })
            .collect(),
        states: vec![
            record("genesis", "facilitator", &genesis, secrets[0]),
            record("remove bob", "facilitator", &removed, secrets[1]),
            record("alice leaves", "alice", &left, secrets[2]),
        ],
    }
}

/// The state laid out by hand: members are the people at `indices`, the first an admin.
fn layout(v: &GroupStateVector, s: &StateRecord, indices: &[usize]) -> Vec<u8> {
    let mut out = vec![1u8];
    out.extend_from_slice(&unhex::<16>(&s.group_id));
    push_varint(&mut out, s.epoch);
    push_varint(&mut out, u64::try_from(v.name.len()).expect("short"));
    out.extend_from_slice(v.name.as_bytes());
    push_varint(&mut out, u64::try_from(indices.len()).expect("short"));
    for (n, &i) in indices.iter().enumerate() {
        let person = &v.people[i];
        out.extend_from_slice(&unhex::<32>(&person.account_public));
        push_varint(&mut out, u64::try_from(person.handle.len()).expect("short"));
        out.extend_from_slice(person.handle.as_bytes());
        out.push(u8::from(n == 0));
    }
    out.extend_from_slice(&unhex::<32>(&s.previous_hash));
    out.extend_from_slice(&unhex::<32>(&s.envelope_secret));
    out
}

#[test]
fn group_state_vector() {
    let v = check_against_file("group_state.json", &compute());
    let members: [&[usize]; 3] = [&[0, 1, 2], &[0, 1], &[0]];
    let signers = [0, 0, 1];
    let mut previous = [0u8; 32];
    let mut verified: Option<VerifiedGroupState> = None;
    for ((s, indices), signer) in v.states.iter().zip(members).zip(signers) {
        let state = unhex_vec(&s.state);
        assert_eq!(state, layout(&v, s, indices), "{}", s.change);
        assert_eq!(unhex::<32>(&s.previous_hash), previous, "{}", s.change);
        let signer_key = unhex::<32>(&v.people[signer].account_public);
        let message = [&b"Kith-v1 group state"[..], &state].concat();
        assert!(
            ed25519_verifies(&signer_key, &message, &unhex(&s.signature)),
            "{}",
            s.change
        );
        let signed = [&state[..], &signer_key, &unhex::<64>(&s.signature)].concat();
        assert_eq!(unhex_vec(&s.signed), signed);
        let hash: [u8; 32] = Sha256::new()
            .chain_update(b"Kith-v1 group state hash")
            .chain_update(&signed)
            .finalize()
            .into();
        assert_eq!(unhex::<32>(&s.hash), hash, "{}", s.change);
        previous = hash;
        let decoded = SignedGroupState::from_bytes(&signed).expect("decodes");
        verified = Some(match verified {
            None => decoded.verify_genesis().expect("genesis verifies"),
            Some(current) => current
                .verify_successor(&decoded)
                .expect("successor verifies"),
        });
    }
}
