//! Prekey bundles and their signature-chain check (SPEC.md §3.6).

use serde::{Deserialize, Serialize};

use super::{
    AccountPublicKey, CertificateError, DeviceCertificate, KemPrekey, OneTimePrekey, SignedPrekey,
    VerifiedCertificate,
};
use crate::encoding::{self, DecodeError};

/// Upper bound on an encoded bundle (certificate, signed prekey, one-time prekey, KEM prekey).
pub(crate) const MAX_BUNDLE_LEN: usize = 4096;

/// What the relay hands out for one device of an account: everything an initiator needs to
/// start a session with that device without it being online.
///
/// ```text
/// PrekeyBundle = certificate:DeviceCertificate || signed_prekey:SignedPrekey
///                || one_time_prekey:Option<OneTimePrekey> || kem_prekey:KemPrekey
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrekeyBundle {
    certificate: DeviceCertificate,
    signed_prekey: SignedPrekey,
    one_time_prekey: Option<OneTimePrekey>,
    kem_prekey: KemPrekey,
}

/// Why a bundle was rejected. Any bad signature in the chain makes the whole bundle unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The device certificate is invalid or belongs to another account.
    #[error("bundle certificate rejected: {0}")]
    Certificate(#[from] CertificateError),
    /// The signed prekey's signature does not verify under the device signing key.
    #[error("signed prekey signature is invalid")]
    BadSignedPrekey,
    /// The ML-KEM prekey's signature does not verify under the device signing key.
    #[error("ML-KEM prekey signature is invalid")]
    BadKemPrekey,
}

impl PrekeyBundle {
    /// Assembles a bundle (the relay does this from stored prekeys).
    pub fn new(
        certificate: DeviceCertificate,
        signed_prekey: SignedPrekey,
        one_time_prekey: Option<OneTimePrekey>,
        kem_prekey: KemPrekey,
    ) -> Self {
        Self {
            certificate,
            signed_prekey,
            one_time_prekey,
            kem_prekey,
        }
    }

    /// The device certificate (unverified).
    pub fn certificate(&self) -> &DeviceCertificate {
        &self.certificate
    }

    /// Verifies the whole chain: the certificate under `account`, then the signed prekey and
    /// the KEM prekey under the certified device signing key.
    pub fn verify(&self, account: &AccountPublicKey) -> Result<VerifiedBundle, BundleError> {
        let certificate = self.certificate.verify_for(account)?;
        if !self.signed_prekey.verify(certificate.signing_key()) {
            return Err(BundleError::BadSignedPrekey);
        }
        if !self.kem_prekey.verify(certificate.signing_key()) {
            return Err(BundleError::BadKemPrekey);
        }
        Ok(VerifiedBundle {
            certificate,
            signed_prekey: self.signed_prekey.clone(),
            one_time_prekey: self.one_time_prekey.clone(),
            kem_prekey: self.kem_prekey.clone(),
        })
    }

    /// Canonical encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        encoding::encode(self)
    }

    /// Decodes a canonical encoding (does not verify).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        encoding::decode(bytes, MAX_BUNDLE_LEN)
    }
}

/// A bundle whose signature chain has been verified; the input to
/// [`crate::Session::initiate`].
#[derive(Debug, Clone)]
pub struct VerifiedBundle {
    pub(crate) certificate: VerifiedCertificate,
    pub(crate) signed_prekey: SignedPrekey,
    pub(crate) one_time_prekey: Option<OneTimePrekey>,
    pub(crate) kem_prekey: KemPrekey,
}

impl VerifiedBundle {
    /// The verified device certificate.
    pub fn certificate(&self) -> &VerifiedCertificate {
        &self.certificate
    }
}
