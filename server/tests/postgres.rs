//! The PostgreSQL engine against a real database: the shared conformance suite, then what only
//! this engine has (migrations, several nodes on one database, LISTEN/NOTIFY wake-ups).
//!
//! The database comes from `KITH_TEST_DATABASE_URL`, a role that may `CREATE DATABASE`. Each
//! test creates a fresh database `kith_t_<random hex>` and drops it at the end (best effort,
//! also on failure). Without the variable the tests are skipped, except under `CI=true`, where
//! they fail: CI must provide the database.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed assertion is the point"
)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use kith_protocol::{DeviceId, KemPrekeyKind};
use kith_relay::store::conformance::{self, NOW, register, rng};
use kith_relay::store::{
    Enqueue, IdempotencyKey, InviteTokenHash, MailboxLimits, PostgresOptions, PostgresStore,
    Recipient, Store, StoreError, Wakeup,
};
use tokio::sync::mpsc::Receiver;
use tokio_postgres::NoTls;

/// How long a test waits for a wake-up.
const WAIT: Duration = Duration::from_secs(20);

/// A fresh database, dropped with this value.
struct TestDb {
    admin_url: String,
    name: String,
    url: String,
}

impl TestDb {
    /// Creates the database, or `None` (skip) when no server is configured outside CI.
    async fn create() -> Option<Self> {
        let Ok(admin_url) = std::env::var("KITH_TEST_DATABASE_URL") else {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!(
                    "KITH_TEST_DATABASE_URL is not set: the PostgreSQL tests need a database in CI"
                );
            }
            eprintln!("skipped: set KITH_TEST_DATABASE_URL to run the PostgreSQL tests");
            return None;
        };
        let mut suffix = [0u8; 8];
        getrandom::fill(&mut suffix).unwrap();
        let name = format!("kith_t_{}", hex::encode(suffix));
        let admin = admin(&admin_url).await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let url = with_database(&admin_url, &name);
        Some(Self {
            admin_url,
            name,
            url,
        })
    }

    fn options(&self) -> PostgresOptions {
        PostgresOptions {
            url: self.url.clone(),
            pool_size: 8,
            ca_file: None,
        }
    }

    async fn connect(&self) -> PostgresStore {
        PostgresStore::connect(self.options()).await.unwrap()
    }

    /// A plain connection to the test database.
    async fn admin(&self) -> tokio_postgres::Client {
        admin(&self.url).await
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs inside the test's runtime: use a thread with its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let admin = admin(&url).await;
                let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                admin.batch_execute(&sql).await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}

async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// The URL with another database name (URL or libpq keyword form).
fn with_database(url: &str, name: &str) -> String {
    let Some(rest) = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
    else {
        return format!("{url} dbname={name}");
    };
    let (base, query) = rest
        .split_once('?')
        .map_or((rest, None), |(b, q)| (b, Some(q)));
    let host = base.split_once('/').map_or(base, |(host, _)| host);
    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
    format!("postgres://{host}/{name}{query}")
}

macro_rules! conformance_cases {
    ($($case:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $case() {
            let Some(db) = TestDb::create().await else { return };
            conformance::$case(db.connect().await).await;
        }
    )*};
}

conformance_cases!(
    account_and_handle_uniqueness,
    add_devices_up_to_limit,
    invites_valid_exhausted_expired,
    invite_use_is_atomic,
    prekeys_publish_and_count,
    bundle_material_is_handed_out_once,
    enqueue_list_ack,
    enqueue_is_idempotent,
    mailbox_quota_is_all_or_nothing,
    expiry_deletes_entries_bodies_and_keys,
    concurrent_enqueues_keep_order,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn durability_across_reopen() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    conformance::durability_across_reopen(|| db.connect()).await;
}

#[path = "postgres/engine.rs"]
mod engine;

#[path = "postgres/migrate.rs"]
mod migrate;
