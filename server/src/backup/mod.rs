//! `kith-relay backup` and `kith-relay restore`: a sled relay's data in one file.
//!
//! A backup is taken from a running relay through its admin listener (`GET /v1/backup`,
//! [`BackupSource`]) or, when no relay runs on the data directory, by opening the store
//! directly. Either way it is written to `FILE.partial` and renamed into place only once
//! complete and read back, so a file named like a backup is always a whole one. What the file
//! holds, and why one-time prekeys are left out, is in [`ABOUT`] and in the store's
//! `backup` module; its layout is in [`format`].
//!
//! [`restore`] checks the whole file (format, version, checksum) before it creates anything,
//! refuses a data directory that already holds a relay's data unless told to move it aside,
//! and needs the relay stopped (the store's directory lock proves it).
//!
//! PostgreSQL deployments back up with `pg_dump` instead: the database is the whole state.

mod format;

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use indicatif::{ProgressBar, ProgressStyle};

use self::format::{FORMAT, Record, Writer};
pub use self::format::{FormatError, Header};
use crate::admin::client::{AdminClient, ClientError};
use crate::service::STORE_DIR;
use crate::store::{SledOptions, SledStore, Store, StoreError};
use crate::tls::DEV_CERT_DIR;

/// What a backup holds and does not, written into every file's header.
pub const ABOUT: &str = "A backup of a Kith relay (sled store). It holds only what the relay \
keeps anyway (ARCHITECTURE.md, \"What the relay may know and keep\"): accounts (handle, public \
account key, device ids and certificates), signed and last-resort prekeys, invites (SHA-256 of \
each token, uses left, expiry), idempotency records, and mailbox entries (recipient device, the \
sealed envelope only that device can open, arrival and expiry times). It holds no message \
contents, no senders, no contact lists or group rosters, and no one-time prekeys (a restored \
relay asks devices for fresh ones). If the relay uses its self-signed development certificate, \
the certificate and its private key are included: keep this file as private as the relay's data \
directory. Restore with: kith-relay restore --from FILE --data DIR (relay stopped).";

/// Files of the data directory a backup carries (the development certificate), if present.
const DATA_FILES: [&str; 2] = ["tls/cert.pem", "tls/key.pem"];

/// What the admin listener needs to stream a backup of the running relay.
#[derive(Debug, Clone)]
pub struct BackupSource {
    /// The running relay's store.
    pub store: Arc<SledStore>,
    /// Its data directory (for the development certificate).
    pub data_dir: PathBuf,
}

impl BackupSource {
    /// Writes a complete backup to `out` (blocking: run it off the async workers). Returns the
    /// bytes written.
    pub fn write_to(&self, out: impl Write) -> io::Result<u64> {
        write(&self.store, &self.data_dir, out, |_| {})
    }
}

/// Writes a backup of `store` (and the development certificate in `data_dir`) to `out`.
fn write(
    store: &SledStore,
    data_dir: &Path,
    out: impl Write,
    mut progress: impl FnMut(u64),
) -> io::Result<u64> {
    let header = Header {
        format: FORMAT,
        relay_version: env!("CARGO_PKG_VERSION").to_owned(),
        created_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        store: "sled".to_owned(),
        schema: SledStore::backup_schema_version(),
        about: ABOUT.to_owned(),
    };
    let mut writer = Writer::start(out, &header)?;
    for tree in SledStore::backup_trees() {
        let records = store.backup_records(tree).map_err(io::Error::other)?;
        for (n, record) in records.enumerate() {
            let (key, value) = record.map_err(io::Error::other)?;
            writer.tree(tree, &key, &value)?;
            if n % 1024 == 0 {
                progress(writer.written());
            }
        }
    }
    for name in DATA_FILES {
        match std::fs::read(data_dir.join(name)) {
            Ok(bytes) => writer.file(name, &bytes)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io::Error::new(e.kind(), format!("reading {name}: {e}"))),
        }
    }
    let total = writer.finish()?;
    progress(total);
    Ok(total)
}

/// Where `kith-relay backup` gets the data from.
#[derive(Debug)]
pub enum BackupFrom {
    /// The relay at this admin URL (`--admin`).
    Admin(AdminClient),
    /// The relay running on this data directory, or its store if none runs (`--data`).
    DataDir(PathBuf),
}

