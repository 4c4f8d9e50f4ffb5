//! Identities, certificates and prekeys (SPEC.md §3).

mod account;
mod bundle;
mod certificate;
mod device;
mod prekeys;

pub use account::{AccountKeyPair, AccountPublicKey};
pub use bundle::{BundleError, PrekeyBundle, VerifiedBundle};
pub use certificate::{CertificateError, DeviceCertificate, VerifiedCertificate};
pub use device::{DeviceId, DeviceKeyPair, DeviceSigningPublicKey, IdentityPublicKey};
pub use prekeys::{
    KemPrekey, KemPrekeyKind, KemPrekeySecret, KemPublicKey, OneTimePrekey, OneTimePrekeySecret,
    PrekeyId, SignedPrekey, SignedPrekeySecret,
};

use core::fmt;

/// Writes the first bytes of a public key in hex, for `Debug` output of public types.
pub(crate) fn fmt_key_prefix(f: &mut fmt::Formatter<'_>, name: &str, bytes: &[u8]) -> fmt::Result {
    write!(f, "{name}(")?;
    for b in bytes.iter().take(8) {
        write!(f, "{b:02x}")?;
    }
    write!(f, "…)")
}
