//! Prekey uploads: what a device publishes to the relay (SPEC.md §9.3).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::consts::MAX_PREKEYS_PER_UPLOAD;
use crate::encoding::BoundedVec;
use crate::keys::{
    DeviceSigningPublicKey, KemPrekey, KemPrekeyKind, OneTimePrekey, PrekeyId, SignedPrekey,
};

/// A batch of public prekeys for the uploading device. Absent or empty fields leave the relay's
/// stored prekeys of that kind unchanged; present ones replace (signed prekey, last-resort KEM
/// prekey) or add to (one-time prekeys) them.
///
/// ```text
/// PrekeyUpload = signed_prekey:Option<SignedPrekey>
///                || last_resort_kem_prekey:Option<KemPrekey>
///                || one_time_prekeys:varint n (≤ 100) || n × OneTimePrekey
///                || one_time_kem_prekeys:varint m (≤ 100) || m × KemPrekey
/// Option<T> = 0x00 | 0x01 || T
/// ```
///
/// The relay must call [`PrekeyUpload::verify`] with the device's certified signing key before
/// storing anything.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PrekeyUpload {
    /// A new signed X25519 prekey, replacing the previous one.
    pub signed_prekey: Option<SignedPrekey>,
    /// A new last-resort ML-KEM prekey (kind [`KemPrekeyKind::LastResort`]).
    pub last_resort_kem_prekey: Option<KemPrekey>,
    /// One-time X25519 prekeys to add.
    pub one_time_prekeys: BoundedVec<OneTimePrekey, MAX_PREKEYS_PER_UPLOAD>,
    /// One-time ML-KEM prekeys to add (kind [`KemPrekeyKind::OneTime`]).
    pub one_time_kem_prekeys: BoundedVec<KemPrekey, MAX_PREKEYS_PER_UPLOAD>,
}

/// Why a prekey upload was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PrekeyUploadError {
    /// A signature does not verify under the device signing key (which one is not said).
    #[error("a prekey signature is invalid")]
    BadSignature,
    /// A KEM prekey is in the wrong slot: the last-resort slot holds a one-time key, or the
    /// one-time list holds a last-resort key.
    #[error("an ML-KEM prekey has the wrong kind for its slot")]
    WrongKind,
    /// Two prekeys of the same kind share an id. ML-KEM prekeys (last resort and one-time)
    /// share one id space, because a prekey message names its KEM prekey by id alone.
    #[error("two prekeys of the same kind share an id")]
    DuplicateId,
}

impl PrekeyUpload {
    /// Checks the upload against the uploading device's signing key: KEM kinds match their
    /// slots, ids are unique per kind, and every signature verifies. Cheap checks run first.
    pub fn verify(&self, signer: &DeviceSigningPublicKey) -> Result<(), PrekeyUploadError> {
        self.check_kinds()?;
        self.check_unique_ids()?;
        self.check_signatures(signer)
    }

    /// Whether the upload can set up a new device: it carries a signed prekey and a last-resort
    /// KEM prekey, so the relay can always hand out a complete bundle.
    pub fn is_complete_for_registration(&self) -> bool {
        self.signed_prekey.is_some() && self.last_resort_kem_prekey.is_some()
    }

    fn check_kinds(&self) -> Result<(), PrekeyUploadError> {
        let last_resort_ok = self
            .last_resort_kem_prekey
            .as_ref()
            .is_none_or(|k| k.kind() == KemPrekeyKind::LastResort);
        let one_time_ok = self
            .one_time_kem_prekeys
            .as_slice()
            .iter()
            .all(|k| k.kind() == KemPrekeyKind::OneTime);
        if last_resort_ok && one_time_ok {
            Ok(())
        } else {
            Err(PrekeyUploadError::WrongKind)
        }
    }

    fn check_unique_ids(&self) -> Result<(), PrekeyUploadError> {
        let one_time = self
            .one_time_prekeys
            .as_slice()
            .iter()
            .map(OneTimePrekey::id);
        let kem = self
            .last_resort_kem_prekey
            .iter()
            .chain(self.one_time_kem_prekeys.as_slice())
            .map(KemPrekey::id);
        if all_distinct(one_time) && all_distinct(kem) {
            Ok(())
        } else {
            Err(PrekeyUploadError::DuplicateId)
        }
    }

    fn check_signatures(&self, signer: &DeviceSigningPublicKey) -> Result<(), PrekeyUploadError> {
        let signed_ok = self.signed_prekey.as_ref().is_none_or(|p| p.verify(signer));
        let kem_ok = self
            .last_resort_kem_prekey
            .iter()
            .chain(self.one_time_kem_prekeys.as_slice())
            .all(|k| k.verify(signer));
        if signed_ok && kem_ok {
            Ok(())
        } else {
            Err(PrekeyUploadError::BadSignature)
        }
    }
}

