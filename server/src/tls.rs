//! Server certificates: load a configured PEM chain and key, or create (once) and reuse a
//! self-signed development certificate in `<data>/tls/`.
//!
//! The resulting [`rustls::ServerConfig`] speaks TLS 1.3 only (every Kith client does), asks
//! no client certificate and offers ALPN `http/1.1` (the WebSocket upgrade). It names the
//! aws-lc-rs provider explicitly, so it works whether or not a process default is installed.
//!
//! ## Reloading
//!
//! Certificates from Let's Encrypt and the like are renewed every few weeks; restarting the
//! relay for that would disconnect every device. So the `ServerConfig` does not hold the
//! certificate itself but a [`CertificateResolver`], which hands each new handshake the
//! certificate currently loaded. [`ServerTls::reload`] (the relay calls it on SIGHUP) reads the
//! files again and swaps the new certificate in only if the whole chain and key load and
//! match: a half-copied or wrong file keeps the old certificate and returns the reason.
//! Connections already open keep their TLS session; only new handshakes see the new one.

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

/// Directory under the data dir holding the development certificate.
pub const DEV_CERT_DIR: &str = "tls";

/// The server's TLS configuration and what an operator needs to know about its certificate.
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// For [`Relay::serve`](crate::relay::Relay::serve). Its certificate comes from
    /// [`ServerTls::reload`]'s resolver, so it never needs rebuilding.
    pub config: Arc<ServerConfig>,
    /// The certificate chain file.
    pub cert_path: PathBuf,
    /// The private key file.
    pub key_path: PathBuf,
    /// Which certificate this is.
    pub kind: CertificateKind,
    resolver: Arc<CertificateResolver>,
}

/// The certificate being served now, with what the banner shows of it.
#[derive(Debug)]
struct Loaded {
    certified: Arc<CertifiedKey>,
    /// The certificate file's text.
    pem: String,
    /// SHA-256 of the leaf certificate.
    fingerprint: String,
}

/// Hands every TLS handshake the certificate loaded last (see the module docs).
#[derive(Debug)]
pub struct CertificateResolver {
    current: RwLock<Arc<Loaded>>,
}

impl CertificateResolver {
    fn current(&self) -> Arc<Loaded> {
        // A poisoned lock still holds a complete certificate: the swap is one assignment.
        let guard = self.current.read().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(&guard)
    }

    fn replace(&self, loaded: Loaded) {
        let mut guard = self.current.write().unwrap_or_else(PoisonError::into_inner);
        *guard = Arc::new(loaded);
    }
}

impl ResolvesServerCert for CertificateResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.current().certified))
    }
}

impl ServerTls {
    /// The certificate file's PEM text as last loaded: for the development certificate, the
    /// one certificate a client must trust.
    pub fn certificate_pem(&self) -> String {
        self.resolver.current().pem.clone()
    }

    /// SHA-256 of the leaf certificate (DER) being served, as colon-separated upper-case hex.
    pub fn fingerprint(&self) -> String {
        self.resolver.current().fingerprint.clone()
    }

    /// Reads the certificate and key files again and serves them to new connections. On any
    /// error the previous certificate stays in use and the error says which file is wrong.
    /// Returns the new fingerprint.
    pub fn reload(&self) -> Result<String, TlsError> {
        let loaded = load_files(&self.cert_path, &self.key_path)?;
        let fingerprint = loaded.fingerprint.clone();
        self.resolver.replace(loaded);
        Ok(fingerprint)
    }
}

/// Where the certificate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateKind {
    /// `tls_cert`/`tls_key` from the configuration.
    Configured,
    /// The development certificate, created on this start.
    DevelopmentCreated,
    /// The development certificate, created on an earlier start.
    DevelopmentReused,
}

/// Why TLS could not be set up. Names files, never key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done ("cannot read certificate file", …).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A file did not hold what it should.
    #[error("{}: {problem}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it and what to do.
        problem: String,
    },
    /// Only one of the development certificate's two files exists.
    #[error(
        "found {} but not {}; delete the directory {} to create a new development certificate",
        present.display(), missing.display(), dir.display()
    )]
    HalfDevCertificate {
        /// The file found.
        present: PathBuf,
        /// The file missing.
        missing: PathBuf,
        /// Their directory.
        dir: PathBuf,
    },
    /// rustls refused the certificate and key (for example, they do not match).
    #[error("certificate {} and key {} cannot be used together: {reason}", cert.display(), key.display())]
    Rejected {
        /// Certificate file.
        cert: PathBuf,
        /// Key file.
        key: PathBuf,
        /// rustls's reason.
        reason: String,
    },
    /// The development certificate could not be generated.
    #[error("cannot create a development certificate: {0}")]
    Generate(String),
}