/// `kith-relay backup`.
#[derive(Debug)]
pub struct BackupOptions {
    /// The file to write.
    pub to: PathBuf,
    /// Where from.
    pub from: BackupFrom,
    /// Replace an existing file.
    pub force: bool,
    /// Draw a progress bar (stderr is a terminal).
    pub progress_bars: bool,
}

/// What a backup file holds, as read back.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The file.
    pub path: PathBuf,
    /// Its header.
    pub header: Header,
    /// Records per tree.
    pub trees: BTreeMap<String, u64>,
    /// Data-directory files.
    pub files: Vec<String>,
    /// Its size in bytes.
    pub bytes: u64,
    /// How the data was obtained, for the report.
    pub how: String,
}

/// Takes a backup as `options` say, then reads the file back to check it.
pub async fn backup(options: BackupOptions) -> anyhow::Result<Summary> {
    let to = &options.to;
    if to.exists() && !options.force {
        bail!(
            "{} exists already; choose a new file name (e.g. with the date in it) or add --force \
             to replace it",
            to.display()
        );
    }
    let partial = partial_path(to);
    let file =
        create_private(&partial).with_context(|| format!("cannot create {}", partial.display()))?;
    let bar = progress_bar(options.progress_bars, None, "backing up");
    let result = match &options.from {
        BackupFrom::Admin(client) => download(client, file, &bar).await,
        BackupFrom::DataDir(dir) => match AdminClient::from_data_dir(dir) {
            Ok(client) => download(&client, file, &bar).await,
            Err(ClientError::NotRunning(_)) => offline(dir, file, &bar).await,
            Err(e) => Err(e.into()),
        },
    };
    bar.finish_and_clear();
    let how = match result {
        Ok(how) => how,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    let mut summary = match inspect(&partial) {
        Ok(summary) => summary,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e.context("the backup just written does not read back; nothing was kept"));
        }
    };
    std::fs::rename(&partial, to)
        .with_context(|| format!("cannot rename {} to {}", partial.display(), to.display()))?;
    summary.path = to.clone();
    summary.how = how;
    Ok(summary)
}

/// Streams the running relay's backup into `file`.
async fn download(client: &AdminClient, file: File, bar: &ProgressBar) -> anyhow::Result<String> {
    let mut out = io::BufWriter::new(file);
    client
        .backup(&mut out, |n| bar.set_position(n))
        .await
        .map_err(|e| match e {
            ClientError::Refused { status, message } if status.as_u16() == 409 => {
                anyhow::anyhow!("{message}")
            }
            e => e.into(),
        })?;
    let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
    file.sync_all()?;
    Ok(format!("from the running relay at {}", client.url()))
}

/// Backs up the store of a stopped relay by opening it.
async fn offline(dir: &Path, file: File, bar: &ProgressBar) -> anyhow::Result<String> {
    let sled = dir.join(STORE_DIR);
    if !sled.join("conf").is_file() {
        bail!(
            "no running relay and no sled store in {} (no {}). If this relay stores its data in \
             PostgreSQL, back up the database with pg_dump instead (docs/operating.md, \
             \"Backups\")",
            dir.display(),
            sled.display()
        );
    }
    let store = SledStore::open(&sled, SledOptions::default()).map_err(|e| match e {
        StoreError::InUse => anyhow::anyhow!(
            "a relay uses {} but its admin.json is missing, so it cannot be asked for a backup; \
             restart it (it writes admin.json on start) or stop it",
            dir.display()
        ),
        e => anyhow::Error::new(e).context(format!("cannot open {}", sled.display())),
    })?;
    let written = write(&store, dir, &file, |n| bar.set_position(n));
    store.close().await?;
    written?;
    file.sync_all()?;
    Ok(format!(
        "from the stopped relay's store in {}",
        sled.display()
    ))
}

