//! A fresh PostgreSQL database per `relay-postgres` level, created through a URL of a role
//! with CREATEDB and dropped (with its connections) afterwards.

use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use tokio_postgres::error::SqlState;

use crate::database::with_database;

/// How long creating or dropping a database may take.
const DDL_TIMEOUT: Duration = Duration::from_secs(30);

/// A database created for one level.
#[derive(Debug)]
pub(super) struct BenchDatabase {
    /// Where `CREATE`/`DROP DATABASE` run.
    admin_url: String,
    /// `kith_bench_<hex>`.
    name: String,
    /// `admin_url` with the database replaced by `name`.
    url: String,
}

impl BenchDatabase {
    /// Creates `kith_bench_<random hex>` through `admin_url`.
    pub(super) async fn create(admin_url: &str) -> anyhow::Result<Self> {
        let hex = RandomState::new().hash_one((std::process::id(), Instant::now()));
        let name = format!("kith_bench_{hex:016x}");
        execute(admin_url, &format!("CREATE DATABASE {name}"))
            .await
            .with_context(|| format!("creating benchmark database {name}"))?;
        Ok(Self {
            url: with_database(admin_url, &name),
            admin_url: admin_url.to_owned(),
            name,
        })
    }

    /// The database's URL, for the relay.
    pub(super) fn url(&self) -> &str {
        &self.url
    }

    /// Drops the database, closing the connections still open to it.
    pub(super) async fn drop_database(self) -> anyhow::Result<()> {
        crate::database::drop_database(&self.admin_url, &self.name)
            .await
            .with_context(|| {
                format!(
                    "dropping benchmark database {} (drop it by hand)",
                    self.name
                )
            })
    }
}

/// Runs one statement on a fresh connection to `url`, within [`DDL_TIMEOUT`].
async fn execute(url: &str, sql: &str) -> anyhow::Result<()> {
    let work = async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .context("connecting to PostgreSQL (is it running, and is the URL right?)")?;
        let driver = tokio::spawn(connection);
        let result = client.batch_execute(sql).await.map_err(explain);
        drop(client);
        let _ = driver.await;
        result
    };
    tokio::time::timeout(DDL_TIMEOUT, work)
        .await
        .map_err(|_| anyhow!("no answer from PostgreSQL within {DDL_TIMEOUT:?}"))?
}

/// A statement's error, with what to do when the role lacks a privilege.
fn explain(e: tokio_postgres::Error) -> anyhow::Error {
    if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) {
        anyhow::Error::new(e).context(
            "the role may not create databases: give it CREATEDB, or pass the URL of one that \
             has it (--database-url or KITH_BENCH_DATABASE_URL)",
        )
    } else {
        anyhow::Error::new(e)
    }
}