/// Loads a PEM certificate chain (leaf first) and its private key.
pub fn load(cert_path: &Path, key_path: &Path) -> Result<ServerTls, TlsError> {
    build(cert_path, key_path, CertificateKind::Configured)
}

/// Loads `<data_dir>/tls/{cert,key}.pem`, creating them first if neither exists. The
/// certificate names `relay_name`, `localhost`, `127.0.0.1` and `::1`. To change the names of
/// an existing development certificate, delete the directory.
pub fn development(data_dir: &Path, relay_name: &str) -> Result<ServerTls, TlsError> {
    let dir = data_dir.join(DEV_CERT_DIR);
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    let kind = match (cert_path.exists(), key_path.exists()) {
        (true, true) => CertificateKind::DevelopmentReused,
        (false, false) => {
            create_development(&dir, &cert_path, &key_path, relay_name)?;
            CertificateKind::DevelopmentCreated
        }
        (true, false) => return Err(half(cert_path, key_path, dir)),
        (false, true) => return Err(half(key_path, cert_path, dir)),
    };
    build(&cert_path, &key_path, kind)
}

fn half(present: PathBuf, missing: PathBuf, dir: PathBuf) -> TlsError {
    TlsError::HalfDevCertificate {
        present,
        missing,
        dir,
    }
}

fn create_development(
    dir: &Path,
    cert_path: &Path,
    key_path: &Path,
    relay_name: &str,
) -> Result<(), TlsError> {
    let mut names = vec![relay_name.to_owned()];
    for extra in ["localhost", "127.0.0.1", "::1"] {
        if !names.iter().any(|n| n == extra) {
            names.push(extra.to_owned());
        }
    }
    let mut params =
        rcgen::CertificateParams::new(names).map_err(|e| TlsError::Generate(e.to_string()))?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("kith-relay development ({relay_name})"),
    );
    let key = rcgen::KeyPair::generate().map_err(|e| TlsError::Generate(e.to_string()))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| TlsError::Io {
            action: "cannot create directory",
            path: dir.to_owned(),
            source,
        })?;
    // The key first: a certificate without its key would be the worse leftover.
    write_new(key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_new(cert_path, cert.pem().as_bytes(), 0o644)
}

/// Creates a file that must not exist yet, with `mode`, and syncs it.
fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), TlsError> {
    let io = |source| TlsError::Io {
        action: "cannot write",
        path: path.to_owned(),
        source,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    file.write_all(contents).map_err(io)?;
    file.sync_all().map_err(io)
}

fn build(cert_path: &Path, key_path: &Path, kind: CertificateKind) -> Result<ServerTls, TlsError> {
    let loaded = load_files(cert_path, key_path)?;
    let resolver = Arc::new(CertificateResolver {
        current: RwLock::new(Arc::new(loaded)),
    });
    let rejected = |e: rustls::Error| TlsError::Rejected {
        cert: cert_path.to_owned(),
        key: key_path.to_owned(),
        reason: e.to_string(),
    };
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(rejected)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::clone(&resolver) as Arc<dyn ResolvesServerCert>);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(ServerTls {
        config: Arc::new(config),
        cert_path: cert_path.to_owned(),
        key_path: key_path.to_owned(),
        kind,
        resolver,
    })
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Reads and checks a chain and its key: every certificate parses, the key is usable by the
/// provider and belongs to the first certificate.
fn load_files(cert_path: &Path, key_path: &Path) -> Result<Loaded, TlsError> {
    let (chain, pem) = read_chain(cert_path)?;
    let key = read_key(key_path)?;
    let fingerprint = chain.first().map(fingerprint).unwrap_or_default();
    let certified =
        CertifiedKey::from_der(chain, key, &provider()).map_err(|e| TlsError::Rejected {
            cert: cert_path.to_owned(),
            key: key_path.to_owned(),
            reason: match e {
                rustls::Error::InconsistentKeys(_) => {
                    "the private key does not belong to the certificate (check that tls_key is \
                     the key of tls_cert's first certificate)"
                        .to_owned()
                }
                other => other.to_string(),
            },
        })?;
    Ok(Loaded {
        certified: Arc::new(certified),
        pem,
        fingerprint,
    })
}

/// The chain, and the file's text.
fn read_chain(path: &Path) -> Result<(Vec<CertificateDer<'static>>, String), TlsError> {
    let bytes = read(path, "cannot read certificate file (tls_cert, --tls-cert)")?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_owned(),
            problem: format!("not a PEM certificate chain ({e})"),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_owned(),
            problem: "contains no certificate (expected \"-----BEGIN CERTIFICATE-----\" blocks, \
                      the server's certificate first)"
                .to_owned(),
        });
    }
    Ok((chain, String::from_utf8_lossy(&bytes).into_owned()))
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path, "cannot read private key file (tls_key, --tls-key)")?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| TlsError::Pem {
        path: path.to_owned(),
        problem: format!(
            "no usable private key ({e}); expected a PEM \"PRIVATE KEY\", \"RSA PRIVATE KEY\" or \
             \"EC PRIVATE KEY\" block"
        ),
    })
}

