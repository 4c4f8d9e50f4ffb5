//! Root key and `KDF_RK` (SPEC.md §6.2).

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::chain_key::ChainKey;
use crate::consts::labels;
use crate::kdf::hkdf_sha256;

/// `RK`: the root key. `KDF_RK(RK, DH_out)` = HKDF-SHA256(salt = RK, ikm = DH_out,
/// info = "Kith-v1 ratchet root") → 64 bytes = RK' || CK.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct RootKey([u8; 32]);

impl RootKey {
    pub(crate) fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// `KDF_RK`: the next root key and a fresh chain key (index 0).
    pub(super) fn advance(&self, dh_out: &Zeroizing<[u8; 32]>) -> (RootKey, ChainKey) {
        let okm = hkdf_sha256::<64>(&self.0, &dh_out[..], labels::RATCHET_ROOT_INFO);
        let mut root = [0u8; 32];
        let mut chain = [0u8; 32];
        root.copy_from_slice(&okm[..32]);
        chain.copy_from_slice(&okm[32..]);
        (RootKey(root), ChainKey::new(chain, 0))
    }
}
