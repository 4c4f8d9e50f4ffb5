//! A fresh PostgreSQL database per test, for the tests of relays sharing one database.
//!
//! `KITH_TEST_DATABASE_URL` names a database the test role can connect to and whose role may
//! create databases (`.ci/run` prepares `postgres://kith:kith@127.0.0.1:5432/kith_test`).
//! Each [`TestDatabase`] creates `kith_t_<random hex>` there and drops it when dropped (best
//! effort: a leftover database only costs disk space). Without the variable a test is
//! skipped with a message, except under `CI=true`, where it fails: CI must run them.

use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use anyhow::Context;

/// The variable naming the database tests may create their databases from.
pub const DATABASE_URL_ENV: &str = "KITH_TEST_DATABASE_URL";

/// How long creating or dropping a database may take.
const DDL_TIMEOUT: Duration = Duration::from_secs(30);

/// A database created for one test; dropped (with its connections) on drop.
#[derive(Debug)]
pub struct TestDatabase {
    /// Where `CREATE`/`DROP DATABASE` run: `KITH_TEST_DATABASE_URL`.
    admin_url: String,
    /// `kith_t_<hex>`.
    name: String,
    /// The admin URL with the database replaced by `name`.
    url: String,
}

impl TestDatabase {
    /// A new database, or `None` (with the reason printed) when `KITH_TEST_DATABASE_URL` is
    /// unset outside CI. Fails the test when it is unset under `CI=true` or the database
    /// cannot be created. Call it outside a Tokio runtime (from a plain `#[test]`), or use
    /// [`create_async`](Self::create_async).
    pub fn create(test: &str) -> Option<Self> {
        let admin_url = admin_url(test)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a Tokio runtime");
        Some(runtime.block_on(Self::create_at(admin_url)))
    }

    /// [`create`](Self::create) from async code.
    pub async fn create_async(test: &str) -> Option<Self> {
        Some(Self::create_at(admin_url(test)?).await)
    }

    async fn create_at(admin_url: String) -> Self {
        let name = format!(
            "kith_t_{:016x}",
            RandomState::new().hash_one(std::process::id())
        );
        let url = with_database(&admin_url, &name);
        let sql = format!("CREATE DATABASE {name}");
        tokio::time::timeout(DDL_TIMEOUT, execute(&admin_url, &sql))
            .await
            .context("timed out")
            .and_then(|r| r)
            .unwrap_or_else(|e| {
                panic!("cannot create a test database through {DATABASE_URL_ENV}: {e:#}")
            });
        Self {
            admin_url,
            name,
            url,
        }
    }

    /// The connection string of this database (what `KITH_RELAY_DATABASE_URL` gets).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Its own thread and runtime: this may run inside a test's runtime, where blocking
        // on another runtime is not allowed. Bounded by DDL_TIMEOUT.
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(drop_database(&admin_url, &name))
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("could not drop test database {}: {e:#}", self.name);
        }
    }
}

/// `KITH_TEST_DATABASE_URL`, or `None` after printing why `test` is skipped.
fn admin_url(test: &str) -> Option<String> {
    match std::env::var(DATABASE_URL_ENV) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => panic!(
            "{test}: {DATABASE_URL_ENV} is not set, and under CI the PostgreSQL tests must \
             run (.ci/run starts PostgreSQL and sets it)"
        ),
        _ => {
            eprintln!(
                "skipping {test}: set {DATABASE_URL_ENV} (e.g. \
                 postgres://kith:kith@127.0.0.1:5432/kith_test, a role with CREATEDB) to run it"
            );
            None
        }
    }
}

/// Drops database `name` (closing the connections still open to it), through `admin_url`.
///
/// `WITH (FORCE)` terminates the other sessions, but a role without `pg_signal_backend` may
/// not terminate an autovacuum worker, which PostgreSQL starts on a database that just took
/// many writes: then the drop is refused with `insufficient_privilege` (or `object_in_use`)
/// until the worker is done. So a refused drop is tried again for up to [`DDL_TIMEOUT`].
pub(crate) async fn drop_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
    let deadline = tokio::time::Instant::now() + DDL_TIMEOUT;
    loop {
        let attempt = tokio::time::timeout_at(deadline, execute(admin_url, &sql))
            .await
            .context("timed out")?;
        let Err(e) = attempt else {
            return Ok(());
        };
        let busy = e
            .downcast_ref::<tokio_postgres::Error>()
            .and_then(tokio_postgres::Error::code)
            .is_some_and(|code| {
                *code == tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE
                    || *code == tokio_postgres::error::SqlState::OBJECT_IN_USE
            });
        if !busy || tokio::time::Instant::now() >= deadline {
            return Err(e);
        }
        // A back-off between attempts at a cleanup, not a wait for a test's event.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs one statement on a fresh connection to `url`.
async fn execute(url: &str, sql: &str) -> anyhow::Result<()> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .context("connect")?;
    let driver = tokio::spawn(connection);
    let result = client.batch_execute(sql).await.context("execute");
    drop(client);
    let _ = driver.await;
    result
}

/// `url` with its database replaced by `name`: the path of a `postgres://` URL, or a
/// `dbname=` appended to the keyword form (the last occurrence wins).
pub(crate) fn with_database(url: &str, name: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return format!("{url} dbname={name}");
    };
    let authority_start = scheme_end + 3;
    let rest = &url[authority_start..];
    let path_start = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, after) = rest.split_at(path_start);
    let query = after.find('?').map_or("", |i| &after[i..]);
    format!("{}{authority}/{name}{query}", &url[..authority_start])
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_the_database() {
        assert_eq!(
            with_database("postgres://kith:kith@127.0.0.1:5432/kith_test", "x"),
            "postgres://kith:kith@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgresql://h/db?sslmode=disable", "x"),
            "postgresql://h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
        assert_eq!(
            with_database("host=h user=u", "x"),
            "host=h user=u dbname=x"
        );
    }
}

