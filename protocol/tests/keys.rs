//! The key chain through the public API: certificates and prekey bundles reject every
//! single-bit change to a signed field, decoding rejects truncated and oversized input and
//! never panics, secrets round-trip and never show in `Debug` (SPEC.md §3).

use kith_protocol::rand_core::SeedableRng;
use kith_protocol::*;
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;

const CREATED_AT: u64 = 1_700_000_000;

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// An account, one of its devices, and the device's prekey secrets.
struct Fixture {
    account: AccountKeyPair,
    device: DeviceKeyPair,
    certificate: DeviceCertificate,
    signed_prekey: SignedPrekeySecret,
    one_time_prekey: OneTimePrekeySecret,
    kem_prekey: KemPrekeySecret,
}

impl Fixture {
    fn new(seed: u64) -> Self {
        let mut rng = rng(seed);
        let account = AccountKeyPair::generate(&mut rng);
        let device = DeviceKeyPair::generate(&mut rng);
        let certificate = account.certify_device(DeviceId::random(&mut rng), &device, CREATED_AT);
        let signed_prekey = SignedPrekeySecret::generate(1, &device, &mut rng);
        let one_time_prekey = OneTimePrekeySecret::generate(7, &mut rng);
        let kem_prekey = KemPrekeySecret::generate(3, KemPrekeyKind::OneTime, &device, &mut rng);
        Self {
            account,
            device,
            certificate,
            signed_prekey,
            one_time_prekey,
            kem_prekey,
        }
    }

    fn account_key(&self) -> AccountPublicKey {
        self.account.public_key()
    }

    fn bundle(&self) -> PrekeyBundle {
        PrekeyBundle::new(
            self.certificate.clone(),
            self.signed_prekey.public().clone(),
            Some(self.one_time_prekey.public().clone()),
            self.kem_prekey.public().clone(),
        )
    }
}

/// `bytes` with bit `bit` (0 = least significant bit of byte 0) flipped.
fn flip(bytes: &[u8], bit: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[bit / 8] ^= 1 << (bit % 8);
    out
}

/// The offset of `needle` in `haystack`; each public key occurs exactly once in an encoding.
fn offset_of(haystack: &[u8], needle: &[u8]) -> usize {
    let hits: Vec<usize> = haystack
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(hits.len(), 1, "needle present exactly once");
    hits[0]
}

mod certificate {
    use super::*;

    #[test]
    fn fresh_certificate_verifies_for_its_account_only() {
        let f = Fixture::new(1);
        let verified = f.certificate.verify_for(&f.account_key()).unwrap();
        assert_eq!(verified.account_key(), &f.account_key());
        assert_eq!(verified.identity_key(), &f.device.identity_public());
        assert_eq!(verified.signing_key(), &f.device.signing_public());
        assert_eq!(verified.created_at(), CREATED_AT);
        assert_eq!(verified.device_id(), f.certificate.claimed_device_id());

        let other = Fixture::new(2);
        assert_eq!(
            f.certificate.verify_for(&other.account_key()),
            Err(CertificateError::WrongAccount)
        );
    }

    #[test]
    fn certificate_round_trips_through_bytes() {
        let f = Fixture::new(1);
        let bytes = f.certificate.to_bytes();
        assert_eq!(
            DeviceCertificate::from_bytes(&bytes).unwrap(),
            f.certificate
        );
    }

    /// The largest certificate (a 10-byte `created_at` varint) still decodes.
    #[test]
    fn certificate_with_largest_timestamp_round_trips() {
        let f = Fixture::new(1);
        let id = f.certificate.claimed_device_id();
        let cert = f.account.certify_device(id, &f.device, u64::MAX);
        let decoded = DeviceCertificate::from_bytes(&cert.to_bytes()).unwrap();
        assert_eq!(decoded.verify().unwrap().created_at(), u64::MAX);
    }

    #[test]
    fn every_single_bit_flip_is_rejected() {
        let f = Fixture::new(1);
        let account = f.account_key();
        let bytes = f.certificate.to_bytes();
        for bit in 0..bytes.len() * 8 {
            let flipped = flip(&bytes, bit);
            if let Ok(cert) = DeviceCertificate::from_bytes(&flipped) {
                assert!(cert.verify_for(&account).is_err(), "bit {bit} accepted");
            }
        }
    }

