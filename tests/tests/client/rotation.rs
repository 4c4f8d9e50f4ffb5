//! Rotation of the signed prekey and the last-resort ML-KEM prekey (SPEC.md §3.5): a device
//! whose pair is a week old replaces it when it connects, keeps the old secrets for the grace
//! period so that contacts holding the old bundle still get through, and deletes them after.
//! The device's clock is injected; the contacts are protocol-level devices that fetch bundles
//! and build first messages themselves, so a message can be built on a bundle fetched before
//! the rotation and sent after it.

use std::time::{SystemTime, UNIX_EPOCH};

use kith::Event;
use kith_protocol::rand_core::Rng as _;
use kith_protocol::wire::{Handle, Request, Response};
use kith_protocol::{
    AccountPublicKey, Body, BoundedString, BoundedVec, Content, SessionMessage,
    VerifiedCertificate, seal,
};
use kith_tests::{Connection, TestDevice, TestRelay};

use crate::{Device, device, handle};

/// One day in seconds.
const DAY: u64 = 24 * 60 * 60;

/// A contact built on `kith-protocol`, registered on the relay.
struct Contact {
    device: TestDevice,
    conn: Connection,
}

/// A first message built and not sent yet.
struct FirstMessage {
    /// The device it is for.
    recipient: VerifiedCertificate,
    /// The prekey message.
    message: SessionMessage,
}

impl FirstMessage {
    /// The id of the recipient's signed prekey it was built on.
    fn signed_prekey_id(&self) -> u32 {
        match &self.message {
            SessionMessage::Prekey(prekey) => prekey.signed_prekey_id(),
            SessionMessage::Ratchet(_) => panic!("a first message is a prekey message"),
        }
    }
}

impl Contact {
    /// Registers the account `name`.
    async fn register(relay: &TestRelay, name: &str, seed: u64) -> Self {
        let device = TestDevice::new(name, seed, 5);
        let conn = relay.register(&device).await;
        Self { device, conn }
    }

    /// Fetches the bundle of `to`'s one device now, and builds a first message carrying `text`
    /// on it.
    async fn first_message(&mut self, to: &Handle, text: &str) -> FirstMessage {
        let (account_key, recipient) = self.lookup(to).await;
        let request = Request::FetchBundles {
            account_key,
            devices: BoundedVec::new(vec![recipient.device_id()]).unwrap(),
        };
        let bundle = match self.conn.request(request).await.unwrap() {
            Response::Bundles { bundles } => bundles.as_slice()[0].clone(),
            other => panic!("bundles expected: {other:?}"),
        };
        let mut session = self.device.initiate(&account_key, &bundle);
        let mut message_id = [0u8; 16];
        self.device.rng.fill_bytes(&mut message_id);
        let content = Content {
            message_id,
            sent_at: 1,
            sender: self.device.handle.clone(),
            body: Body::Text {
                text: BoundedString::new(text.to_owned()).unwrap(),
            },
        };
        let message = session.encrypt(&content.to_bytes()).unwrap();
        FirstMessage { recipient, message }
    }

    /// Seals `first` and hands it to the relay.
    async fn send(&mut self, first: &FirstMessage) {
        let body = seal(
            &self.device.certificate,
            &first.recipient,
            &first.message,
            &mut self.device.rng,
        )
        .unwrap();
        let mut client_message_id = [0u8; 16];
        self.device.rng.fill_bytes(&mut client_message_id);
        let response = self
            .conn
            .send(client_message_id, body, &[first.recipient.device_id()])
            .await
            .unwrap();
        assert!(
            matches!(response, Response::Accepted { .. }),
            "{response:?}"
        );
    }

    /// The account key and the one device certificate behind `handle`, verified.
    async fn lookup(&mut self, handle: &Handle) -> (AccountPublicKey, VerifiedCertificate) {
        let request = Request::Lookup {
            handle: handle.clone(),
        };
        match self.conn.request(request).await.unwrap() {
            Response::Account {
                account_key,
                devices,
            } => {
                let certificate = devices.as_slice()[0].verify_for(&account_key).unwrap();
                (account_key, certificate)
            }
            other => panic!("lookup of {handle}: {other:?}"),
        }
    }
}

