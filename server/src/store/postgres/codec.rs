//! Conversions between the store's types and SQL values, and small query helpers.
//!
//! Nothing here panics on stored values: a column of the wrong type, a negative time, an id of
//! the wrong length or an undecodable record is [`StoreError::Corrupt`] naming the record kind.

use deadpool_postgres::GenericClient;
use kith_protocol::{AccountPublicKey, DeviceId};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, ToSql};

use crate::store::StoreError;

/// Parameters of a query.
pub(super) type Params<'a> = [&'a (dyn ToSql + Sync)];

/// Runs a query through the connection's statement cache.
pub(super) async fn query<C: GenericClient>(
    client: &C,
    sql: &str,
    params: &Params<'_>,
) -> Result<Vec<Row>, tokio_postgres::Error> {
    let statement = client.prepare_cached(sql).await?;
    client.query(&statement, params).await
}

/// Runs a query expected to return at most one row.
pub(super) async fn query_opt<C: GenericClient>(
    client: &C,
    sql: &str,
    params: &Params<'_>,
) -> Result<Option<Row>, tokio_postgres::Error> {
    let statement = client.prepare_cached(sql).await?;
    client.query_opt(&statement, params).await
}

/// Runs a query that returns exactly one row.
pub(super) async fn query_one<C: GenericClient>(
    client: &C,
    sql: &str,
    params: &Params<'_>,
) -> Result<Row, tokio_postgres::Error> {
    let statement = client.prepare_cached(sql).await?;
    client.query_one(&statement, params).await
}

/// Runs a statement; returns how many rows it changed.
pub(super) async fn execute<C: GenericClient>(
    client: &C,
    sql: &str,
    params: &Params<'_>,
) -> Result<u64, tokio_postgres::Error> {
    let statement = client.prepare_cached(sql).await?;
    client.execute(&statement, params).await
}

/// Reads column `index` of `row`; a wrong type or NULL is [`StoreError::Corrupt`].
pub(super) fn column<'a, T: FromSql<'a>>(
    row: &'a Row,
    index: usize,
    what: &'static str,
) -> Result<T, StoreError> {
    row.try_get(index).map_err(|_| StoreError::Corrupt(what))
}

/// A caller's time or count as BIGINT (saturating: beyond year 292 billion it makes no
/// difference).
pub(super) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A stored BIGINT as u64; negative is corrupt.
pub(super) fn to_u64(value: i64, what: &'static str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(what))
}

/// A length as BIGINT.
pub(super) fn len_i64(len: usize) -> i64 {
    i64::try_from(len).unwrap_or(i64::MAX)
}

/// A stored device id.
pub(super) fn device_id(bytes: &[u8]) -> Result<DeviceId, StoreError> {
    let bytes: [u8; 16] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("device id"))?;
    Ok(DeviceId::from_bytes(bytes))
}

/// A stored account key.
pub(super) fn account_key(bytes: &[u8]) -> Result<AccountPublicKey, StoreError> {
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("account key"))?;
    Ok(AccountPublicKey::from_bytes(bytes))
}

/// Encodes a record (postcard, as the sled engine).
pub(super) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    postcard::to_stdvec(value).map_err(|_| StoreError::Backend("record encoding failed".into()))
}

/// Decodes a record strictly (no trailing bytes); `what` names the record kind in the error.
pub(super) fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    what: &'static str,
) -> Result<T, StoreError> {
    match postcard::take_from_bytes(bytes) {
        Ok((value, [])) => Ok(value),
        _ => Err(StoreError::Corrupt(what)),
    }
}
