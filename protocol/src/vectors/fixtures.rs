//! The parties of the vectors: keys drawn as bytes from a seeded RNG, then loaded through the
//! crate's `from_secret_bytes` constructors, and their JSON records.

use ed25519_dalek::{Signature, VerifyingKey};
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};
use x25519_dalek::{PublicKey, StaticSecret};

use super::{draw, hex, unhex, unhex_vec};
use crate::agreement::ResponderPrekeys;
use crate::encoding;
use crate::kem::{Kem, MlKem768Kem};
use crate::keys::{
    AccountKeyPair, DeviceId, DeviceKeyPair, KemPrekeyKind, KemPrekeySecret, OneTimePrekeySecret,
    PrekeyBundle, PrekeyId, SignedPrekeySecret, VerifiedBundle, VerifiedCertificate,
};

/// Certificate creation time used by every party: 2023-11-14T22:13:20Z.
pub(super) const CREATED_AT: u64 = 1_700_000_000;

/// One device of one account: account key, device keys, device id.
pub(super) struct Party {
    pub(super) account: AccountKeyPair,
    pub(super) device: DeviceKeyPair,
    pub(super) certificate: VerifiedCertificate,
}

impl Party {
    /// Draws account secret (32), identity secret (32), signing secret (32), device id (16).
    pub(super) fn draw(rng: &mut ChaCha20Rng) -> Self {
        let account = draw::<32>(rng);
        let identity = draw::<32>(rng);
        let signing = draw::<32>(rng);
        let device_id = draw::<16>(rng);
        Self::from_secrets(&account, &identity, &signing, device_id, CREATED_AT)
    }

    fn from_secrets(
        account: &[u8; 32],
        identity: &[u8; 32],
        signing: &[u8; 32],
        device_id: [u8; 16],
        created_at: u64,
    ) -> Self {
        let account = AccountKeyPair::from_secret_bytes(account);
        let mut device_secret = [0u8; 64];
        device_secret[..32].copy_from_slice(identity);
        device_secret[32..].copy_from_slice(signing);
        let device = DeviceKeyPair::from_secret_bytes(&device_secret);
        let certificate = account
            .certify_device(DeviceId::from_bytes(device_id), &device, created_at)
            .verify()
            .expect("fresh certificate verifies");
        Self {
            account,
            device,
            certificate,
        }
    }

    pub(super) fn record(&self) -> PartyRecord {
        let device_secret = self.device.to_secret_bytes();
        PartyRecord {
            account_secret: hex(&self.account.to_secret_bytes()[..]),
            account_public: hex(self.account.public_key().as_bytes()),
            identity_secret: hex(&device_secret[..32]),
            identity_public: hex(self.device.identity_public().as_bytes()),
            signing_secret: hex(&device_secret[32..]),
            signing_public: hex(self.device.signing_public().as_bytes()),
            device_id: hex(self.certificate.device_id().as_bytes()),
            created_at: self.certificate.created_at(),
            certificate: hex(self.certificate.certificate().to_bytes()),
        }
    }
}

/// A party as recorded: every secret, the public keys and the certificate bytes.
#[derive(Serialize, Deserialize)]
pub(super) struct PartyRecord {
    pub(super) account_secret: String,
    pub(super) account_public: String,
    pub(super) identity_secret: String,
    pub(super) identity_public: String,
    pub(super) signing_secret: String,
    pub(super) signing_public: String,
    pub(super) device_id: String,
    pub(super) created_at: u64,
    pub(super) certificate: String,
}