    #[test]
    fn truncated_and_oversized_inputs_are_rejected() {
        let f = Fixture::new(1);
        let bytes = f.certificate.to_bytes();
        for len in 0..bytes.len() {
            assert!(
                DeviceCertificate::from_bytes(&bytes[..len]).is_err(),
                "prefix of {len} bytes"
            );
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(
            DeviceCertificate::from_bytes(&trailing),
            Err(DecodeError::TrailingBytes)
        );
        let huge = [bytes.as_slice(), &[0u8; 4096]].concat();
        assert!(matches!(
            DeviceCertificate::from_bytes(&huge),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(cert) = DeviceCertificate::from_bytes(&bytes) {
                let _ = cert.verify();
            }
        }
    }
}

mod bundle {
    use std::ops::Range;

    use super::*;

    /// Byte ranges of an encoded bundle, found from the public keys it contains.
    struct Layout {
        certificate: Range<usize>,
        signed_prekey: Range<usize>,
        /// Id and public key of the unsigned one-time prekey.
        one_time_prekey: Range<usize>,
        one_time_public: Range<usize>,
        kem_prekey: Range<usize>,
        kem_public: Range<usize>,
    }

    impl Layout {
        fn of(f: &Fixture, bytes: &[u8]) -> Self {
            let certificate = 0..f.certificate.to_bytes().len();
            // id 1 is a one-byte varint; the 64-byte signature follows the key.
            let spk = offset_of(bytes, f.signed_prekey.public().public_key());
            let otp = offset_of(bytes, f.one_time_prekey.public().public_key());
            // id 3 (one byte) and kind (one byte) precede the key.
            let kem = offset_of(bytes, f.kem_prekey.public().public_key().as_bytes());
            let layout = Self {
                certificate,
                signed_prekey: spk - 1..spk + 32 + 64,
                one_time_prekey: otp - 1..otp + 32,
                one_time_public: otp..otp + 32,
                kem_prekey: kem - 2..kem + 1184 + 64,
                kem_public: kem..kem + 1184,
            };
            // Sanity: the regions tile the encoding, with the option tag between SPK and OPK.
            assert_eq!(layout.certificate.end, layout.signed_prekey.start);
            assert_eq!(layout.signed_prekey.end + 1, layout.one_time_prekey.start);
            assert_eq!(layout.one_time_prekey.end, layout.kem_prekey.start);
            assert_eq!(layout.kem_prekey.end, bytes.len());
            layout
        }
    }

    /// Whether flipping `bit` of an encoded bundle yields a bundle that decodes and verifies.
    fn accepted_after_flip(bytes: &[u8], bit: usize, account: &AccountPublicKey) -> bool {
        PrekeyBundle::from_bytes(&flip(bytes, bit)).is_ok_and(|b| b.verify(account).is_ok())
    }

    #[test]
    fn fresh_bundle_verifies_for_its_account_only() {
        let f = Fixture::new(1);
        let bundle = f.bundle();
        let verified = bundle.verify(&f.account_key()).unwrap();
        assert_eq!(verified.certificate().certificate(), &f.certificate);
        assert_eq!(
            PrekeyBundle::from_bytes(&bundle.to_bytes()).unwrap(),
            bundle
        );
        assert_eq!(
            bundle.verify(&Fixture::new(2).account_key()).unwrap_err(),
            BundleError::Certificate(CertificateError::WrongAccount)
        );
    }

    /// Flips each bit in `bits` of the encoded bundle and asserts that the result fails to
    /// decode or to verify.
    fn assert_flips_rejected(bits: impl Iterator<Item = usize>) {
        let f = fixture_cached();
        let account = f.account_key();
        let bytes = f.bundle().to_bytes();
        for bit in bits {
            assert!(
                !accepted_after_flip(&bytes, bit, &account),
                "bit {bit} (byte {}) accepted",
                bit / 8
            );
        }
    }

    /// Every bit of `bytes`.
    fn every_bit(bytes: Range<usize>) -> impl Iterator<Item = usize> {
        bytes.start * 8..bytes.end * 8
    }

    /// One bit of each byte of `bytes`, at a different position in consecutive bytes.
    fn one_bit_per_byte(bytes: Range<usize>) -> impl Iterator<Item = usize> {
        bytes.map(|byte| byte * 8 + byte % 8)
    }

    fn layout() -> Layout {
        let f = fixture_cached();
        Layout::of(f, &f.bundle().to_bytes())
    }

    /// The certificate inside a bundle: `certificate::every_single_bit_flip_is_rejected`
    /// covers every bit of the same bytes on their own.
    #[test]
    fn certificate_bit_flips_are_rejected() {
        assert_flips_rejected(one_bit_per_byte(layout().certificate));
    }

    /// Id, key and signature of the signed prekey, and the option tag after it: every bit is
    /// covered by the signature or by the structure.
    #[test]
    fn every_signed_prekey_bit_flip_is_rejected() {
        let layout = layout();
        assert_flips_rejected(every_bit(
            layout.signed_prekey.start..layout.signed_prekey.end + 1,
        ));
    }

    /// Id, kind and signature of the KEM prekey, bit by bit. Of its 1184-byte key, every bit
    /// of the first and last 8 bytes (where an off-by-one in the signed message would show)
    /// and one bit of every 16th byte in between; `every_kem_public_key_bit_flip_is_rejected`
    /// is the full sweep.
    #[test]
    fn every_kem_prekey_bit_flip_is_rejected() {
        let Layout {
            kem_prekey,
            kem_public,
            ..
        } = layout();
        assert_flips_rejected(every_bit(kem_prekey.start..kem_public.start));
        assert_flips_rejected(every_bit(kem_public.end..kem_prekey.end));
        let (start, end) = (kem_public.start, kem_public.end);
        assert_flips_rejected(every_bit(start..start + 8));
        assert_flips_rejected(every_bit(end - 8..end));
        assert_flips_rejected(one_bit_per_byte(start + 8..end - 8).step_by(16));
    }

    /// All 9472 bits of the KEM public key: seconds with the workspace's optimised
    /// dependencies (three Ed25519 verifications per flip).
    #[test]
    fn every_kem_public_key_bit_flip_is_rejected() {
        assert_flips_rejected(every_bit(layout().kem_public));
    }

    /// Stated policy: one-time X25519 prekeys are unsigned, as in X3DH/PQXDH. A relay that
    /// swaps one only removes the forward-secrecy bonus it would have added, so a changed
    /// one-time public key still verifies. (Its id is unsigned too, but a flipped high bit
    /// breaks the varint, so the id is not asserted either way.)
    #[test]
    fn one_time_prekey_bit_flips_still_verify() {
        let f = fixture_cached();
        let account = f.account_key();
        let bytes = f.bundle().to_bytes();
        for bit in one_bit_per_byte(layout().one_time_public) {
            assert!(accepted_after_flip(&bytes, bit, &account), "bit {bit}");
        }
    }

    #[test]
    fn signed_prekey_from_another_device_is_rejected() {
        let f = Fixture::new(1);
        let other = Fixture::new(2);
        let bundle = PrekeyBundle::new(
            f.certificate.clone(),
            other.signed_prekey.public().clone(),
            Some(f.one_time_prekey.public().clone()),
            f.kem_prekey.public().clone(),
        );
        assert_eq!(
            bundle.verify(&f.account_key()).unwrap_err(),
            BundleError::BadSignedPrekey
        );
    }

    #[test]
    fn kem_prekey_from_another_device_is_rejected() {
        let f = Fixture::new(1);
        let other = Fixture::new(2);
        let bundle = PrekeyBundle::new(
            f.certificate.clone(),
            f.signed_prekey.public().clone(),
            None,
            other.kem_prekey.public().clone(),
        );
        assert_eq!(
            bundle.verify(&f.account_key()).unwrap_err(),
            BundleError::BadKemPrekey
        );
    }

    /// The largest bundle (every varint at its maximum) still decodes.
    #[test]
    fn bundle_with_largest_ids_round_trips() {
        let f = Fixture::new(1);
        let mut rng = rng(3);
        let id = f.certificate.claimed_device_id();
        let bundle = PrekeyBundle::new(
            f.account.certify_device(id, &f.device, u64::MAX),
            SignedPrekeySecret::generate(u32::MAX, &f.device, &mut rng)
                .public()
                .clone(),
            Some(
                OneTimePrekeySecret::generate(u32::MAX, &mut rng)
                    .public()
                    .clone(),
            ),
            KemPrekeySecret::generate(u32::MAX, KemPrekeyKind::LastResort, &f.device, &mut rng)
                .public()
                .clone(),
        );
        let decoded = PrekeyBundle::from_bytes(&bundle.to_bytes()).unwrap();
        assert_eq!(decoded, bundle);
        decoded.verify(&f.account_key()).unwrap();
    }

    #[test]
    fn truncated_and_oversized_inputs_are_rejected() {
        let f = Fixture::new(1);
        let bytes = f.bundle().to_bytes();
        for len in 0..bytes.len() {
            assert!(
                PrekeyBundle::from_bytes(&bytes[..len]).is_err(),
                "prefix of {len} bytes"
            );
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(
            PrekeyBundle::from_bytes(&trailing),
            Err(DecodeError::TrailingBytes)
        );
        let huge = [bytes.as_slice(), &[0u8; 1 << 20]].concat();
        assert!(matches!(
            PrekeyBundle::from_bytes(&huge),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    proptest! {
        // Each case that decodes costs up to three Ed25519 verifications.
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            if let Ok(bundle) = PrekeyBundle::from_bytes(&bytes) {
                let _ = bundle.verify(bundle.certificate().claimed_account_key());
            }
        }

        /// A valid bundle with a few bytes overwritten never panics either (arbitrary bytes
        /// rarely get past the first field).
        #[test]
        fn mutated_bundles_never_panic(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)
        ) {
            let f = fixture_cached();
            let mut bytes = f.bundle().to_bytes();
            for (index, value) in edits {
                let i = index.index(bytes.len());
                bytes[i] = value;
            }
            if let Ok(bundle) = PrekeyBundle::from_bytes(&bytes) {
                let _ = bundle.verify(&f.account_key());
            }
        }
    }

    fn fixture_cached() -> &'static Fixture {
        static FIXTURE: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
        FIXTURE.get_or_init(|| Fixture::new(1))
    }
}

mod secrets {
    use super::*;

    #[test]
    fn secrets_round_trip() {
        let f = Fixture::new(1);

        let account = AccountKeyPair::from_secret_bytes(&f.account.to_secret_bytes());
        assert_eq!(account.public_key(), f.account_key());

        let device = DeviceKeyPair::from_secret_bytes(&f.device.to_secret_bytes());
        assert_eq!(device.identity_public(), f.device.identity_public());
        assert_eq!(device.signing_public(), f.device.signing_public());
        // Ed25519 is deterministic: the restored keys sign exactly what the originals did.
        let id = f.certificate.claimed_device_id();
        assert_eq!(
            account.certify_device(id, &device, CREATED_AT),
            f.certificate
        );

        let spk = &f.signed_prekey;
        let restored = SignedPrekeySecret::from_secret_bytes(
            spk.public().id(),
            &f.device,
            &spk.to_secret_bytes(),
        );
        assert_eq!(restored.public(), spk.public());

        let otp = &f.one_time_prekey;
        let restored =
            OneTimePrekeySecret::from_secret_bytes(otp.public().id(), &otp.to_secret_bytes());
        assert_eq!(restored.public(), otp.public());

        let kem = &f.kem_prekey;
        let restored = KemPrekeySecret::from_secret_bytes(
            kem.public().id(),
            kem.public().kind(),
            &f.device,
            &kem.to_secret_bytes(),
        );
        assert_eq!(restored.public(), kem.public());
    }

    /// `debug` mentions no 8-byte window of `secret`, in hex or as a Rust byte list, and is a
    /// non-exhaustive struct named `name`.
    fn assert_debug_hides(name: &str, debug: &str, secret: &[u8]) {
        assert!(debug.starts_with(&format!("{name} {{")), "{debug}");
        assert!(debug.ends_with(".. }"), "{debug}");
        assert!(!debug.contains(&hex::encode(secret)), "{debug}");
        for window in secret.windows(8) {
            assert!(
                !debug.contains(&hex::encode(window)),
                "{name} leaks {window:02x?}"
            );
            let list = format!("{window:?}");
            let list = list.trim_start_matches('[').trim_end_matches(']');
            assert!(!debug.contains(list), "{name} leaks {window:?}");
        }
    }

    #[test]
    fn debug_never_shows_secret_bytes() {
        let f = Fixture::new(1);
        assert_debug_hides(
            "AccountKeyPair",
            &format!("{:?}", f.account),
            &f.account.to_secret_bytes()[..],
        );
        assert_debug_hides(
            "DeviceKeyPair",
            &format!("{:?}", f.device),
            &f.device.to_secret_bytes()[..],
        );
        assert_debug_hides(
            "SignedPrekeySecret",
            &format!("{:?}", f.signed_prekey),
            &f.signed_prekey.to_secret_bytes()[..],
        );
        assert_debug_hides(
            "OneTimePrekeySecret",
            &format!("{:?}", f.one_time_prekey),
            &f.one_time_prekey.to_secret_bytes()[..],
        );
        assert_debug_hides(
            "KemPrekeySecret",
            &format!("{:?}", f.kem_prekey),
            &f.kem_prekey.to_secret_bytes()[..],
        );
    }
}