fn read(path: &Path, action: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Io {
        action,
        path: path.to_owned(),
        source,
    })
}

/// SHA-256 of a certificate, `AB:CD:…`.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let digest = Sha256::digest(cert.as_ref());
    let hex = hex::encode_upper(digest);
    let pairs: Vec<&str> = (0..hex.len())
        .step_by(2)
        .filter_map(|i| hex.get(i..i + 2))
        .collect();
    pairs.join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Key agreement prefers the hybrid X25519 + ML-KEM-768 group (rustls feature
    /// `prefer-post-quantum`), so traffic recorded today stays confidential against a future
    /// quantum computer; X25519 alone remains for clients without it.
    #[test]
    fn key_exchange_prefers_the_post_quantum_hybrid() {
        let names: Vec<_> = provider().kx_groups.iter().map(|g| g.name()).collect();
        assert_eq!(
            names.first(),
            Some(&rustls::NamedGroup::X25519MLKEM768),
            "{names:?}"
        );
        assert!(names.contains(&rustls::NamedGroup::X25519), "{names:?}");
    }

    #[test]
    fn development_certificate_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = development(dir.path(), "relay.example.org").unwrap();
        assert_eq!(first.kind, CertificateKind::DevelopmentCreated);
        assert_eq!(first.fingerprint().len(), 32 * 3 - 1);
        let again = development(dir.path(), "relay.example.org").unwrap();
        assert_eq!(again.kind, CertificateKind::DevelopmentReused);
        assert_eq!(again.fingerprint(), first.fingerprint());
        assert_eq!(again.config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        development(a.path(), "a").unwrap();
        development(b.path(), "b").unwrap();
        let err = load(
            &a.path().join("tls/cert.pem"),
            &b.path().join("tls/key.pem"),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("does not belong to the certificate"),
            "{err}"
        );
    }

    #[test]
    fn missing_and_empty_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let err = load(&missing, &missing).unwrap_err();
        assert!(
            err.to_string().starts_with("cannot read certificate file"),
            "{err}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let err = load(&empty, &empty).unwrap_err();
        assert!(err.to_string().contains("contains no certificate"), "{err}");
    }

    #[test]
    fn half_a_development_certificate_is_explained() {
        let dir = tempfile::tempdir().unwrap();
        development(dir.path(), "localhost").unwrap();
        std::fs::remove_file(dir.path().join("tls/key.pem")).unwrap();
        let err = development(dir.path(), "localhost").unwrap_err();
        assert!(err.to_string().contains("delete the directory"), "{err}");
    }

    #[test]
    fn reload_swaps_a_good_certificate_and_keeps_the_old_one_on_error() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let served = development(a.path(), "a").unwrap();
        let old = served.fingerprint();
        let other = development(b.path(), "b").unwrap();
        let cert = a.path().join("tls/cert.pem");
        let key = a.path().join("tls/key.pem");

        std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nnot base64!\n").unwrap();
        let err = served.reload().unwrap_err();
        assert!(err.to_string().contains("cert.pem"), "{err}");
        assert_eq!(served.fingerprint(), old);

        std::fs::copy(b.path().join("tls/cert.pem"), &cert).unwrap();
        let err = served.reload().unwrap_err();
        assert!(err.to_string().contains("does not belong"), "{err}");
        assert_eq!(served.fingerprint(), old);

        std::fs::copy(b.path().join("tls/key.pem"), &key).unwrap();
        assert_eq!(served.reload().unwrap(), other.fingerprint());
        assert_eq!(served.fingerprint(), other.fingerprint());
        assert_eq!(served.certificate_pem(), other.certificate_pem());
    }
}
