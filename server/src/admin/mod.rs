//! The admin listener: plain HTTP on a loopback address, for the operator and monitoring.
//!
//! | route | auth | answer |
//! | --- | --- | --- |
//! | `GET /healthz` | none | `200 ok`, or `503 shutting down` once shutdown has begun |
//! | `GET /metrics` | none | Prometheus text ([`crate::metrics`]) |
//! | `POST /v1/invites` | bearer | [`CreateInvite`] → [`InviteCreated`] |
//! | `GET /v1/stats` | bearer | [`Stats`] |
//! | `GET /v1/backup` | bearer | a backup file (`crate::backup`), streamed; 409 on PostgreSQL |
//!
//! `/v1/*` require `Authorization: Bearer <token>`, the random token the service writes with
//! the listener's URL to `<data>/admin.json` (mode 0600, [`AdminFile`]) so that
//! `kith-relay invite create --data DIR` finds both; whoever can read the data directory can
//! administer the relay. Errors are `{"error": "..."}` ([`ErrorBody`]).
//!
//! Invite tokens are 32 random bytes written as 64 hex characters. The client sends that text
//! as `Register.invite`; the store keeps [`InviteTokenHash::of`] the text's bytes, never the
//! token, and the token is never logged.

mod api;
pub mod client;
mod file;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;

pub use self::api::{
    ADMIN_FILE, AdminFile, CreateInvite, ErrorBody, InviteCreated, MAX_INVITE_USES,
    MAX_INVITE_VALIDITY, Stats,
};
pub use self::file::{AdminToken, remove_admin_file, write_admin_file};
use crate::backup::BackupSource;
use crate::relay::RelayHandle;
use crate::store::{InviteTokenHash, Store};

/// What the admin routes need.
#[derive(Debug)]
pub struct AdminState<S> {
    /// The relay's store (invites, totals).
    pub store: Arc<S>,
    /// Live connection counts.
    pub relay: RelayHandle,
    /// The bearer token for `/v1/*`.
    pub token: AdminToken,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Cancelled when shutdown begins (`/healthz` then answers 503).
    pub shutdown: CancellationToken,
    /// What `/v1/backup` reads; `None` when the store is PostgreSQL (back up with pg_dump).
    pub backup: Option<BackupSource>,
}

/// The admin routes.
pub fn router<S: Store>(state: Arc<AdminState<S>>) -> Router {
    Router::new()
        .route("/healthz", get(healthz::<S>))
        .route("/metrics", get(metrics::<S>))
        .route("/v1/invites", post(create_invite::<S>))
        .route("/v1/stats", get(stats::<S>))
        .route("/v1/backup", get(backup::<S>))
        .with_state(state)
}

async fn healthz<S: Store>(State(state): State<Arc<AdminState<S>>>) -> Response {
    if state.shutdown.is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    } else {
        (StatusCode::OK, "ok\n").into_response()
    }
}

async fn metrics<S: Store>(State(state): State<Arc<AdminState<S>>>) -> Response {
    let content_type = "text/plain; version=0.0.4; charset=utf-8";
    (
        [(header::CONTENT_TYPE, content_type)],
        state.metrics.render(),
    )
        .into_response()
}

async fn create_invite<S: Store>(
    State(state): State<Arc<AdminState<S>>>,
    headers: HeaderMap,
    body: Result<Json<CreateInvite>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<InviteCreated>, ApiError> {
    authorize(&state, &headers)?;
    let Json(request) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if !(1..=MAX_INVITE_USES).contains(&request.uses) {
        return Err(ApiError::bad_request(format!(
            "uses must be between 1 and {MAX_INVITE_USES}"
        )));
    }
    if !(1..=MAX_INVITE_VALIDITY.as_secs()).contains(&request.expires_in_secs) {
        return Err(ApiError::bad_request(format!(
            "expires_in_secs must be between 1 and {} (365 days)",
            MAX_INVITE_VALIDITY.as_secs()
        )));
    }
    let token = random_hex().map_err(|_| ApiError::internal("no randomness available"))?;
    let expires_at = unix_now().saturating_add(request.expires_in_secs);
    state
        .store
        .create_invite(
            InviteTokenHash::of(token.as_bytes()),
            request.uses,
            expires_at,
        )
        .await
        .map_err(|e| ApiError::internal(format!("storing the invite failed: {e}")))?;
    tracing::info!(uses = request.uses, expires_at, "invite created");
    Ok(Json(InviteCreated {
        token,
        uses: request.uses,
        expires_at,
    }))
}

async fn stats<S: Store>(
    State(state): State<Arc<AdminState<S>>>,
    headers: HeaderMap,
) -> Result<Json<Stats>, ApiError> {
    authorize(&state, &headers)?;
    let totals = state
        .store
        .stats()
        .await
        .map_err(|e| ApiError::internal(format!("reading totals failed: {e}")))?;
    let live = state.relay.stats();
    Ok(Json(Stats {
        accounts: totals.accounts,
        devices: totals.devices,
        queued_envelopes: totals.queued_envelopes,
        queued_bytes: totals.queued_bytes,
        connections: live.connections,
        authenticated: live.authenticated,
    }))
}

/// Chunks of a backup in flight between the thread reading the store and the response.
const BACKUP_CHUNKS: usize = 16;

/// Streams a backup of the store, read on a blocking thread while the relay keeps serving.
async fn backup<S: Store>(
    State(state): State<Arc<AdminState<S>>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let Some(source) = state.backup.clone() else {
        return Err(ApiError {
            status: StatusCode::CONFLICT,
            message: "this relay stores its data in PostgreSQL: back up the database with \
                      pg_dump instead (docs/operating.md, \"Backups\")"
                .into(),
        });
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(BACKUP_CHUNKS);
    tokio::task::spawn_blocking(move || {
        let errors = tx.clone();
        let result = source.write_to(ChannelWriter(tx));
        match result {
            Ok(bytes) => tracing::info!(bytes, "backup streamed"),
            Err(e) => {
                tracing::error!(error = %e, "backup failed");
                // Ends the response with an error, so the client does not keep a short file.
                let _ = errors.blocking_send(Err(e));
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let content_type = [(header::CONTENT_TYPE, "application/octet-stream")];
    Ok((content_type, axum::body::Body::from_stream(stream)).into_response())
}

/// Sends what is written as chunks of the response body.
struct ChannelWriter(tokio::sync::mpsc::Sender<std::io::Result<Vec<u8>>>);

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(buf.to_vec()))
            .map_err(|_| std::io::Error::other("the admin client went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Checks the bearer token in constant time.
fn authorize<S>(state: &AdminState<S>, headers: &HeaderMap) -> Result<(), ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if bool::from(presented.as_bytes().ct_eq(state.token.expose().as_bytes())) {
        Ok(())
    } else {
        Err(ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: "missing or wrong admin token (see admin.json in the data directory)".into(),
        })
    }
}

/// 32 random bytes as 64 lower-case hex characters.
pub(crate) fn random_hex() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// An error answer of the `/v1/*` routes.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    fn internal(message: impl Into<String>) -> Self {
        let message = message.into();
        tracing::error!(error = %message, "admin request failed");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorBody {
                error: self.message,
            }),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests;