/// Reads a backup file completely (checksum included) and counts what it holds.
pub fn inspect(path: &Path) -> anyhow::Result<Summary> {
    let mut trees: BTreeMap<String, u64> = BTreeMap::new();
    let mut files = Vec::new();
    let header = format::read(
        path,
        |record| {
            match record {
                Record::Tree { tree, .. } => *trees.entry(tree).or_default() += 1,
                Record::File { path, .. } => files.push(path),
            }
            Ok(())
        },
        |_| {},
    )?;
    Ok(Summary {
        path: path.to_owned(),
        header,
        trees,
        files,
        bytes: std::fs::metadata(path)?.len(),
        how: String::new(),
    })
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = |tree: &str| self.trees.get(tree).copied().unwrap_or(0);
        writeln!(
            f,
            "Backup written to {} ({} bytes, {}).",
            self.path.display(),
            self.bytes,
            self.how
        )?;
        writeln!(
            f,
            "  {} accounts, {} devices, {} queued envelopes, {} invites",
            count("accounts"),
            count("devices"),
            count("entries"),
            count("invites")
        )?;
        if self.files.is_empty() {
            writeln!(
                f,
                "  no development certificate (the relay uses a configured one)"
            )?;
        } else {
            writeln!(
                f,
                "  with the development certificate and its private key: keep the file private"
            )?;
        }
        writeln!(
            f,
            "  It holds no message contents and no senders (see `head -n 2 {}`).",
            self.path.display()
        )?;
        write!(
            f,
            "  Restore with: kith-relay restore --from {} --data DIR",
            self.path.display()
        )
    }
}

/// `kith-relay restore`.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// The backup file.
    pub from: PathBuf,
    /// The data directory to restore into.
    pub data_dir: PathBuf,
    /// Move existing data aside instead of refusing.
    pub force: bool,
    /// Draw a progress bar (stderr is a terminal).
    pub progress_bars: bool,
}

/// What [`restore`] did.
#[derive(Debug, Clone)]
pub struct RestoreReport {
    /// What the file held.
    pub summary: Summary,
    /// Records dropped because the backup caught them half-written, by kind.
    pub dropped: Vec<(&'static str, u64)>,
    /// Where existing data was moved, if any.
    pub moved_aside: Vec<PathBuf>,
    /// The data directory.
    pub data_dir: PathBuf,
}

/// Restores a backup into a data directory whose relay is stopped.
pub async fn restore(options: &RestoreOptions) -> anyhow::Result<RestoreReport> {
    let summary = inspect(&options.from)?;
    let header = &summary.header;
    if header.store != "sled" || header.schema != SledStore::backup_schema_version() {
        bail!(
            "{} holds a {} store of layout version {}, but this kith-relay ({}) uses sled layout \
             version {}: restore it with kith-relay {} (the version that wrote it), then upgrade",
            options.from.display(),
            header.store,
            header.schema,
            env!("CARGO_PKG_VERSION"),
            SledStore::backup_schema_version(),
            header.relay_version
        );
    }
    let data = &options.data_dir;
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data)
        .with_context(|| format!("cannot create the data directory {}", data.display()))?;
    let moved_aside = clear_data_dir(data, options.force).await?;
    let sled = data.join(STORE_DIR);
    let store = SledStore::open(&sled, SledOptions::default())
        .with_context(|| format!("cannot create the store in {}", sled.display()))?;
    let result = fill(&store, options, summary.bytes);
    let closed = store.close().await;
    let (dropped, files) = result?;
    closed?;
    for (name, bytes) in files {
        write_data_file(data, &name, &bytes)?;
    }
    Ok(RestoreReport {
        summary,
        dropped,
        moved_aside,
        data_dir: data.clone(),
    })
}

