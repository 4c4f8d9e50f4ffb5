//! The admin listener's JSON bodies, shared by the server and the command-line client.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Name of the file in the data directory that tells the command line where the running
/// relay's admin listener is and which token it accepts.
pub const ADMIN_FILE: &str = "admin.json";

/// Longest validity of an invite.
pub const MAX_INVITE_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);

/// Most uses of one invite.
pub const MAX_INVITE_USES: u32 = 100_000;

/// `POST /v1/invites` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateInvite {
    /// How many accounts may register with the token (1 to [`MAX_INVITE_USES`]).
    pub uses: u32,
    /// Seconds from now until the token expires (1 to [`MAX_INVITE_VALIDITY`]).
    pub expires_in_secs: u64,
}

/// `POST /v1/invites` response.
///
/// The token is the text to give to the person invited; clients send exactly these bytes as
/// `Register.invite`, and the relay stores only
/// [`InviteTokenHash::of`](crate::store::InviteTokenHash::of) of them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteCreated {
    /// The invite token: 64 lower-case hex characters.
    pub token: String,
    /// Uses granted.
    pub uses: u32,
    /// Unix seconds after which the token is refused.
    pub expires_at: u64,
}

impl std::fmt::Debug for InviteCreated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InviteCreated")
            .field("uses", &self.uses)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// `GET /v1/stats` response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Registered accounts.
    pub accounts: u64,
    /// Registered devices.
    pub devices: u64,
    /// Mailbox entries waiting for delivery.
    pub queued_envelopes: u64,
    /// Bytes waiting for delivery.
    pub queued_bytes: u64,
    /// Open client connections.
    pub connections: usize,
    /// Of those, authenticated ones.
    pub authenticated: usize,
}

/// An error body: `{"error": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: String,
}

/// The contents of `<data>/admin.json` (mode 0600).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminFile {
    /// Base URL of the admin listener, e.g. `http://127.0.0.1:7444`.
    pub url: String,
    /// The bearer token the `/v1/*` routes require.
    pub token: String,
}

impl std::fmt::Debug for AdminFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminFile")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl AdminFile {
    /// Where the file lives in a data directory.
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(ADMIN_FILE)
    }
}