/// A PostgreSQL server of the test's own (`initdb` + `pg_ctl` of PostgreSQL 15, run as the
/// `postgres` user), for tests that restart the database server: restarting the shared one
/// would break every other test using it. Stopped and deleted on drop.
#[derive(Debug)]
pub struct PrivatePostgres {
    dir: tempfile::TempDir,
    port: u16,
    /// Further server options (`-c name=value ...`).
    options: String,
}

/// Where Debian puts the PostgreSQL 15 server programs.
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

impl PrivatePostgres {
    /// Creates and starts a server on a free loopback port, trusting local connections of
    /// role `kith`, with a database `kith`. `None` (with the reason printed) where that is
    /// not possible (not root, no PostgreSQL 15) outside CI; under `CI=true` a failure.
    pub fn start(test: &str) -> Option<Self> {
        Self::start_or_skip(test, false)
    }

    /// Like [`start`](Self::start), but the server accepts TLS connections only (`hostssl`),
    /// with a self-signed certificate for `localhost` and `127.0.0.1` whose PEM file is
    /// [`ca_path`](Self::ca_path).
    pub fn start_tls_only(test: &str) -> Option<Self> {
        Self::start_or_skip(test, true)
    }

    fn start_or_skip(test: &str, tls_only: bool) -> Option<Self> {
        match Self::try_start(tls_only) {
            Ok(server) => Some(server),
            Err(e) => {
                let reason = format!("{test}: cannot run a private PostgreSQL server: {e:#}");
                assert!(std::env::var_os("CI").is_none(), "{reason}");
                eprintln!("skipped: {reason}");
                None
            }
        }
    }

    fn try_start(tls_only: bool) -> anyhow::Result<Self> {
        anyhow::ensure!(
            std::path::Path::new(PG_BIN).join("initdb").is_file(),
            "{PG_BIN}/initdb is missing (install postgresql-15)"
        );
        let dir = tempfile::tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut server = Self {
            dir,
            port,
            options: String::new(),
        };
        if tls_only {
            server.options = server.write_tls_files()?;
        }
        as_postgres(&["chown", "-R", "postgres", &server.root()], true)?;
        as_postgres(
            &[
                &format!("{PG_BIN}/initdb"),
                "-D",
                &server.data(),
                "-U",
                "kith",
                "-A",
                "trust",
                "--no-sync",
            ],
            false,
        )?;
        server.pg_ctl("start")?;
        as_postgres(
            &[
                &format!("{PG_BIN}/createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "kith",
                "kith",
            ],
            false,
        )?;
        Ok(server)
    }

    /// The URL of its database `kith`.
    pub fn url(&self) -> String {
        format!("postgres://kith@127.0.0.1:{}/kith", self.port)
    }

    /// The URL of its database `kith` by the name its certificate is for, with
    /// `sslmode=require`.
    pub fn tls_url(&self) -> String {
        format!(
            "postgres://kith@localhost:{}/kith?sslmode=require",
            self.port
        )
    }

    /// The server's certificate (self-signed: its own CA), PEM.
    pub fn ca_path(&self) -> std::path::PathBuf {
        self.dir.path().join("server.crt")
    }

    /// Writes the certificate, its key and an hba file that admits TLS connections only;
    /// returns the server options that use them.
    fn write_tls_files(&self) -> anyhow::Result<String> {
        let key = rcgen::KeyPair::generate()?;
        let params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
        let cert = params.self_signed(&key)?;
        std::fs::write(self.ca_path(), cert.pem())?;
        let key_path = self.dir.path().join("server.key");
        std::fs::write(&key_path, key.serialize_pem())?;
        std::fs::set_permissions(
            &key_path,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )?;
        let hba = self.dir.path().join("pg_hba.conf");
        std::fs::write(
            &hba,
            "hostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n",
        )?;
        Ok(format!(
            " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={} -c hba_file={}",
            self.ca_path().display(),
            key_path.display(),
            hba.display()
        ))
    }

    /// Restarts the server (`pg_ctl restart -m fast`: open connections are terminated, as in
    /// an upgrade or a crash-restart by the service manager) and waits until it accepts
    /// connections again.
    pub fn restart(&self) -> anyhow::Result<()> {
        self.pg_ctl("restart")
    }

    fn pg_ctl(&self, action: &str) -> anyhow::Result<()> {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off{}",
            self.port,
            self.root(),
            self.options
        );
        as_postgres(
            &[
                &format!("{PG_BIN}/pg_ctl"),
                "-D",
                &self.data(),
                "-l",
                &format!("{}/server.log", self.root()),
                "-o",
                &options,
                "-m",
                "fast",
                "-w",
                "-t",
                "60",
                action,
            ],
            false,
        )
    }

    fn root(&self) -> String {
        self.dir.path().display().to_string()
    }

    fn data(&self) -> String {
        format!("{}/data", self.root())
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self.pg_ctl("stop");
    }
}

/// Runs `args` as the `postgres` user (or, with `as_root`, as this root process), failing
/// with the command's output when it fails.
fn as_postgres(args: &[&str], as_root: bool) -> anyhow::Result<()> {
    let mut command = if as_root {
        std::process::Command::new(args[0])
    } else {
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "postgres", "--", args[0]]);
        c
    };
    command.args(&args[1..]);
    let output = command
        .output()
        .with_context(|| format!("running {}", args[0]))?;
    anyhow::ensure!(
        output.status.success(),
        "{} failed ({}): {}{}",
        args[0],
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}