fn all_distinct(ids: impl Iterator<Item = PrekeyId>) -> bool {
    let mut seen = HashSet::new();
    ids.into_iter().all(|id| seen.insert(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consts::MAX_FRAME_LEN;
    use crate::encoding::{decode, encode};
    use crate::wire::fixtures::{Fixture, full_upload, kem_prekey};

    fn tamper_kem(prekey: &KemPrekey) -> KemPrekey {
        // The signature is the last 64 bytes of the encoding.
        let mut bytes = encode(prekey);
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        decode(&bytes, 4096).unwrap()
    }

    fn tamper_signed(prekey: &SignedPrekey) -> SignedPrekey {
        let mut bytes = encode(prekey);
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        decode(&bytes, 4096).unwrap()
    }

    #[test]
    fn valid_upload_verifies() {
        let mut f = Fixture::new(1);
        let upload = full_upload(&mut f, 3);
        assert_eq!(upload.verify(&f.device.signing_public()), Ok(()));
        assert!(upload.is_complete_for_registration());
        assert!(!PrekeyUpload::default().is_complete_for_registration());
        assert_eq!(
            PrekeyUpload::default().verify(&f.device.signing_public()),
            Ok(())
        );
    }

    #[test]
    fn rejects_another_signer() {
        let mut f = Fixture::new(2);
        let other = Fixture::new(3);
        let upload = full_upload(&mut f, 2);
        assert_eq!(
            upload.verify(&other.device.signing_public()),
            Err(PrekeyUploadError::BadSignature)
        );
    }

    #[test]
    fn rejects_each_bad_signature() {
        let mut f = Fixture::new(4);
        let signer = f.device.signing_public();
        let mut upload = full_upload(&mut f, 2);
        upload.signed_prekey = upload.signed_prekey.as_ref().map(tamper_signed);
        assert_eq!(upload.verify(&signer), Err(PrekeyUploadError::BadSignature));

        let mut upload = full_upload(&mut f, 2);
        upload.last_resort_kem_prekey = upload.last_resort_kem_prekey.as_ref().map(tamper_kem);
        assert_eq!(upload.verify(&signer), Err(PrekeyUploadError::BadSignature));

        let mut upload = full_upload(&mut f, 2);
        let mut kems = upload.one_time_kem_prekeys.into_vec();
        kems[1] = tamper_kem(&kems[1]);
        upload.one_time_kem_prekeys = BoundedVec::new(kems).unwrap();
        assert_eq!(upload.verify(&signer), Err(PrekeyUploadError::BadSignature));
    }

    #[test]
    fn rejects_wrong_kinds() {
        let mut f = Fixture::new(5);
        let signer = f.device.signing_public();
        let mut upload = full_upload(&mut f, 1);
        upload.last_resort_kem_prekey = Some(kem_prekey(&mut f, 900, KemPrekeyKind::OneTime));
        assert_eq!(upload.verify(&signer), Err(PrekeyUploadError::WrongKind));

        let mut upload = full_upload(&mut f, 1);
        let lr = kem_prekey(&mut f, 901, KemPrekeyKind::LastResort);
        upload.one_time_kem_prekeys = BoundedVec::new(vec![lr]).unwrap();
        assert_eq!(upload.verify(&signer), Err(PrekeyUploadError::WrongKind));
    }

    #[test]
    fn rejects_duplicate_ids() {
        let mut f = Fixture::new(6);
        let signer = f.device.signing_public();
        let mut upload = full_upload(&mut f, 2);
        let mut one_time = upload.one_time_prekeys.into_vec();
        one_time.push(one_time[0].clone());
        upload.one_time_prekeys = BoundedVec::new(one_time).unwrap();
        assert_eq!(upload.verify(&signer), Err(PrekeyUploadError::DuplicateId));

        let mut upload = full_upload(&mut f, 2);
        let id = upload.one_time_kem_prekeys.as_slice()[0].id();
        let mut kems = upload.one_time_kem_prekeys.into_vec();
        kems.push(kem_prekey(&mut f, id, KemPrekeyKind::OneTime));
        upload.one_time_kem_prekeys = BoundedVec::new(kems).unwrap();
        assert_eq!(upload.verify(&signer), Err(PrekeyUploadError::DuplicateId));

        // The last-resort KEM prekey shares the KEM id space.
        let mut upload = full_upload(&mut f, 2);
        let id = upload.one_time_kem_prekeys.as_slice()[0].id();
        upload.last_resort_kem_prekey = Some(kem_prekey(&mut f, id, KemPrekeyKind::LastResort));
        assert_eq!(upload.verify(&signer), Err(PrekeyUploadError::DuplicateId));
    }

    #[test]
    fn one_time_x25519_and_kem_ids_may_coincide() {
        let mut f = Fixture::new(7);
        let upload = full_upload(&mut f, 2);
        assert_eq!(
            upload.one_time_prekeys.as_slice()[0].id(),
            upload.one_time_kem_prekeys.as_slice()[0].id()
        );
        assert_eq!(upload.verify(&f.device.signing_public()), Ok(()));
    }

    #[test]
    fn maximal_upload_fits_in_a_frame() {
        let mut f = Fixture::new(8);
        let upload = full_upload(&mut f, MAX_PREKEYS_PER_UPLOAD);
        let len = encode(&upload).len();
        // 100 KEM prekeys of ~1.25 KB each, plus 100 X25519 prekeys, leave ample headroom.
        assert!(len < MAX_FRAME_LEN / 2, "{len}");
        assert_eq!(upload.verify(&f.device.signing_public()), Ok(()));
    }
}