/// Seconds since the Unix epoch.
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Sets `device`'s clock to `at`.
fn set_clock(device: &mut Device, at: u64) {
    device.client.set_clock(move || at);
}

/// The texts of the messages among `events`.
fn texts(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(m.text.clone()),
            _ => None,
        })
        .collect()
}

/// The reasons of the dropped envelopes among `events`.
fn dropped(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Dropped { reason } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_week_old_signed_prekey_rotates_on_connect_and_the_old_one_works_for_the_grace_period() {
    let relay = TestRelay::start().await;
    let mut bob = device(&relay, "bob").await;
    let created = now();
    let bob_handle = handle("bob");
    let mut alice = Contact::register(&relay, "alice", 1).await;
    let mut carol = Contact::register(&relay, "carol", 2).await;
    let mut dave = Contact::register(&relay, "dave", 3).await;

    // Alice and Dave fetch Bob's bundle before the rotation; their messages leave later.
    let from_alice = alice
        .first_message(&bob_handle, "from the old bundle")
        .await;
    let from_dave = dave.first_message(&bob_handle, "far too late").await;
    let old_id = from_alice.signed_prekey_id();
    assert_eq!(from_dave.signed_prekey_id(), old_id);

    // Six days on, a new connection changes nothing.
    set_clock(&mut bob, created + 6 * DAY);
    assert!(texts(&bob.receive().await).is_empty());
    let probe = carol.first_message(&bob_handle, "probe").await;
    assert_eq!(
        probe.signed_prekey_id(),
        old_id,
        "rotated before the period"
    );

    // Eight days on, connecting rotates: a contact fetching now gets the new signed prekey.
    set_clock(&mut bob, created + 8 * DAY);
    assert!(texts(&bob.receive().await).is_empty());
    let from_carol = carol
        .first_message(&bob_handle, "from the new bundle")
        .await;
    assert_ne!(
        from_carol.signed_prekey_id(),
        old_id,
        "no rotation on connect"
    );

    // Within the grace period, both the old bundle's and the new bundle's messages decrypt.
    alice.send(&from_alice).await;
    carol.send(&from_carol).await;
    let mut got = texts(&bob.receive().await);
    got.sort();
    assert_eq!(got, ["from the new bundle", "from the old bundle"]);

    // Thirty days after the rotation the old secrets are gone: a message built on the old
    // bundle is dropped, and the user is told why.
    set_clock(&mut bob, created + 8 * DAY + 30 * DAY);
    dave.send(&from_dave).await;
    let events = bob.receive().await;
    assert!(texts(&events).is_empty(), "{events:?}");
    let reasons = dropped(&events);
    assert_eq!(reasons.len(), 1, "{events:?}");
    assert!(
        reasons[0].contains("replaced more than 30 days ago"),
        "{}",
        reasons[0]
    );
}

/// A connection kept open for weeks (as `kith chat` does) rotates too: the pushes it handles
/// check at most hourly whether the pair is due.
#[tokio::test]
async fn a_long_lived_connection_rotates_when_it_handles_a_push() {
    let relay = TestRelay::start().await;
    let mut bob = device(&relay, "bob").await;
    let created = now();
    let bob_handle = handle("bob");
    let mut carol = Contact::register(&relay, "carol", 4).await;
    set_clock(&mut bob, created);
    bob.client.connect().await.unwrap();
    let before = carol.first_message(&bob_handle, "before").await;

    // Eight days on, without reconnecting, a message arrives and is handled.
    set_clock(&mut bob, created + 8 * DAY);
    carol.send(&before).await;
    let mut shown = Vec::new();
    while shown.is_empty() {
        let push = bob
            .client
            .next_push(Some(std::time::Duration::from_secs(30)))
            .await
            .unwrap()
            .expect("a push within 30 s");
        shown = texts(&bob.client.process(push).await.unwrap());
    }
    assert_eq!(shown, ["before"]);
    let after = carol.first_message(&bob_handle, "after").await;
    assert_ne!(
        after.signed_prekey_id(),
        before.signed_prekey_id(),
        "a connection open past the period did not rotate"
    );
}