impl PartyRecord {
    /// Rebuilds the party from the recorded secrets, checking the recorded public values with
    /// the primitives directly (X25519 base-point multiplication, Ed25519 key derivation).
    pub(super) fn party(&self) -> Party {
        let identity = unhex::<32>(&self.identity_secret);
        assert_eq!(x25519_public(&identity), unhex(&self.identity_public));
        assert_eq!(
            ed25519_public(&unhex(&self.account_secret)),
            unhex(&self.account_public)
        );
        assert_eq!(
            ed25519_public(&unhex(&self.signing_secret)),
            unhex(&self.signing_public)
        );
        let party = Party::from_secrets(
            &unhex(&self.account_secret),
            &identity,
            &unhex(&self.signing_secret),
            unhex(&self.device_id),
            self.created_at,
        );
        assert_eq!(
            hex(party.certificate.certificate().to_bytes()),
            self.certificate
        );
        party
    }
}

/// The X25519 public key of a secret, straight from x25519-dalek.
pub(super) fn x25519_public(secret: &[u8; 32]) -> [u8; 32] {
    PublicKey::from(&StaticSecret::from(*secret)).to_bytes()
}

/// The Ed25519 public key of a 32-byte secret seed, straight from ed25519-dalek.
fn ed25519_public(secret: &[u8; 32]) -> [u8; 32] {
    ed25519_dalek::SigningKey::from_bytes(secret)
        .verifying_key()
        .to_bytes()
}

/// Strict Ed25519 verification with ed25519-dalek directly.
pub(super) fn ed25519_verifies(public: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    VerifyingKey::from_bytes(public).is_ok_and(|key| {
        key.verify_strict(message, &Signature::from_bytes(signature))
            .is_ok()
    })
}

/// A responder's prekeys: signed prekey, optional one-time prekey, ML-KEM prekey.
pub(super) struct Prekeys {
    pub(super) signed: SignedPrekeySecret,
    pub(super) one_time: Option<OneTimePrekeySecret>,
    pub(super) kem: KemPrekeySecret,
}

impl Prekeys {
    /// Draws signed prekey secret (32), one-time prekey secret (32, when `one_time` is given),
    /// ML-KEM seed (64).
    pub(super) fn draw(
        rng: &mut ChaCha20Rng,
        device: &DeviceKeyPair,
        one_time: Option<PrekeyId>,
        kem: (PrekeyId, KemPrekeyKind),
    ) -> Self {
        let signed = SignedPrekeySecret::from_secret_bytes(1, device, &draw(rng));
        let one_time = one_time.map(|id| OneTimePrekeySecret::from_secret_bytes(id, &draw(rng)));
        let kem = KemPrekeySecret::from_secret_bytes(kem.0, kem.1, device, &draw(rng));
        Self {
            signed,
            one_time,
            kem,
        }
    }

    /// The secrets `respond` needs.
    pub(super) fn responder(&self) -> ResponderPrekeys<'_> {
        ResponderPrekeys {
            signed_prekey: &self.signed,
            one_time_prekey: self.one_time.as_ref(),
            kem_prekey: &self.kem,
        }
    }

    /// The bundle the relay would hand out, verified.
    pub(super) fn bundle(&self, owner: &Party) -> (PrekeyBundle, VerifiedBundle) {
        let bundle = PrekeyBundle::new(
            owner.certificate.certificate().clone(),
            self.signed.public().clone(),
            self.one_time.as_ref().map(|k| k.public().clone()),
            self.kem.public().clone(),
        );
        let verified = bundle
            .verify(&owner.account.public_key())
            .expect("bundle verifies");
        (bundle, verified)
    }

    pub(super) fn record(&self, owner: &Party) -> PrekeysRecord {
        let kem = self.kem.public();
        let (bundle, _) = self.bundle(owner);
        PrekeysRecord {
            signed_prekey_id: self.signed.public().id(),
            signed_prekey_secret: hex(&self.signed.to_secret_bytes()[..]),
            signed_prekey_public: hex(self.signed.public().public_key()),
            signed_prekey_signature: hex(last_64(&encoding::encode(self.signed.public()))),
            one_time_prekey_id: self.one_time.as_ref().map(|k| k.public().id()),
            one_time_prekey_secret: self
                .one_time
                .as_ref()
                .map(|k| hex(&k.to_secret_bytes()[..])),
            one_time_prekey_public: self.one_time.as_ref().map(|k| hex(k.public().public_key())),
            kem_prekey_id: kem.id(),
            kem_prekey_kind: kem.kind(),
            kem_prekey_seed: hex(&self.kem.to_secret_bytes()[..]),
            kem_prekey_public: hex(kem.public_key().as_bytes()),
            kem_prekey_signature: hex(last_64(&encoding::encode(kem))),
            bundle: hex(bundle.to_bytes()),
        }
    }
}