/// Refuses a data directory holding a relay's data, or with `force` moves that data aside
/// (after checking no relay uses it). Returns where it went.
async fn clear_data_dir(data: &Path, force: bool) -> anyhow::Result<Vec<PathBuf>> {
    let present: Vec<PathBuf> = [STORE_DIR, DEV_CERT_DIR]
        .iter()
        .map(|name| data.join(name))
        .filter(|p| p.exists())
        .collect();
    if present.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<String> = present.iter().map(|p| p.display().to_string()).collect();
    if !force {
        bail!(
            "{} already holds a relay's data ({}); restoring would replace it. Restore into a \
             new directory, or add --force to move the existing data aside first (it is kept \
             as <name>.before-restore-<time>)",
            data.display(),
            names.join(", ")
        );
    }
    let sled = data.join(STORE_DIR);
    if sled.join("conf").is_file() {
        match SledStore::open(&sled, SledOptions::default()) {
            Ok(store) => store.close().await?,
            Err(StoreError::InUse) => bail!(
                "a relay is running on {}: stop it before restoring (e.g. systemctl stop \
                 kith-relay)",
                data.display()
            ),
            Err(e) => {
                tracing::warn!(error = %e, "the existing store does not open; moving it aside")
            }
        }
    }
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let mut moved = Vec::new();
    for path in present {
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".before-restore-{stamp}"));
        let target = path.with_file_name(name);
        std::fs::rename(&path, &target).with_context(|| {
            format!(
                "cannot move {} aside to {}",
                path.display(),
                target.display()
            )
        })?;
        moved.push(target);
    }
    Ok(moved)
}

/// A restored data-directory file.
type DataFile = (String, Vec<u8>);

/// Records dropped by the restore, by kind.
type Dropped = Vec<(&'static str, u64)>;

/// Writes every tree record into `store` and finishes the restore; returns what was dropped
/// and the data-directory files to write.
fn fill(
    store: &SledStore,
    options: &RestoreOptions,
    size: u64,
) -> anyhow::Result<(Dropped, Vec<DataFile>)> {
    if !store.is_empty_for_restore() {
        bail!(
            "the new store in {} is not empty",
            options.data_dir.display()
        );
    }
    let bar = progress_bar(options.progress_bars, Some(size), "restoring");
    let mut files = Vec::new();
    format::read(
        &options.from,
        |record| {
            match record {
                Record::Tree { tree, key, value } => store
                    .restore_record(&tree, &key, &value)
                    .with_context(|| format!("restoring a record of {tree}"))?,
                Record::File { path, bytes } if DATA_FILES.contains(&path.as_str()) => {
                    files.push((path, bytes));
                }
                Record::File { path, .. } => bail!("the backup holds an unexpected file {path:?}"),
            }
            Ok(())
        },
        |n| bar.set_position(n),
    )?;
    bar.set_message("checking references");
    let dropped = store.finish_restore()?;
    bar.finish_and_clear();
    Ok((dropped, files))
}

/// Writes a development-certificate file (the key readable by the relay's user only).
fn write_data_file(data: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let path = data.join(name);
    if let Some(dir) = path.parent() {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mode = if name.ends_with("key.pem") {
        0o600
    } else {
        0o644
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

impl fmt::Display for RestoreReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = |tree: &str| self.summary.trees.get(tree).copied().unwrap_or(0);
        let data = self.data_dir.display();
        writeln!(
            f,
            "Restored {} (taken {} by kith-relay {}) into {data}.",
            self.summary.path.display(),
            self.summary.header.created_at,
            self.summary.header.relay_version
        )?;
        writeln!(
            f,
            "  {} accounts, {} devices, {} queued envelopes, {} invites",
            count("accounts"),
            count("devices"),
            count("entries"),
            count("invites")
        )?;
        for (what, n) in &self.dropped {
            writeln!(
                f,
                "  dropped {n} {what} written or deleted while the backup was being taken"
            )?;
        }
        for path in &self.moved_aside {
            writeln!(f, "  the previous data was moved to {}", path.display())?;
        }
        writeln!(
            f,
            "  Devices upload fresh one-time prekeys when they next connect."
        )?;
        write!(f, "Start the relay with: kith-relay serve --data {data}")
    }
}

/// `FILE.partial`, next to `FILE`.
fn partial_path(to: &Path) -> PathBuf {
    let mut name = to.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    to.with_file_name(name)
}

/// Creates a file readable by its owner only, replacing a leftover.
fn create_private(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

/// A byte-counting bar on a terminal; hidden otherwise.
fn progress_bar(visible: bool, total: Option<u64>, what: &'static str) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let (bar, template) = match total {
        Some(total) => (
            ProgressBar::new(total),
            "{prefix} [{bar:30}] {bytes}/{total_bytes} {elapsed} {msg}",
        ),
        None => (
            ProgressBar::new_spinner(),
            "{prefix} {spinner} {bytes} {elapsed} {msg}",
        ),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar.with_prefix(what)
}
