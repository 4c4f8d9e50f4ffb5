//! TLS between relay and PostgreSQL: a private server that admits TLS connections only
//! (`hostssl`), with a certificate of its own.
//!
//! Checked through the real `kith-relay`: with `sslmode=require` and `database_ca` naming the
//! server's certificate, a node starts (migrations, pool and LISTEN connection all over TLS)
//! and carries a message; without `database_ca` it refuses to start, saying the database
//! could not be reached, instead of talking to a server it cannot verify.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;

use kith_protocol::wire::Response;
use kith_tests::cli::{RelayProcess, clear_kith_env, relay_bin, run};
use kith_tests::connection::tls_config;
use kith_tests::database::PrivatePostgres;
use kith_tests::{Connection, TestDevice};

use crate::WAIT;

#[test]
fn a_relay_reaches_postgres_over_verified_tls_only() {
    let Some(postgres) = PrivatePostgres::start_tls_only("postgres_tls") else {
        return;
    };
    let ca = postgres.ca_path().display().to_string();

    // Without the server's CA: refused, with the reason.
    let data = tempfile::tempdir().unwrap();
    let mut command = Command::new(relay_bin());
    command
        .args(["serve", "--store", "postgres", "--data"])
        .arg(data.path())
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"]);
    clear_kith_env(&mut command);
    command.env("KITH_RELAY_DATABASE_URL", postgres.tls_url());
    let refused = run(command, None, WAIT);
    assert!(
        !refused.status.success(),
        "started without trusting the database: {refused:?}"
    );
    assert!(
        refused.stderr.contains("database is unreachable"),
        "{}",
        refused.stderr
    );
    assert!(
        !refused.stderr.contains("kith@"),
        "the URL leaked: {}",
        refused.stderr
    );

    // With it: a working node, every connection over TLS (the server admits nothing else).
    let nodes = RelayProcess::postgres_nodes_with_env(
        &postgres.tls_url(),
        1,
        &[("KITH_RELAY_DATABASE_CA", &ca)],
    );
    let relay = &nodes[0];
    let pem = std::fs::read_to_string(relay.ca_path()).unwrap();
    let tls = tls_config(&pem).unwrap();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, relay.port()));
    let invite = relay.invite_for(2);
    let alice = TestDevice::new("alice", 21, 0);
    let bob = TestDevice::new("bob", 22, 0);
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut a = Connection::connect(addr, tls.clone()).await.unwrap();
        assert_eq!(
            a.register(&alice, Some(&invite)).await.unwrap(),
            Response::Ok
        );
        let mut b = Connection::connect(addr, tls).await.unwrap();
        assert_eq!(b.register(&bob, Some(&invite)).await.unwrap(), Response::Ok);
        b.wait_queue_drained(WAIT).await.unwrap();
        let sent = a
            .send([5; 16], b"over tls".to_vec(), &[bob.device_id()])
            .await;
        assert!(matches!(sent.unwrap(), Response::Accepted { .. }));
        let delivery = b.next_delivery(WAIT).await.unwrap();
        assert_eq!(delivery.body.as_slice(), b"over tls");
    });
    assert!(
        !relay.log().contains("not encrypted"),
        "warned about a plain connection: {}",
        relay.log()
    );
}
