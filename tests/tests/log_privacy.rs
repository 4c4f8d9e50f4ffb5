//! The relay's logs keep ARCHITECTURE.md's rule: no envelope contents, no sender/recipient
//! pairs (no device ids or handles at all), no client IP addresses unless the operator turns
//! that on — even at the most verbose level an operator can set (`log_level = "trace"`). Its
//! own binary, because it installs a process-wide subscriber.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use kith_protocol::wire::Response;
use kith_tests::{TestDevice, TestRelay, WAIT};
use tokio_tungstenite::tungstenite::Message;

/// Everything the relay logged in this process.
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&buffer);
        // The relay's own filter at its most verbose: everything Kith logs, libraries capped.
        let filter = kith_relay::service::log_filter("trace").expect("valid filter");
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(move || Sink(Arc::clone(&sink)))
            .init();
        buffer
    })
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logged_since(start: usize) -> String {
    String::from_utf8_lossy(&logs().lock().unwrap()[start..]).into_owned()
}

/// Registration, look-up, a send with a recognisable body, live delivery, ack, a failed
/// authentication and a malformed frame: everything that could tempt a log line.
async fn exercise(relay: &TestRelay, alice: &TestDevice, bob: &TestDevice, body: &[u8]) {
    let mut alice_conn = relay.register(alice).await;
    let mut bob_conn = relay.register(bob).await;
    let response = alice_conn
        .send([7; 16], body.to_vec(), &[bob.device_id()])
        .await
        .unwrap();
    assert!(
        matches!(response, Response::Accepted { .. }),
        "{response:?}"
    );
    let delivery = bob_conn.next_delivery(WAIT).await.unwrap();
    assert_eq!(delivery.body.as_slice(), body);
    assert_eq!(
        bob_conn.ack(&[delivery.delivery_id]).await.unwrap(),
        Response::Ok
    );

    let mut stranger = relay.connect().await;
    let _ = stranger
        .authenticate(&TestDevice::new("nobody-here", 9_999, 0))
        .await;
    let mut garbled = relay.connect().await;
    garbled
        .send_raw(Message::Binary(body.to_vec().into()))
        .await
        .unwrap();
    assert!(garbled.closed(WAIT).await);
}

/// The relay's own ports (its listeners' addresses may be logged; clients' may not).
fn own_ports(relay: &TestRelay) -> [u16; 2] {
    [relay.addr().port(), relay.admin_addr().port()]
}

/// `127.0.0.1:<port>` occurrences whose port is not one of `own`: client addresses.
fn client_addresses(text: &str, own: [u16; 2]) -> Vec<String> {
    text.match_indices("127.0.0.1:")
        .filter_map(|(at, prefix)| {
            let port: String = text[at + prefix.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            let port: u16 = port.parse().ok()?;
            (!own.contains(&port)).then(|| format!("127.0.0.1:{port}"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_logs_no_contents_identities_or_client_addresses() {
    let start = logs().lock().unwrap().len();
    let relay = TestRelay::start().await;
    let alice = TestDevice::new("alice-private", 41, 2);
    let bob = TestDevice::new("bob-private", 42, 2);
    let body = b"BODY-MARKER how did you do today?".to_vec();
    exercise(&relay, &alice, &bob, &body).await;
    let own = own_ports(&relay);
    relay.shutdown().await;

    let text = logged_since(start);
    assert!(
        text.contains("relay started"),
        "the subscriber records the relay's logs:\n{text}"
    );
    for needle in [
        "BODY-MARKER".to_owned(),
        "alice-private".to_owned(),
        "bob-private".to_owned(),
        "nobody-here".to_owned(),
        alice.device_id().to_string(),
        bob.device_id().to_string(),
    ] {
        assert!(
            !text.contains(&needle),
            "the logs contain {needle:?}:\n{text}"
        );
    }
    let hex_body: String = body.iter().map(|b| format!("{b:02x}")).collect();
    assert!(
        !text.contains(&hex_body[..16]),
        "the logs contain the body in hex"
    );
    let leaked = client_addresses(&text, own);
    assert!(
        leaked.is_empty(),
        "client addresses logged: {leaked:?}\n{text}"
    );

    // Control: with `log_client_ips` on, the same detector does find client addresses, so
    // the check above can fail.
    let start = logs().lock().unwrap().len();
    let relay = TestRelay::start_with(|config| config.log_client_ips = true).await;
    let carol = TestDevice::new("carol-private", 43, 2);
    let dave = TestDevice::new("dave-private", 44, 2);
    exercise(&relay, &carol, &dave, &body).await;
    let own = own_ports(&relay);
    relay.shutdown().await;
    let text = logged_since(start);
    assert!(
        !client_addresses(&text, own).is_empty(),
        "control: no client address found:\n{text}"
    );
}
