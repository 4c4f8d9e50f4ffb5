//! PQXDH-style hybrid key agreement: X25519 + ML-KEM-768 (SPEC.md §5), after Signal's PQXDH.
//!
//! ```text
//! DH1 = DH(IK_A, SPK_B)   DH2 = DH(EK_A, IK_B)   DH3 = DH(EK_A, SPK_B)   DH4 = DH(EK_A, OPK_B)
//! (CT, SS) = ML-KEM-768.Encaps(PQPK_B)
//! SK = HKDF-SHA256(salt = 0x00 × 32, ikm = 0xFF × 32 || DH1 || DH2 || DH3 [|| DH4] || SS,
//!                  info = "Kith-v1 PQXDH X25519 ML-KEM-768 SHA-256")
//! ```
//! Every DH output is checked to be contributory. The identities of both parties are bound into
//! the associated data of every message of the session (SPEC.md §6.5), not into `SK`, as in
//! PQXDH.

use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use x25519_dalek::StaticSecret;
use zeroize::Zeroizing;

use crate::consts::labels;
use crate::dh::{NonContributoryKey, dh, public_of};
use crate::kdf::hkdf_sha256;
use crate::kem::{InvalidKemKey, KEM_CIPHERTEXT_LEN, Kem, MlKem768Kem};
use crate::keys::{
    DeviceKeyPair, KemPrekeySecret, OneTimePrekeySecret, PrekeyId, SignedPrekeySecret,
    VerifiedBundle,
};
use crate::ratchet::RootKey;

/// What the responder needs to repeat the agreement; carried by every prekey message.
///
/// ```text
/// PrekeyInit = ephemeral_key:[32] || kem_ciphertext:[1088] || signed_prekey_id:varint u32
///              || one_time_prekey_id:Option<varint u32> || kem_prekey_id:varint u32
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PrekeyInit {
    pub(crate) ephemeral_key: [u8; 32],
    #[serde(with = "crate::encoding::array")]
    pub(crate) kem_ciphertext: [u8; KEM_CIPHERTEXT_LEN],
    pub(crate) signed_prekey_id: PrekeyId,
    pub(crate) one_time_prekey_id: Option<PrekeyId>,
    pub(crate) kem_prekey_id: PrekeyId,
}

/// A failed key agreement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AgreementError {
    NonContributory,
    InvalidKemKey,
}

impl From<NonContributoryKey> for AgreementError {
    fn from(_: NonContributoryKey) -> Self {
        Self::NonContributory
    }
}

impl From<InvalidKemKey> for AgreementError {
    fn from(_: InvalidKemKey) -> Self {
        Self::InvalidKemKey
    }
}

/// `SK` from the DH outputs (DH1..DH3 and optional DH4, in order) and the KEM secret.
pub(crate) fn derive_secret(dh_outputs: &[Zeroizing<[u8; 32]>], kem_secret: &[u8; 32]) -> RootKey {
    let mut ikm = Zeroizing::new(Vec::with_capacity(32 * 6));
    ikm.extend_from_slice(&[0xFF; 32]);
    for output in dh_outputs {
        ikm.extend_from_slice(&output[..]);
    }
    ikm.extend_from_slice(kem_secret);
    RootKey::new(*hkdf_sha256::<32>(&[0u8; 32], &ikm, labels::PQXDH_INFO))
}

/// Initiator side with an explicit ephemeral key and KEM result (deterministic; used by
/// [`initiate`] and by the test vectors).
pub(crate) fn initiate_with(
    local: &DeviceKeyPair,
    ephemeral: &StaticSecret,
    bundle: &VerifiedBundle,
    kem_ciphertext: [u8; KEM_CIPHERTEXT_LEN],
    kem_secret: &[u8; 32],
) -> Result<(RootKey, PrekeyInit), AgreementError> {
    let remote_identity = bundle.certificate.identity_key().as_bytes();
    let signed_prekey = bundle.signed_prekey.public_key();
    let mut outputs = vec![
        local.identity_dh(signed_prekey)?,
        dh(ephemeral, remote_identity)?,
        dh(ephemeral, signed_prekey)?,
    ];
    if let Some(one_time) = &bundle.one_time_prekey {
        outputs.push(dh(ephemeral, one_time.public_key())?);
    }
    let init = PrekeyInit {
        ephemeral_key: public_of(ephemeral),
        kem_ciphertext,
        signed_prekey_id: bundle.signed_prekey.id(),
        one_time_prekey_id: bundle.one_time_prekey.as_ref().map(|k| k.id()),
        kem_prekey_id: bundle.kem_prekey.id(),
    };
    Ok((derive_secret(&outputs, kem_secret), init))
}

/// Initiator side: fresh `EK_A`, encapsulation to `PQPK_B`.
pub(crate) fn initiate<R: CryptoRng + ?Sized>(
    local: &DeviceKeyPair,
    bundle: &VerifiedBundle,
    rng: &mut R,
) -> Result<(RootKey, PrekeyInit), AgreementError> {
    let ephemeral = StaticSecret::random_from_rng(rng);
    let (ciphertext, secret) =
        MlKem768Kem::encapsulate(bundle.kem_prekey.public_key().as_bytes(), rng)?;
    initiate_with(local, &ephemeral, bundle, *ciphertext, &secret)
}

/// The responder's secrets named by a prekey message.
pub struct ResponderPrekeys<'a> {
    /// The signed prekey with id `signed_prekey_id`.
    pub signed_prekey: &'a SignedPrekeySecret,
    /// The one-time prekey with id `one_time_prekey_id`, when the message names one.
    pub one_time_prekey: Option<&'a OneTimePrekeySecret>,
    /// The ML-KEM prekey with id `kem_prekey_id` (one-time or last resort).
    pub kem_prekey: &'a KemPrekeySecret,
}

/// Responder side. The caller has matched the prekey ids; they are checked again here.
pub(crate) fn respond(
    local: &DeviceKeyPair,
    prekeys: &ResponderPrekeys<'_>,
    remote_identity: &[u8; 32],
    init: &PrekeyInit,
) -> Result<Option<RootKey>, AgreementError> {
    let ids_match = prekeys.signed_prekey.public().id() == init.signed_prekey_id
        && prekeys.kem_prekey.public().id() == init.kem_prekey_id
        && prekeys.one_time_prekey.map(|k| k.public().id()) == init.one_time_prekey_id;
    if !ids_match {
        return Ok(None);
    }
    let spk = prekeys.signed_prekey.secret();
    let mut outputs = vec![
        dh(spk, remote_identity)?,
        local.identity_dh(&init.ephemeral_key)?,
        dh(spk, &init.ephemeral_key)?,
    ];
    if let Some(one_time) = prekeys.one_time_prekey {
        outputs.push(dh(one_time.secret(), &init.ephemeral_key)?);
    }
    let kem_secret = MlKem768Kem::decapsulate(prekeys.kem_prekey.seed(), &init.kem_ciphertext);
    Ok(Some(derive_secret(&outputs, &kem_secret)))
}
