//! The command line's side of the admin listener: `kith-relay invite create` and
//! `kith-relay stats` talk to the running relay through it (sled allows one process per data
//! directory, so the command line never opens the store itself).

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::api::{AdminFile, CreateInvite, ErrorBody, InviteCreated, Stats};

/// How long one admin request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why an admin request failed, worded for the operator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// No `admin.json`, or nothing listening at its address.
    #[error(
        "no running relay found for data dir {dir} (start it with `kith-relay serve --data {dir}`)",
        dir = .0.display()
    )]
    NotRunning(PathBuf),
    /// `admin.json` exists but cannot be used.
    #[error("cannot use {}: {reason}", path.display())]
    BadAdminFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The `--admin` URL is not of the form `http://HOST:PORT`.
    #[error("admin URL {0:?} is not of the form http://HOST:PORT (e.g. http://127.0.0.1:7444)")]
    BadUrl(String),
    /// The admin listener could not be reached or did not answer properly.
    #[error("cannot reach the admin listener at {url}: {reason}")]
    Unreachable {
        /// Where.
        url: String,
        /// What happened.
        reason: String,
    },
    /// The token was refused.
    #[error(
        "the relay refused the admin token (with --admin, pass the token from the relay's \
         admin.json as --admin-token; it changes on every start)"
    )]
    Unauthorized,
    /// The relay answered with an error.
    #[error("the relay answered {status}: {message}")]
    Refused {
        /// HTTP status.
        status: StatusCode,
        /// The relay's explanation.
        message: String,
    },
}

/// A client for one relay's admin listener.
#[derive(Clone)]
pub struct AdminClient {
    /// `host:port`.
    authority: String,
    token: String,
    /// Set when found through a data directory, for the "not running" message.
    data_dir: Option<PathBuf>,
}

impl std::fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminClient")
            .field("authority", &self.authority)
            .finish_non_exhaustive()
    }
}

impl AdminClient {
    /// A client for `url` (`http://HOST:PORT`) with `token`.
    pub fn new(url: &str, token: &str) -> Result<Self, ClientError> {
        let authority = url
            .strip_prefix("http://")
            .map(|rest| rest.trim_end_matches('/'))
            .filter(|a| !a.is_empty() && !a.contains('/') && a.contains(':'))
            .ok_or_else(|| ClientError::BadUrl(url.to_owned()))?;
        Ok(Self {
            authority: authority.to_owned(),
            token: token.to_owned(),
            data_dir: None,
        })
    }