fn last_64(encoded: &[u8]) -> &[u8] {
    &encoded[encoded.len() - 64..]
}

/// A responder's prekeys as recorded, with the encoded bundle.
#[derive(Serialize, Deserialize)]
pub(super) struct PrekeysRecord {
    pub(super) signed_prekey_id: PrekeyId,
    pub(super) signed_prekey_secret: String,
    pub(super) signed_prekey_public: String,
    pub(super) signed_prekey_signature: String,
    pub(super) one_time_prekey_id: Option<PrekeyId>,
    pub(super) one_time_prekey_secret: Option<String>,
    pub(super) one_time_prekey_public: Option<String>,
    pub(super) kem_prekey_id: PrekeyId,
    pub(super) kem_prekey_kind: KemPrekeyKind,
    pub(super) kem_prekey_seed: String,
    pub(super) kem_prekey_public: String,
    pub(super) kem_prekey_signature: String,
    pub(super) bundle: String,
}

impl PrekeysRecord {
    /// Rebuilds the prekeys from the recorded secrets, checking public keys and signatures with
    /// the primitives directly, and the bundle bytes against its decoding.
    pub(super) fn prekeys(&self, owner: &Party) -> Prekeys {
        let signer = owner.device.signing_public();
        let spk_public = unhex::<32>(&self.signed_prekey_public);
        assert_eq!(
            x25519_public(&unhex(&self.signed_prekey_secret)),
            spk_public
        );
        let spk_message = [
            &b"Kith-v1 signed prekey"[..],
            &self.signed_prekey_id.to_be_bytes(),
            &spk_public,
        ]
        .concat();
        assert!(ed25519_verifies(
            signer.as_bytes(),
            &spk_message,
            &unhex(&self.signed_prekey_signature)
        ));
        let seed = unhex::<64>(&self.kem_prekey_seed);
        let kem_public = unhex_vec(&self.kem_prekey_public);
        assert_eq!(MlKem768Kem::public_key(&seed)[..], kem_public[..]);
        let kind_tag: u8 = match self.kem_prekey_kind {
            KemPrekeyKind::LastResort => 0,
            KemPrekeyKind::OneTime => 1,
        };
        let kem_message = [
            &b"Kith-v1 kem prekey"[..],
            &self.kem_prekey_id.to_be_bytes(),
            &[kind_tag],
            &kem_public,
        ]
        .concat();
        assert!(ed25519_verifies(
            signer.as_bytes(),
            &kem_message,
            &unhex(&self.kem_prekey_signature)
        ));
        let one_time = self.one_time_prekey_id.map(|id| {
            let secret = unhex::<32>(self.one_time_prekey_secret.as_deref().expect("secret"));
            let public = self.one_time_prekey_public.as_deref().expect("public");
            assert_eq!(hex(x25519_public(&secret)), public);
            OneTimePrekeySecret::from_secret_bytes(id, &secret)
        });
        let prekeys = Prekeys {
            signed: SignedPrekeySecret::from_secret_bytes(
                self.signed_prekey_id,
                &owner.device,
                &unhex(&self.signed_prekey_secret),
            ),
            one_time,
            kem: KemPrekeySecret::from_secret_bytes(
                self.kem_prekey_id,
                self.kem_prekey_kind,
                &owner.device,
                &seed,
            ),
        };
        let recorded = PrekeyBundle::from_bytes(&unhex_vec(&self.bundle)).expect("bundle decodes");
        assert_eq!(recorded, prekeys.bundle(owner).0);
        prekeys
    }
}
