//! The admin listener of a relay started in-process.

use std::io::{Read, Write};

use super::client::{AdminClient, ClientError};
use super::*;
use crate::config::Config;
use crate::service;

fn config(dir: &std::path::Path) -> Config {
    Config {
        data_dir: dir.to_owned(),
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    }
}

/// A plain HTTP/1.1 GET, for the unauthenticated routes.
fn get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_in_one_process_serve_their_admin_routes() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = service::start(config(dir_a.path())).await.unwrap();
    let b = service::start(config(dir_b.path())).await.unwrap();
    assert_ne!(a.certificate_fingerprint(), b.certificate_fingerprint());
    assert!(a.certificate_pem().unwrap().contains("BEGIN CERTIFICATE"));

    let client = AdminClient::from_data_dir(dir_a.path()).unwrap();
    let invite = client
        .create_invite(CreateInvite {
            uses: 2,
            expires_in_secs: 3600,
        })
        .await
        .unwrap();
    assert_eq!(invite.token.len(), 64);
    let stats = client.stats().await.unwrap();
    assert_eq!((stats.accounts, stats.connections), (0, 0));
    assert_eq!(a.store_stats().await.unwrap().accounts, 0);

    let refused = client
        .create_invite(CreateInvite {
            uses: 0,
            expires_in_secs: 60,
        })
        .await;
    assert!(
        matches!(refused, Err(ClientError::Refused { .. })),
        "{refused:?}"
    );
    let url = format!("http://{}", a.admin_addr());
    let wrong = AdminClient::new(&url, "not-the-token")
        .unwrap()
        .stats()
        .await;
    assert!(matches!(wrong, Err(ClientError::Unauthorized)), "{wrong:?}");

    let admin = a.admin_addr();
    let health = tokio::task::spawn_blocking(move || get(admin, "/healthz"))
        .await
        .unwrap();
    assert!(
        health.starts_with("HTTP/1.1 200") && health.ends_with("ok\n"),
        "{health}"
    );
    let metrics = tokio::task::spawn_blocking(move || get(admin, "/metrics"))
        .await
        .unwrap();
    assert!(metrics.contains("kith_flush_seconds_bucket"), "{metrics}");
    assert!(metrics.contains("# HELP kith_flush_seconds"), "{metrics}");

    a.shutdown().await.unwrap();
    assert!(!AdminFile::path(dir_a.path()).exists());
    let gone = AdminClient::from_data_dir(dir_a.path()).err();
    assert!(matches!(gone, Some(ClientError::NotRunning(_))), "{gone:?}");
    assert!(AdminFile::path(dir_b.path()).exists());
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_streams_a_checked_file_and_points_postgres_to_pg_dump() {
    let dir = tempfile::tempdir().unwrap();
    let running = service::start(config(dir.path())).await.unwrap();
    let client = AdminClient::from_data_dir(dir.path()).unwrap();
    let mut file = Vec::new();
    let mut seen = 0;
    let bytes = client.backup(&mut file, |n| seen = n).await.unwrap();
    assert_eq!((bytes, seen), (u64::try_from(file.len()).unwrap(), bytes));
    assert!(file.starts_with(b"KITH-RELAY-BACKUP 1\n"));
    let path = dir.path().join("copy.kbak");
    std::fs::write(&path, &file).unwrap();
    let summary = crate::backup::inspect(&path).unwrap();
    assert_eq!(summary.files, ["tls/cert.pem", "tls/key.pem"]);
    let wrong = AdminClient::new(&client.url(), "wrong").unwrap();
    let refused = wrong.backup(&mut Vec::new(), |_| {}).await;
    assert!(
        matches!(refused, Err(ClientError::Unauthorized)),
        "{refused:?}"
    );
    running.shutdown().await.unwrap();

    // A relay without a backup source (PostgreSQL) says what to use instead.
    let store = Arc::new(
        crate::store::SledStore::open(dir.path().join("other"), Default::default()).unwrap(),
    );
    let relay = crate::relay::Relay::new(Arc::clone(&store), Default::default());
    let token = AdminToken::generate().unwrap();
    let state = Arc::new(AdminState {
        store: Arc::clone(&store),
        relay: relay.handle(),
        token: token.clone(),
        metrics: crate::metrics::install(),
        shutdown: CancellationToken::new(),
        backup: None,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(axum::serve(listener, router(state)).into_future());
    let client = AdminClient::new(&url, token.expose()).unwrap();
    match client.backup(&mut Vec::new(), |_| {}).await {
        Err(ClientError::Refused { status, message }) => {
            assert_eq!(status, StatusCode::CONFLICT);
            assert!(message.contains("pg_dump"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    server.abort();
    store.close().await.unwrap();
}
