//! An account the relay's operator controls, built directly on `kith-protocol`: it speaks the
//! real protocol but may put anything inside its (genuinely encrypted and sealed) messages,
//! which the client API never would: copies of a message under its old id, contents claiming
//! another sender, forged circle changes.

use std::collections::HashMap;
use std::net::SocketAddr;

use kith_protocol::rand_core::Rng as _;
use kith_protocol::wire::{self, Handle, Request, Response};
use kith_protocol::{
    AccountPublicKey, Body, BoundedVec, Content, DeviceId, Session, SessionMessage,
    VerifiedCertificate, open, seal,
};
use kith_tests::connection::tls_config;
use kith_tests::evil_relay::EvilRelay;
use kith_tests::{Connection, RELAY_NAME, TestDevice, WAIT};
use rand_chacha::ChaCha20Rng;

/// A device of the operator's own account, connected through the evil relay.
pub(super) struct Peer {
    /// Its keys and prekey secrets.
    pub(super) device: TestDevice,
    conn: Connection,
    /// Sessions by remote device.
    sessions: HashMap<DeviceId, (VerifiedCertificate, Session)>,
    /// Randomness for session steps (the device's own RNG is borrowed with its prekeys).
    rng: ChaCha20Rng,
}

impl Peer {
    /// Registers a new account `name` through `evil`. The evil relay terminates TLS, so the
    /// login is signed without channel binding, as a device behind a proxy does.
    pub(super) async fn register(evil: &EvilRelay, name: &str, seed: u64) -> Self {
        let device = TestDevice::new(name, seed, 5);
        let addr = SocketAddr::from(([127, 0, 0, 1], evil.port()));
        let tls = tls_config(evil.certificate_pem()).unwrap();
        let mut conn = Connection::connect(addr, tls).await.unwrap();
        let signature = wire::sign_auth(
            &device.keys,
            RELAY_NAME,
            &conn.nonce(),
            None,
            &device.device_id(),
        )
        .unwrap();
        let register = wire::Register {
            signature,
            ..conn.register_request(&device, None)
        };
        let response = conn
            .request(Request::Register(Box::new(register)))
            .await
            .unwrap();
        assert_eq!(response, Response::Ok, "register {name}");
        Self {
            device,
            conn,
            sessions: HashMap::new(),
            rng: kith_tests::rng(seed ^ 0x5eed),
        }
    }

    /// The handle.
    pub(super) fn handle(&self) -> Handle {
        self.device.handle.clone()
    }

    /// A content from this account with a fresh id.
    pub(super) fn content(&mut self, body: Body) -> Content {
        let mut message_id = [0u8; 16];
        self.rng.fill_bytes(&mut message_id);
        Content {
            message_id,
            sent_at: 1,
            sender: self.handle(),
            body,
        }
    }

    /// Encrypts and seals `content` for every device of `to`, starting sessions as needed, and
    /// hands each envelope to the relay.
    pub(super) async fn send(&mut self, to: &Handle, content: &Content) {
        let (account_key, devices) = self.lookup(to).await;
        for certificate in devices {
            let device_id = certificate.device_id();
            if !self.sessions.contains_key(&device_id) {
                let session = self.start_session(&account_key, device_id).await;
                self.sessions.insert(device_id, (certificate, session));
            }
            let (certificate, session) = self.sessions.get_mut(&device_id).unwrap();
            let message = session.encrypt(&content.to_bytes()).unwrap();
            let body = seal(
                &self.device.certificate,
                certificate,
                &message,
                &mut self.device.rng,
            )
            .unwrap();
            // A fresh id each time: the relay takes a repeated one for a retry and stores
            // nothing new.
            let mut client_message_id = [0u8; 16];
            self.rng.fill_bytes(&mut client_message_id);
            let response = self
                .conn
                .send(client_message_id, body, &[device_id])
                .await
                .unwrap();
            assert!(
                matches!(response, Response::Accepted { .. }),
                "{response:?}"
            );
        }
    }

    /// Waits for the next envelope, opens and decrypts it, acknowledges it.
    pub(super) async fn receive(&mut self) -> Content {
        let delivery = self.conn.next_delivery(WAIT).await.unwrap();
        let opened = open(
            &self.device.keys,
            &self.device.certificate,
            delivery.body.as_slice(),
        )
        .unwrap();
        let device_id = opened.sender.device_id();
        let plaintext = match (&opened.message, self.sessions.get_mut(&device_id)) {
            (_, Some((_, session))) => session
                .decrypt(&opened.sender, &opened.message, &mut self.rng)
                .unwrap(),
            (SessionMessage::Prekey(prekey), None) => {
                let (session, plaintext) = Session::respond(
                    &self.device.keys,
                    &self.device.certificate,
                    &self.device.responder_prekeys(prekey),
                    &opened.sender,
                    prekey,
                    &mut self.rng,
                )
                .unwrap();
                self.sessions
                    .insert(device_id, (opened.sender.clone(), session));
                plaintext
            }
            (SessionMessage::Ratchet(_), None) => panic!("a message without a session"),
        };
        assert_eq!(
            self.conn.ack(&[delivery.delivery_id]).await.unwrap(),
            Response::Ok
        );
        Content::from_bytes(&plaintext).unwrap()
    }

    /// The directory's answer for `handle`, certificates verified.
    async fn lookup(&mut self, handle: &Handle) -> (AccountPublicKey, Vec<VerifiedCertificate>) {
        let request = Request::Lookup {
            handle: handle.clone(),
        };
        match self.conn.request(request).await.unwrap() {
            Response::Account {
                account_key,
                devices,
            } => {
                let devices = devices
                    .as_slice()
                    .iter()
                    .map(|c| c.verify_for(&account_key).unwrap())
                    .collect();
                (account_key, devices)
            }
            other => panic!("lookup of {handle}: {other:?}"),
        }
    }

    /// A session with `device` of `account_key`, from its bundle.
    async fn start_session(&mut self, account_key: &AccountPublicKey, device: DeviceId) -> Session {
        let request = Request::FetchBundles {
            account_key: *account_key,
            devices: BoundedVec::new(vec![device]).unwrap(),
        };
        match self.conn.request(request).await.unwrap() {
            Response::Bundles { bundles } => {
                self.device.initiate(account_key, &bundles.as_slice()[0])
            }
            other => panic!("bundles expected: {other:?}"),
        }
    }
}
