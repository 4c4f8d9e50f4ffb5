//! The admin listener, end to end: health, invites and stats behind the bearer token, metrics.

use kith_relay::relay::Registration;
use kith_tests::{TestDevice, TestRelay};
use serde_json::Value;

use crate::message_id;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_routes_need_the_token_and_report_the_relay() {
    let relay = TestRelay::start_with(|c| c.registration = Registration::Invite).await;
    let token = relay.admin_token().unwrap();
    let (status, body) = relay
        .admin_request("GET", "/healthz", None, None)
        .await
        .unwrap();
    assert_eq!((status, body.trim()), (200, "ok"));

    let invite = r#"{"uses": 1, "expires_in_secs": 60}"#.to_owned();
    for bad in [None, Some("wrong-token")] {
        let (status, _) = relay
            .admin_request("POST", "/v1/invites", bad, Some(invite.clone()))
            .await
            .unwrap();
        assert_eq!(status, 401, "invite with token {bad:?}");
        let (status, _) = relay
            .admin_request("GET", "/v1/stats", bad, None)
            .await
            .unwrap();
        assert_eq!(status, 401, "stats with token {bad:?}");
    }
    let zero_uses = r#"{"uses": 0, "expires_in_secs": 60}"#.to_owned();
    let (status, _) = relay
        .admin_request("POST", "/v1/invites", Some(&token), Some(zero_uses))
        .await
        .unwrap();
    assert_eq!(status, 400);

    let invite = relay.invite(2).await;
    assert_eq!(invite.len(), 64, "64 hex characters");
    let alice = TestDevice::new("alice", 400, 0);
    let bob = TestDevice::new("bob", 401, 0);
    let mut alice_conn = relay.connect().await;
    alice_conn.register(&alice, Some(&invite)).await.unwrap();
    let mut bob_conn = relay.connect().await;
    bob_conn.register(&bob, Some(&invite)).await.unwrap();
    bob_conn.close().await;
    alice_conn
        .send(message_id(1), vec![0; 100], &[bob.device_id()])
        .await
        .unwrap();

    let (status, body) = relay
        .admin_request("GET", "/v1/stats", Some(&token), None)
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let stats: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(stats["accounts"], 2);
    assert_eq!(stats["devices"], 2);
    assert_eq!(stats["queued_envelopes"], 1);
    assert_eq!(stats["queued_bytes"], 100);
    assert!(stats["authenticated"].as_u64().unwrap() >= 1, "{stats}");

    // The recorder is shared by every relay in this process: look for names, not values.
    let (status, body) = relay
        .admin_request("GET", "/metrics", None, None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    for name in [
        kith_relay::metrics::ENVELOPES_ACCEPTED,
        kith_relay::metrics::CONNECTIONS,
        kith_relay::metrics::FLUSH_SECONDS,
    ] {
        assert!(body.contains(name), "{name} missing from /metrics");
    }
    relay.shutdown().await;
}
