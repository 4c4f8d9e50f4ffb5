//! Tests of the group protocol: state changes and their verification, sender keys (with
//! property tests), tampering, removal, and decoders fed arbitrary bytes.

mod envelope;
mod sender_key;
mod state;

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::*;
use crate::encoding::BoundedString;
use crate::keys::{AccountKeyPair, DeviceId};
use crate::wire::Handle;

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

fn name(s: &str) -> BoundedString<{ crate::consts::MAX_GROUP_NAME_LEN }> {
    BoundedString::new(s).unwrap()
}

/// A person: account key and handle.
struct Person {
    account: AccountKeyPair,
    handle: Handle,
    device: DeviceId,
}

impl Person {
    fn new(handle: &str, rng: &mut ChaCha20Rng) -> Self {
        Self {
            account: AccountKeyPair::generate(rng),
            handle: Handle::parse(handle).unwrap(),
            device: DeviceId::random(rng),
        }
    }

    fn member(&self, admin: bool) -> Member {
        Member {
            account_key: self.account.public_key(),
            handle: self.handle.clone(),
            admin,
        }
    }
}

/// A circle: `facilitator` (admin) created it with `alice` and `bob`; `carol` is outside.
struct Circle {
    rng: ChaCha20Rng,
    facilitator: Person,
    alice: Person,
    bob: Person,
    carol: Person,
    state: VerifiedGroupState,
}

impl Circle {
    fn new(seed: u64) -> Self {
        let mut rng = rng(seed);
        let facilitator = Person::new("facilitator", &mut rng);
        let alice = Person::new("alice", &mut rng);
        let bob = Person::new("bob", &mut rng);
        let carol = Person::new("carol", &mut rng);
        let genesis = GroupState::genesis(
            name("Tuesday circle"),
            &facilitator.account,
            facilitator.handle.clone(),
            vec![alice.member(false), bob.member(false)],
            &mut rng,
        )
        .unwrap();
        let state = genesis.verify_genesis().unwrap();
        Self {
            rng,
            facilitator,
            alice,
            bob,
            carol,
            state,
        }
    }

    /// The successor made by `who` (facilitator, alice, bob, carol).
    fn change(
        &mut self,
        change: GroupChange,
        who: &str,
    ) -> Result<SignedGroupState, GroupStateError> {
        let signer = match who {
            "facilitator" => &self.facilitator.account,
            "alice" => &self.alice.account,
            "bob" => &self.bob.account,
            _ => &self.carol.account,
        };
        self.state.successor(change, signer, &mut self.rng)
    }
}
