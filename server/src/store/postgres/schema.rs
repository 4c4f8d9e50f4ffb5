//! Migrations: the SQL files in `server/migrations/postgres/` (`V1__initial.sql`, …), embedded
//! in the binary and applied at connect.
//!
//! Several nodes may start at once: the check and the migration run under a session advisory
//! lock, so one node migrates and the others then find nothing to do. A database on which a
//! migration this binary does not know was applied (a newer relay ran on it) is refused with
//! [`StoreError::SchemaTooNew`] before anything is written.

use tokio_postgres::{Client, Config};

use super::db_error;
use super::tls::Tls;
use crate::store::StoreError;

mod embedded {
    refinery::embed_migrations!("migrations/postgres");
}

/// The table where refinery records the applied migrations.
pub(super) const HISTORY_TABLE: &str = "kith_schema_history";
/// The advisory lock key held while migrating ("kithmigr").
const MIGRATION_LOCK: i64 = 0x6b69_7468_6d69_6772;

/// Applies every embedded migration not yet applied, or refuses a newer schema.
pub(super) async fn migrate(config: &Config, tls: &Tls) -> Result<(), StoreError> {
    let (mut client, connection) = config
        .connect(tls.clone())
        .await
        .map_err(|e| db_error(&e))?;
    let driver = tokio::spawn(async move {
        // Ends when `client` is dropped; an error shows up on the client's next request.
        let _ = connection.await;
    });
    let result = migrate_locked(&mut client).await;
    drop(client);
    let _ = driver.await;
    result
}

/// Takes the advisory lock, checks the version, migrates, releases the lock.
async fn migrate_locked(client: &mut Client) -> Result<(), StoreError> {
    let lock = format!("SELECT pg_advisory_lock({MIGRATION_LOCK})");
    client
        .batch_execute(&lock)
        .await
        .map_err(|e| db_error(&e))?;
    let result = check_and_apply(client).await;
    let unlock = format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})");
    let unlocked = client
        .batch_execute(&unlock)
        .await
        .map_err(|e| db_error(&e));
    result.and(unlocked)
}

async fn check_and_apply(client: &mut Client) -> Result<(), StoreError> {
    let mut runner = embedded::migrations::runner();
    runner.set_migration_table_name(HISTORY_TABLE);
    let known = known_version();
    if let Some(found) = applied_version(client).await?
        && found > known
    {
        return Err(StoreError::SchemaTooNew {
            found: u32::try_from(found).unwrap_or(0),
            known: u32::try_from(known).unwrap_or(0),
        });
    }
    runner.run_async(client).await.map_err(|e| match e.kind() {
        // The first part names the migration; the second (the server's message) may
        // quote stored values.
        refinery::error::Kind::Connection(what, _) => {
            StoreError::Backend(format!("applying database migrations: {what}"))
        }
        other => StoreError::Backend(format!("applying database migrations: {other}")),
    })?;
    Ok(())
}

/// The newest migration version embedded in this binary.
pub(super) fn known_version() -> i32 {
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(refinery::Migration::version)
        .max()
        .unwrap_or(0)
}

/// The newest migration version applied in the database, `None` on an empty database.
async fn applied_version(client: &Client) -> Result<Option<i32>, StoreError> {
    let exists = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&HISTORY_TABLE])
        .await
        .map_err(|e| db_error(&e))?;
    if !exists
        .try_get::<_, bool>(0)
        .map_err(|_| StoreError::Corrupt("schema history"))?
    {
        return Ok(None);
    }
    let sql = format!("SELECT max(version) FROM {HISTORY_TABLE}");
    let row = client
        .query_one(&sql, &[])
        .await
        .map_err(|e| db_error(&e))?;
    row.try_get::<_, Option<i32>>(0)
        .map_err(|_| StoreError::Corrupt("schema history"))
}
