//! `<data>/admin.json`: how the command line finds the running relay.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::api::AdminFile;

/// The admin bearer token: random per start, kept in memory and in `admin.json` only.
#[derive(Clone)]
pub struct AdminToken(String);

impl AdminToken {
    /// A fresh random token.
    pub fn generate() -> Result<Self, getrandom::Error> {
        super::random_hex().map(Self)
    }

    /// The token text, to write to `admin.json` or to compare.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminToken").finish_non_exhaustive()
    }
}

/// Writes `admin.json` (mode 0600) atomically: a temporary file renamed into place, so a
/// reader never sees half a file. An unspecified listen address (`0.0.0.0`) is written as
/// loopback, the address the command line on this machine can reach.
pub fn write_admin_file(
    data_dir: &Path,
    admin_addr: SocketAddr,
    token: &AdminToken,
) -> std::io::Result<()> {
    let mut addr = admin_addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    let contents = AdminFile {
        url: format!("http://{addr}"),
        token: token.expose().to_owned(),
    };
    let json = serde_json::to_vec_pretty(&contents).map_err(std::io::Error::other)?;
    let path = AdminFile::path(data_dir);
    let tmp = path.with_extension("json.tmp");
    // A leftover from a crash would make create_new fail.
    let _ = std::fs::remove_file(&tmp);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(&json)?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path)
}

/// Removes `admin.json` (a missing file is fine).
pub fn remove_admin_file(data_dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(AdminFile::path(data_dir)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
