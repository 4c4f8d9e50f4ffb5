//! 32 secret bytes: zeroized on drop, compared in constant time, never shown by `Debug`.

use core::fmt;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A 32-byte secret (an envelope secret or a chain key), encoded as 32 raw bytes.
#[derive(Clone, Zeroize, ZeroizeOnDrop, Serialize, Deserialize)]
pub(super) struct Secret32([u8; 32]);

impl Secret32 {
    pub(super) fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub(super) fn random<R: rand_core::CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut secret = Self([0u8; 32]);
        rng.fill_bytes(&mut secret.0);
        secret
    }

    pub(super) fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl PartialEq for Secret32 {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for Secret32 {}

impl fmt::Debug for Secret32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret32(..)")
    }
}
