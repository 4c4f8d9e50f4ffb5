//! How the device trusts the relay's TLS certificate, and the TLS client configuration that
//! follows from it (TLS 1.3 only, aws-lc-rs, never a process-wide default provider).

use std::sync::Arc;

use rustls::ClientConfig;
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::LinkError;
use super::pin::PinnedCertificate;

/// Storage tag of [`Trust::System`].
const TAG_SYSTEM: u8 = 0;
/// Storage tag of [`Trust::Certificate`].
const TAG_CERTIFICATE: u8 = 1;
/// Storage tag of [`Trust::Fingerprint`].
const TAG_FINGERPRINT: u8 = 2;

/// Which certificates the device accepts from its relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// The operating system's certificate authorities (a relay with a public certificate).
    System,
    /// Exactly these CA or self-signed certificates (PEM).
    Certificate(String),
    /// A certificate whose DER encoding has this SHA-256 digest, whoever issued it.
    Fingerprint([u8; 32]),
}

/// A relay fingerprint that is not 32 bytes of hexadecimal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "a relay fingerprint is the certificate's SHA-256: 64 hexadecimal digits, optionally in \
     pairs separated by ':' (as kith-relay prints it at start)"
)]
pub struct FingerprintError;

impl Trust {
    /// The TLS client configuration trusting the relay this way.
    pub(crate) fn client_config(&self) -> Result<Arc<ClientConfig>, LinkError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|_| LinkError::TlsSetup)?;
        let config = match self {
            Self::System => builder.with_root_certificates(system_roots()?),
            Self::Certificate(pem) => builder.with_root_certificates(pem_roots(pem)?),
            Self::Fingerprint(pin) => {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(PinnedCertificate::new(
                        *pin, &provider,
                    )))
            }
        };
        Ok(Arc::new(config.with_no_client_auth()))
    }

    /// The stored form: one tag byte, then the tag's data.
    ///
    /// ```text
    /// 0x00                      System
    /// 0x01 || PEM text (UTF-8)  Certificate (the rest of the bytes)
    /// 0x02 || digest:[32]       Fingerprint
    /// ```
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        match self {
            Self::System => vec![TAG_SYSTEM],
            Self::Certificate(pem) => [&[TAG_CERTIFICATE][..], pem.as_bytes()].concat(),
            Self::Fingerprint(pin) => [&[TAG_FINGERPRINT][..], pin].concat(),
        }
    }

    /// Reads the form written by [`Trust::to_bytes`]; `None` if it is not one.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let (&tag, rest) = bytes.split_first()?;
        match tag {
            TAG_SYSTEM if rest.is_empty() => Some(Self::System),
            TAG_CERTIFICATE => std::str::from_utf8(rest)
                .ok()
                .map(|pem| Self::Certificate(pem.to_owned())),
            TAG_FINGERPRINT => rest.try_into().ok().map(Self::Fingerprint),
            _ => None,
        }
    }
}

/// Parses a SHA-256 fingerprint: 64 hex digits in any case, with or without `:` separators
/// (`AB:CD:…` as kith-relay prints it, or `abcd…`).
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32], FingerprintError> {
    let digits: String = text.trim().chars().filter(|&c| c != ':').collect();
    let mut pin = [0u8; 32];
    hex::decode_to_slice(digits, &mut pin).map_err(|_| FingerprintError)?;
    Ok(pin)
}

/// The operating system's certificate authorities; an error if none could be loaded.
fn system_roots() -> Result<RootCertStore, LinkError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(LinkError::NoSystemRoots);
    }
    Ok(roots)
}

/// Every certificate in `pem` as a trust anchor; an error unless there is at least one and
/// all of them parse.
fn pem_roots(pem: &str) -> Result<RootCertStore, LinkError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let cert = cert.map_err(|_| LinkError::BadCertificatePem)?;
        roots.add(cert).map_err(|_| LinkError::BadCertificatePem)?;
    }
    if roots.is_empty() {
        return Err(LinkError::BadCertificatePem);
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIN: [u8; 32] = [
        0xAB, 0xCD, 0xEF, 0x01, 0x23, 0x45, 0x67, 0x89, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
        13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 0xFF,
    ];

    #[test]
    fn fingerprint_accepts_plain_and_colon_separated_hex_in_any_case() {
        let plain = hex::encode(PIN);
        assert_eq!(parse_fingerprint(&plain), Ok(PIN));
        assert_eq!(parse_fingerprint(&plain.to_uppercase()), Ok(PIN));
        let pairs: Vec<String> = PIN.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(parse_fingerprint(&pairs.join(":")), Ok(PIN));
        assert_eq!(
            parse_fingerprint(&format!(" {} \n", pairs.join(":"))),
            Ok(PIN)
        );
    }

    #[test]
    fn fingerprint_rejects_wrong_lengths_and_non_hex() {
        let plain = hex::encode(PIN);
        for bad in [
            String::new(),
            plain[..62].to_owned(),
            format!("{plain}00"),
            format!("{}zz", &plain[..62]),
            plain.replace('a', "-"),
            format!("sha256:{plain}"),
        ] {
            assert_eq!(parse_fingerprint(&bad), Err(FingerprintError), "{bad}");
        }
    }

    #[test]
    fn trust_round_trips_through_bytes() {
        for trust in [
            Trust::System,
            Trust::Certificate("-----BEGIN CERTIFICATE-----\n…".to_owned()),
            Trust::Certificate(String::new()),
            Trust::Fingerprint(PIN),
        ] {
            assert_eq!(Trust::from_bytes(&trust.to_bytes()), Some(trust));
        }
    }

    #[test]
    fn trust_from_bytes_rejects_anything_else() {
        for bad in [
            &[][..],
            &[TAG_SYSTEM, 0],
            &[TAG_FINGERPRINT, 1, 2],
            &[TAG_FINGERPRINT; 34],
            &[TAG_CERTIFICATE, 0xFF],
            &[3],
        ] {
            assert_eq!(Trust::from_bytes(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn bad_pem_is_an_error() {
        for pem in [
            "",
            "not a certificate",
            "-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n",
        ] {
            let result = Trust::Certificate(pem.to_owned()).client_config();
            assert!(matches!(result, Err(LinkError::BadCertificatePem)), "{pem}");
        }
    }
}
