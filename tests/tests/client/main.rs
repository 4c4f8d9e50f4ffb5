//! The `kith` client library against a real relay on loopback (TLS, WebSocket, sled), several
//! devices in one process: the flows the CLI tests drive through binaries, checked here with
//! direct access to the client's events.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod groups;
mod malicious;
mod rotation;

use std::time::Duration;

use kith::{Client, Event, Home, InitOptions, KdfParams, Message, Passphrase, RelayUrl, Trust};
use kith_protocol::wire::Handle;
use kith_tests::TestRelay;
use tempfile::TempDir;

/// Argon2id parameters small enough for tests (the store's format is the same).
const TEST_KDF: KdfParams = KdfParams {
    memory_kib: 1024,
    iterations: 1,
    parallelism: 1,
};

/// A device's client with its home directory (deleted on drop, after the client).
pub struct Device {
    /// The client.
    pub client: Client,
    _home: TempDir,
}

/// A handle from a test literal.
pub fn handle(name: &str) -> Handle {
    Handle::parse(name).unwrap()
}

/// Creates an account `name` on `relay`.
pub async fn device(relay: &TestRelay, name: &str) -> Device {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::new(dir.path().join("home"));
    let options = InitOptions {
        relay: RelayUrl::parse(&format!("wss://localhost:{}", relay.addr().port())).unwrap(),
        trust: Trust::Certificate(relay.certificate_pem()),
        handle: handle(name),
        invite: None,
        kdf: TEST_KDF,
    };
    let client = Client::init(&home, &Passphrase::new("test".into()), options)
        .await
        .unwrap();
    Device { client, _home: dir }
}

impl Device {
    /// Everything queued for this device, as events.
    pub async fn receive(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        self.client
            .receive(None, |e| events.push(e.clone()))
            .await
            .unwrap();
        events
    }

    /// The messages among everything queued.
    pub async fn messages(&mut self) -> Vec<Message> {
        self.receive()
            .await
            .into_iter()
            .filter_map(|e| match e {
                Event::Message(m) => Some(m),
                _ => None,
            })
            .collect()
    }
}

/// Upper bound for any one test step.
pub const STEP: Duration = Duration::from_secs(30);
