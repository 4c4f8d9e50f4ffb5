//! Certificate pinning: accept exactly the relay certificate with a given SHA-256 fingerprint.
//!
//! A small organisation's relay often has a self-signed certificate. Pinning its fingerprint
//! (printed by kith-relay at start) replaces the usual checks — issuer, name, validity period
//! — with one stronger check: this exact certificate. The TLS 1.3 handshake signature is still
//! verified, so the server must hold the certificate's private key.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, DigitallySignedStruct, Error, OtherError, PeerIncompatible, SignatureScheme,
};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The relay's certificate is not the pinned one. Carried inside
/// `rustls::CertificateError::Other` so the link can recognise it.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("fingerprint does not match")]
pub(super) struct FingerprintMismatch;

/// A [`ServerCertVerifier`] accepting only the end-entity certificate whose DER encoding has
/// the SHA-256 digest `pin`.
pub(super) struct PinnedCertificate {
    /// The expected SHA-256 of the certificate's DER encoding.
    pin: [u8; 32],
    /// The provider's algorithms for the handshake signature.
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedCertificate {
    /// A verifier for `pin`, checking handshake signatures with `provider`'s algorithms.
    pub(super) fn new(pin: [u8; 32], provider: &CryptoProvider) -> Self {
        Self {
            pin,
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl fmt::Debug for PinnedCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinnedCertificate")
            .field("pin", &hex::encode(self.pin))
            .finish_non_exhaustive()
    }
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let digest: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if bool::from(digest.ct_eq(&self.pin)) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(FingerprintMismatch)),
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        // The configuration offers TLS 1.3 only; refuse rather than trust a TLS 1.2 signature.
        Err(Error::PeerIncompatible(PeerIncompatible::Tls12NotOffered))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
