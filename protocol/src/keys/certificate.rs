//! Device certificates: the account key vouches for a device (SPEC.md §3.4).

use serde::{Deserialize, Serialize};

use super::{
    AccountKeyPair, AccountPublicKey, DeviceId, DeviceKeyPair, DeviceSigningPublicKey,
    IdentityPublicKey,
};
use crate::consts::{PROTOCOL_VERSION, labels};
use crate::encoding::{self, DecodeError};

/// Encoded length of a certificate: version 1, account key 32, device id 16, identity key 32,
/// signing key 32, created_at varint ≤ 10, signature 64.
pub(crate) const MAX_CERTIFICATE_LEN: usize = 1 + 32 + 16 + 32 + 32 + 10 + 64;

/// The signed part of a certificate.
#[derive(Serialize)]
struct CertificateBody<'a> {
    version: u8,
    account_key: &'a AccountPublicKey,
    device_id: &'a DeviceId,
    identity_key: &'a IdentityPublicKey,
    signing_key: &'a DeviceSigningPublicKey,
    created_at: u64,
}

/// An account key's statement that a device (id and both public keys) belongs to the account.
///
/// ```text
/// DeviceCertificate = version:u8 || account_key:[32] || device_id:[16] || identity_key:[32]
///                     || signing_key:[32] || created_at:varint u64 || signature:[64]
/// signature = Ed25519(account_key, "Kith-v1 device certificate" || all fields before it)
/// ```
///
/// An unverified certificate is only data: call [`DeviceCertificate::verify`] to get a
/// [`VerifiedCertificate`], which is what the rest of the API accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceCertificate {
    version: u8,
    account_key: AccountPublicKey,
    device_id: DeviceId,
    identity_key: IdentityPublicKey,
    signing_key: DeviceSigningPublicKey,
    created_at: u64,
    #[serde(with = "crate::encoding::array")]
    signature: [u8; 64],
}

/// Why a certificate was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateError {
    /// The certificate was made for another protocol version.
    #[error("certificate version {found} is not supported")]
    UnsupportedVersion {
        /// Version found.
        found: u8,
    },
    /// The signature does not verify under the certificate's account key.
    #[error("certificate signature is invalid")]
    BadSignature,
    /// The certificate is valid but belongs to another account than expected.
    #[error("certificate belongs to another account")]
    WrongAccount,
}

impl DeviceCertificate {
    pub(super) fn sign(
        account: &AccountKeyPair,
        device_id: DeviceId,
        device: &DeviceKeyPair,
        created_at: u64,
    ) -> Self {
        let mut cert = Self {
            version: PROTOCOL_VERSION,
            account_key: account.public_key(),
            device_id,
            identity_key: device.identity_public(),
            signing_key: device.signing_public(),
            created_at,
            signature: [0; 64],
        };
        cert.signature = account.sign(&cert.signed_bytes());
        cert
    }

    fn signed_bytes(&self) -> Vec<u8> {
        let body = CertificateBody {
            version: self.version,
            account_key: &self.account_key,
            device_id: &self.device_id,
            identity_key: &self.identity_key,
            signing_key: &self.signing_key,
            created_at: self.created_at,
        };
        let mut out = labels::DEVICE_CERTIFICATE.to_vec();
        out.extend_from_slice(&encoding::encode(&body));
        out
    }

    /// Checks the version and the account key's signature.
    pub fn verify(&self) -> Result<VerifiedCertificate, CertificateError> {
        if self.version != PROTOCOL_VERSION {
            return Err(CertificateError::UnsupportedVersion {
                found: self.version,
            });
        }
        if !self
            .account_key
            .verify(&self.signed_bytes(), &self.signature)
        {
            return Err(CertificateError::BadSignature);
        }
        Ok(VerifiedCertificate(self.clone()))
    }

    /// Like [`verify`](Self::verify), and also requires the certificate to belong to `account`.
    pub fn verify_for(
        &self,
        account: &AccountPublicKey,
    ) -> Result<VerifiedCertificate, CertificateError> {
        let verified = self.verify()?;
        if verified.account_key() != account {
            return Err(CertificateError::WrongAccount);
        }
        Ok(verified)
    }

    /// The account key this certificate claims (not yet verified).
    pub fn claimed_account_key(&self) -> &AccountPublicKey {
        &self.account_key
    }

    /// The device id this certificate claims (not yet verified).
    pub fn claimed_device_id(&self) -> DeviceId {
        self.device_id
    }

    /// Canonical encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        encoding::encode(self)
    }

    /// Decodes a canonical encoding (does not verify).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        encoding::decode(bytes, MAX_CERTIFICATE_LEN)
    }
}

/// A certificate whose signature has been checked. Only [`DeviceCertificate::verify`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCertificate(DeviceCertificate);

impl VerifiedCertificate {
    /// The account the device belongs to.
    pub fn account_key(&self) -> &AccountPublicKey {
        &self.0.account_key
    }

    /// The device id.
    pub fn device_id(&self) -> DeviceId {
        self.0.device_id
    }

    /// The device's X25519 identity key.
    pub fn identity_key(&self) -> &IdentityPublicKey {
        &self.0.identity_key
    }

    /// The device's Ed25519 signing key.
    pub fn signing_key(&self) -> &DeviceSigningPublicKey {
        &self.0.signing_key
    }

    /// Creation time, seconds since the Unix epoch, as stated by the account.
    pub fn created_at(&self) -> u64 {
        self.0.created_at
    }

    /// The underlying certificate, e.g. to send it on.
    pub fn certificate(&self) -> &DeviceCertificate {
        &self.0
    }
}
