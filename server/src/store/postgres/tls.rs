//! TLS to the database server.
//!
//! With `sslmode=require` in the database URL every connection (pool, migrations, LISTEN) is
//! TLS, and the server's certificate must verify against the system's trusted roots or the
//! operator's `database_ca` file, for the host name in the URL — a man in the middle between
//! relay and database cannot read the traffic or the password. Without it (or with `disable`
//! or `prefer`) connections are plain: the right choice for a database on the same machine or
//! a private network only, and the relay warns when the host is not a loopback address.
//! (`prefer` is treated as `disable`: TLS that need not verify protects against nobody who
//! can interfere, and libpq's "try TLS, fall back to plain" would hide a misconfiguration.)

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::store::StoreError;

/// The connector every connection uses; it does TLS only when the config asks for it.
pub(super) type Tls = MakeRustlsConnect;

/// Settles the URL's `sslmode` to `Require` (verified TLS) or `Disable` and returns the
/// connector, trusting the system roots and the certificates in `ca_file`.
pub(super) fn configure(
    config: &mut tokio_postgres::Config,
    ca_file: Option<&Path>,
) -> Result<Tls, StoreError> {
    if config.get_ssl_mode() != SslMode::Require {
        config.ssl_mode(SslMode::Disable);
        if !config.get_hosts().iter().all(is_local) {
            tracing::warn!(
                "the connection to the database is not encrypted: add sslmode=require to the \
                 database URL unless the network between relay and database is private"
            );
        }
    }
    let mut roots = RootCertStore::empty();
    // Unreadable system roots are no error: `database_ca` may be all that is needed, and a
    // server nobody vouches for fails verification with a clear error at connect time.
    let (_, _) = roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(path) = ca_file {
        let certificates = read_ca(path)?;
        let (added, _) = roots.add_parsable_certificates(certificates);
        if added == 0 {
            return Err(StoreError::Backend(format!(
                "database_ca {} holds no usable certificate",
                path.display()
            )));
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Backend(format!("TLS setup for the database: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(client))
}

/// The PEM certificates in `path`.
fn read_ca(path: &Path) -> Result<Vec<CertificateDer<'static>>, StoreError> {
    let unreadable = |e: &dyn std::fmt::Display| {
        StoreError::Backend(format!("cannot read database_ca {}: {e}", path.display()))
    };
    CertificateDer::pem_file_iter(path)
        .map_err(|e| unreadable(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unreadable(&e))
}

/// Whether a database host is this machine (a Unix socket or a loopback address or name).
fn is_local(host: &Host) -> bool {
    match host {
        Host::Unix(_) => true,
        Host::Tcp(name) => {
            name == "localhost"
                || name
                    .trim_matches(['[', ']'])
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_require_turns_tls_on() {
        for (url, mode) in [
            ("postgres://k@db.example.org/kith", SslMode::Disable),
            (
                "postgres://k@db.example.org/kith?sslmode=prefer",
                SslMode::Disable,
            ),
            (
                "postgres://k@db.example.org/kith?sslmode=disable",
                SslMode::Disable,
            ),
            (
                "postgres://k@db.example.org/kith?sslmode=require",
                SslMode::Require,
            ),
        ] {
            let mut config: tokio_postgres::Config = url.parse().unwrap();
            configure(&mut config, None).unwrap();
            assert_eq!(config.get_ssl_mode(), mode, "{url}");
        }
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let mut config: tokio_postgres::Config = "postgres://k@127.0.0.1/kith".parse().unwrap();
        let Err(err) = configure(&mut config, Some(&path)) else {
            panic!("a CA file without certificates was accepted");
        };
        assert!(err.to_string().contains("no usable certificate"), "{err}");
        assert!(configure(&mut config, Some(&dir.path().join("missing.pem"))).is_err());
    }

    #[test]
    fn loopback_hosts_are_local() {
        assert!(is_local(&Host::Tcp("127.0.0.1".into())));
        assert!(is_local(&Host::Tcp("::1".into())));
        assert!(is_local(&Host::Tcp("localhost".into())));
        assert!(!is_local(&Host::Tcp("db.example.org".into())));
        assert!(!is_local(&Host::Tcp("10.0.0.5".into())));
    }
}