    /// A client for the relay running on `data_dir`, from its `admin.json`.
    pub fn from_data_dir(data_dir: &Path) -> Result<Self, ClientError> {
        let path = AdminFile::path(data_dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ClientError::NotRunning(data_dir.to_owned()));
            }
            Err(e) => {
                return Err(ClientError::BadAdminFile {
                    path,
                    reason: format!("{e} (run this as the user the relay runs as)"),
                });
            }
        };
        let file: AdminFile =
            serde_json::from_str(&text).map_err(|e| ClientError::BadAdminFile {
                path: path.clone(),
                reason: format!("not valid admin JSON ({e}); restart the relay to rewrite it"),
            })?;
        let mut client = Self::new(&file.url, &file.token)?;
        client.data_dir = Some(data_dir.to_owned());
        Ok(client)
    }

    /// Creates an invite.
    pub async fn create_invite(&self, request: CreateInvite) -> Result<InviteCreated, ClientError> {
        self.call(Method::POST, "/v1/invites", Some(&request)).await
    }

    /// Reads the relay's totals.
    pub async fn stats(&self) -> Result<Stats, ClientError> {
        self.call::<(), _>(Method::GET, "/v1/stats", None).await
    }

    /// The admin listener's URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.authority)
    }

    /// Streams a backup of the running relay (`GET /v1/backup`) into `out`, calling
    /// `progress` with the bytes received so far. A stall of [`REQUEST_TIMEOUT`] fails it.
    pub async fn backup(
        &self,
        out: &mut impl std::io::Write,
        mut progress: impl FnMut(u64),
    ) -> Result<u64, ClientError> {
        let request = Request::builder()
            .method(Method::GET)
            .uri("/v1/backup")
            .header(header::HOST, &self.authority)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .body(Full::new(Bytes::new()))
            .map_err(|e| self.unreachable(e))?;
        let (mut sender, driver) = self.connect().await?;
        let response = tokio::time::timeout(REQUEST_TIMEOUT, sender.send_request(request))
            .await
            .map_err(|_| self.unreachable("no answer within 30 s"))?
            .map_err(|e| self.unreachable(e))?;
        let status = response.status();
        let mut body = response.into_body();
        if !status.is_success() {
            let bytes = body
                .collect()
                .await
                .map_err(|e| self.unreachable(e))?
                .to_bytes();
            driver.abort();
            return Err(self.refused(status, &bytes));
        }
        let mut received = 0u64;
        loop {
            let frame = tokio::time::timeout(REQUEST_TIMEOUT, body.frame())
                .await
                .map_err(|_| self.unreachable("the backup stalled for 30 s"))?;
            let Some(frame) = frame else { break };
            let frame =
                frame.map_err(|e| self.unreachable(format!("the backup broke off: {e}")))?;
            if let Ok(data) = frame.into_data() {
                out.write_all(&data)
                    .map_err(|e| self.unreachable(format!("writing the backup file: {e}")))?;
                received += u64::try_from(data.len()).unwrap_or(u64::MAX);
                progress(received);
            }
        }
        out.flush()
            .map_err(|e| self.unreachable(format!("writing the backup file: {e}")))?;
        driver.abort();
        Ok(received)
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let body = match body {
            Some(b) => serde_json::to_vec(b).map_err(|e| self.unreachable(e))?,
            None => Vec::new(),
        };
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.authority)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| self.unreachable(e))?;
        let (status, bytes) = tokio::time::timeout(REQUEST_TIMEOUT, self.send(request))
            .await
            .map_err(|_| self.unreachable("no answer within 30 s"))??;
        match status {
            s if s.is_success() => serde_json::from_slice(&bytes)
                .map_err(|e| self.unreachable(format!("unexpected answer ({e})"))),
            status => Err(self.refused(status, &bytes)),
        }
    }

    /// The error for a non-success answer.
    fn refused(&self, status: StatusCode, bytes: &[u8]) -> ClientError {
        if status == StatusCode::UNAUTHORIZED {
            return ClientError::Unauthorized;
        }
        ClientError::Refused {
            status,
            message: serde_json::from_slice::<ErrorBody>(bytes)
                .map(|b| b.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(bytes).into_owned()),
        }
    }

    /// Opens an HTTP/1 connection to the admin listener; the returned task drives it.
    async fn connect(
        &self,
    ) -> Result<
        (
            hyper::client::conn::http1::SendRequest<Full<Bytes>>,
            tokio::task::JoinHandle<hyper::Result<()>>,
        ),
        ClientError,
    > {
        let stream = tokio::net::TcpStream::connect(&self.authority)
            .await
            .map_err(|e| match &self.data_dir {
                Some(dir) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    ClientError::NotRunning(dir.clone())
                }
                _ => self.unreachable(e),
            })?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.unreachable(e))?;
        Ok((sender, tokio::spawn(connection)))
    }

    async fn send(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let (mut sender, driver) = self.connect().await?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| self.unreachable(e))?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| self.unreachable(e))?
            .to_bytes();
        driver.abort();
        Ok((status, bytes))
    }

    fn unreachable(&self, reason: impl std::fmt::Display) -> ClientError {
        ClientError::Unreachable {
            url: format!("http://{}", self.authority),
            reason: reason.to_string(),
        }
    }
}
