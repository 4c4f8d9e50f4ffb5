//! Safety numbers (SPEC.md §8): a number two people compare, read aloud or scan to check that
//! each holds the other's real account key. Modelled on Signal's `NumericFingerprint`.
//!
//! Each party's fingerprint is an iterated SHA-512 over its account key and handle:
//!
//! ```text
//! h_0     = SHA-512("Kith-v1 safety number" || SAFETY_NUMBER_VERSION:u8 || account_key:[32]
//!                   || len(handle):u8 || handle)
//! h_(i+1) = SHA-512(h_i || account_key)        for i in 0..SAFETY_NUMBER_ITERATIONS
//! digits  = for each 5-byte chunk c_0..c_5 of h_N[0..30]: (c_j as u40 big-endian) mod 100000,
//!           written as 5 decimal digits                       → 30 digits
//! bytes   = h_N[0..32]                                        → the scannable fingerprint
//! ```

use core::fmt;

use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;

use crate::consts::{SAFETY_NUMBER_ITERATIONS, SAFETY_NUMBER_VERSION, labels};
use crate::keys::AccountPublicKey;

/// Length of one party's scannable fingerprint: the first 32 bytes of `h_N`.
const FINGERPRINT_LEN: usize = 32;

/// Number of 5-digit chunks per party.
const CHUNKS_PER_PARTY: usize = 6;

/// Bytes of `h_N` read per chunk (a 40-bit big-endian integer).
const CHUNK_BYTES: usize = 5;

/// Decimal digits per chunk (and per display group).
const DIGITS_PER_CHUNK: usize = 5;

/// Reduces a 40-bit chunk to [`DIGITS_PER_CHUNK`] decimal digits.
const CHUNK_MODULUS: u64 = 100_000;

/// A safety number between a local and a remote party (SPEC.md §8).
///
/// The 60 displayed digits are the two parties' 30-digit fingerprints, the lexicographically
/// smaller first, so both sides show the same number. The scannable form is directional
/// (`local || remote`) and is checked by the other side with
/// [`matches_scanned`](Self::matches_scanned).
#[derive(Clone)]
pub struct SafetyNumber {
    /// 60 ASCII decimal digits.
    digits: String,
    local: [u8; FINGERPRINT_LEN],
    remote: [u8; FINGERPRINT_LEN],
}

/// Why a safety number could not be computed or a scanned one could not be compared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SafetyNumberError {
    /// A handle is longer than 255 bytes, so its length does not fit the one-byte prefix.
    #[error("handle of {len} bytes is longer than 255 bytes")]
    HandleTooLong {
        /// Length of the handle, in bytes.
        len: usize,
    },
    /// The scanned bytes do not have the scannable layout (wrong length or empty).
    #[error("scanned safety number of {len} bytes is malformed")]
    MalformedScan {
        /// Length of the scanned input.
        len: usize,
    },
    /// The scanned safety number was made with another safety-number version.
    #[error("scanned safety number has version {found}, expected {SAFETY_NUMBER_VERSION}")]
    VersionMismatch {
        /// The version byte found.
        found: u8,
    },
}

impl SafetyNumber {
    /// Length of [`scannable`](Self::scannable): version, then two 32-byte fingerprints.
    pub const SCANNABLE_LEN: usize = 1 + 2 * FINGERPRINT_LEN;

    /// Number of decimal digits in [`digits`](Self::digits).
    pub const DIGITS_LEN: usize = 2 * CHUNKS_PER_PARTY * DIGITS_PER_CHUNK;

    /// Computes the safety number between the local party (`local_account`, `local_handle`) and
    /// the remote party (SPEC.md §8). Fails only if a handle is longer than 255 bytes.
    pub fn compute(
        local_account: &AccountPublicKey,
        local_handle: &str,
        remote_account: &AccountPublicKey,
        remote_handle: &str,
    ) -> Result<Self, SafetyNumberError> {
        let local = Fingerprint::compute(local_account, local_handle)?;
        let remote = Fingerprint::compute(remote_account, remote_handle)?;
        let (first, second) = if local.digits <= remote.digits {
            (&local.digits, &remote.digits)
        } else {
            (&remote.digits, &local.digits)
        };
        Ok(Self {
            digits: [first.as_str(), second.as_str()].concat(),
            local: local.bytes,
            remote: remote.bytes,
        })
    }

    /// The 60 decimal digits, identical on both sides.
    pub fn digits(&self) -> &str {
        &self.digits
    }

    /// The digits as 12 groups of 5, for display.
    pub fn groups(&self) -> [&str; 12] {
        core::array::from_fn(|i| {
            let start = i * DIGITS_PER_CHUNK;
            self.digits
                .get(start..start + DIGITS_PER_CHUNK)
                .unwrap_or_default()
        })
    }

    /// The scannable form, for a QR code (SPEC.md §8):
    ///
    /// ```text
    /// scannable = SAFETY_NUMBER_VERSION:u8 || local fingerprint:[32] || remote fingerprint:[32]
    /// ```
    pub fn scannable(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::SCANNABLE_LEN);
        out.push(SAFETY_NUMBER_VERSION);
        out.extend_from_slice(&self.local);
        out.extend_from_slice(&self.remote);
        out
    }

    /// Whether `scanned`, the [`scannable`](Self::scannable) form shown by the *other* party,
    /// matches this safety number: its local fingerprint must equal our remote one and its
    /// remote fingerprint our local one. The 64 fingerprint bytes are compared in constant
    /// time (SPEC.md §8).
    ///
    /// A wrong version byte or a wrong length is an error, not a mismatch.
    pub fn matches_scanned(&self, scanned: &[u8]) -> Result<bool, SafetyNumberError> {
        let malformed = || SafetyNumberError::MalformedScan { len: scanned.len() };
        let (&version, fingerprints) = scanned.split_first().ok_or_else(malformed)?;
        if version != SAFETY_NUMBER_VERSION {
            return Err(SafetyNumberError::VersionMismatch { found: version });
        }
        if fingerprints.len() != 2 * FINGERPRINT_LEN {
            return Err(malformed());
        }
        let expected = [self.remote, self.local].concat();
        Ok(expected.ct_eq(fingerprints).into())
    }
}

impl fmt::Display for SafetyNumber {
    /// Three lines of four 5-digit groups separated by spaces.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (line, groups) in self.groups().chunks(4).enumerate() {
            if line > 0 {
                writeln!(f)?;
            }
            write!(f, "{}", groups.join(" "))?;
        }
        Ok(())
    }
}

impl fmt::Debug for SafetyNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SafetyNumber").field(&self.digits).finish()
    }
}

/// One party's fingerprint: 30 digits for display, 32 bytes for the scannable form.
struct Fingerprint {
    digits: String,
    bytes: [u8; FINGERPRINT_LEN],
}

impl Fingerprint {
    fn compute(account: &AccountPublicKey, handle: &str) -> Result<Self, SafetyNumberError> {
        let handle_len = u8::try_from(handle.len())
            .map_err(|_| SafetyNumberError::HandleTooLong { len: handle.len() })?;
        let mut hash = Sha512::new()
            .chain_update(labels::SAFETY_NUMBER)
            .chain_update([SAFETY_NUMBER_VERSION])
            .chain_update(account.as_bytes())
            .chain_update([handle_len])
            .chain_update(handle.as_bytes())
            .finalize();
        for _ in 0..SAFETY_NUMBER_ITERATIONS {
            hash = Sha512::new()
                .chain_update(hash)
                .chain_update(account.as_bytes())
                .finalize();
        }
        let mut bytes = [0u8; FINGERPRINT_LEN];
        bytes.copy_from_slice(&hash[..FINGERPRINT_LEN]);
        let digits = hash[..CHUNKS_PER_PARTY * CHUNK_BYTES]
            .chunks_exact(CHUNK_BYTES)
            .map(|chunk| {
                let value = chunk.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
                format!("{:05}", value % CHUNK_MODULUS)
            })
            .collect();
        Ok(Self { digits, bytes })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn key(byte: u8) -> AccountPublicKey {
        AccountPublicKey::from_bytes([byte; 32])
    }

    fn alice() -> AccountPublicKey {
        AccountPublicKey::from_bytes(core::array::from_fn(|i| u8::try_from(i).unwrap()))
    }

    fn bob() -> AccountPublicKey {
        AccountPublicKey::from_bytes(core::array::from_fn(|i| 0xff - u8::try_from(i).unwrap()))
    }

    fn pair() -> (SafetyNumber, SafetyNumber) {
        (
            SafetyNumber::compute(&alice(), "alice", &bob(), "bob").unwrap(),
            SafetyNumber::compute(&bob(), "bob", &alice(), "alice").unwrap(),
        )
    }

    /// Known answer, computed independently with Python's `hashlib` from the algorithm in the
    /// module docs (alice = bytes 0..32, bob = bytes 255 down to 224).
    #[test]
    fn safety_number_known_answer() {
        let (a, _) = pair_cached();
        assert_eq!(
            a.digits(),
            "069583213878328432953865140272984178930020086922226156836776"
        );
        let scan = a.scannable();
        assert_eq!(
            hex::encode(&scan[1..33]),
            "8cb3d677919195a3ab347ed3ea31f63cec220cbe509863cf008137e997a8b331"
        );
        assert_eq!(
            hex::encode(&scan[33..]),
            "e2fad27b0ed6d6bd4f2ae41626b2988db2a05f1fc2efc8539b28b991ed50e4fe"
        );
    }

    #[test]
    fn safety_number_is_the_same_on_both_sides() {
        let (a, b) = pair_cached();
        assert_eq!(a.digits(), b.digits());
        assert_eq!(a.digits().len(), SafetyNumber::DIGITS_LEN);
        assert!(a.digits().bytes().all(|c| c.is_ascii_digit()));
        assert_eq!(a.to_string(), b.to_string());
    }

    #[test]
    fn safety_number_display_is_three_lines_of_four_groups() {
        let (a, _) = pair_cached();
        let groups = a.groups();
        assert_eq!(groups.concat(), a.digits());
        assert!(groups.iter().all(|g| g.len() == 5));
        let shown = a.to_string();
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], groups[..4].join(" "));
        assert_eq!(lines[2], groups[8..].join(" "));
        assert_eq!(format!("{a:?}"), format!("SafetyNumber({:?})", a.digits()));
    }

    /// One bit flipped in every byte of the key (a different bit position in each byte), on
    /// either side: the full 256-bit sweep takes over a minute in a debug build.
    #[test]
    fn safety_number_changes_with_any_account_key_bit() {
        let (base, _) = pair_cached();
        let base_alice = Fingerprint::compute(&alice(), "alice").unwrap();
        for byte in 0..32 {
            let mut flipped = *alice().as_bytes();
            flipped[byte] ^= 1 << (byte % 8);
            let flipped = AccountPublicKey::from_bytes(flipped);
            let fingerprint = Fingerprint::compute(&flipped, "alice").unwrap();
            assert_ne!(fingerprint.digits, base_alice.digits, "byte {byte}");
            assert_ne!(fingerprint.bytes, base_alice.bytes, "byte {byte}");
        }
        let mut flipped = *bob().as_bytes();
        flipped[31] ^= 0x80;
        let flipped = AccountPublicKey::from_bytes(flipped);
        let local = SafetyNumber::compute(&alice(), "alice", &flipped, "bob").unwrap();
        let remote = SafetyNumber::compute(&flipped, "bob", &alice(), "alice").unwrap();
        assert_ne!(local.digits(), base.digits());
        assert_eq!(local.digits(), remote.digits());
    }

    #[test]
    fn safety_number_changes_with_the_handle() {
        let (base, _) = pair_cached();
        for (local, remote) in [
            ("alicf", "bob"),
            ("alice", "boc"),
            ("alice", ""),
            ("", "bob"),
        ] {
            let other = SafetyNumber::compute(&alice(), local, &bob(), remote).unwrap();
            assert_ne!(other.digits(), base.digits(), "{local:?} / {remote:?}");
        }
        // The length prefix separates handle from key: moving a byte between them changes it.
        let a = SafetyNumber::compute(&key(1), "ab", &key(2), "c").unwrap();
        let b = SafetyNumber::compute(&key(1), "a", &key(2), "bc").unwrap();
        assert_ne!(a.digits(), b.digits());
    }

    #[test]
    fn safety_number_rejects_handles_over_255_bytes() {
        let long = "x".repeat(256);
        let max = "x".repeat(255);
        assert_eq!(
            SafetyNumber::compute(&alice(), &long, &bob(), "bob").unwrap_err(),
            SafetyNumberError::HandleTooLong { len: 256 }
        );
        assert_eq!(
            SafetyNumber::compute(&alice(), "alice", &bob(), &long).unwrap_err(),
            SafetyNumberError::HandleTooLong { len: 256 }
        );
        assert!(SafetyNumber::compute(&alice(), &max, &bob(), &max).is_ok());
    }

    #[test]
    fn safety_number_scan_from_the_other_side_matches() {
        let (a, b) = pair_cached();
        assert_eq!(a.scannable().len(), SafetyNumber::SCANNABLE_LEN);
        assert_eq!(a.scannable()[0], SAFETY_NUMBER_VERSION);
        assert!(a.matches_scanned(&b.scannable()).unwrap());
        assert!(b.matches_scanned(&a.scannable()).unwrap());
    }

    #[test]
    fn safety_number_scan_of_own_form_does_not_match() {
        let (a, _) = pair_cached();
        assert!(!a.matches_scanned(&a.scannable()).unwrap());
        // Unless both parties are the same: then the form is symmetric.
        let same = SafetyNumber::compute(&alice(), "alice", &alice(), "alice").unwrap();
        assert!(same.matches_scanned(&same.scannable()).unwrap());
    }

    #[test]
    fn safety_number_scan_from_a_third_party_does_not_match() {
        let (a, _) = pair_cached();
        // Carol talking to Alice: Carol's local fingerprint is not Bob's.
        let carol = SafetyNumber::compute(&key(7), "carol", &alice(), "alice").unwrap();
        assert!(!a.matches_scanned(&carol.scannable()).unwrap());
        // Bob's key under another handle (or an impostor using Bob's handle).
        let renamed = SafetyNumber::compute(&bob(), "bob2", &alice(), "alice").unwrap();
        assert!(!a.matches_scanned(&renamed.scannable()).unwrap());
        let impostor = SafetyNumber::compute(&key(7), "bob", &alice(), "alice").unwrap();
        assert!(!a.matches_scanned(&impostor.scannable()).unwrap());
    }

    #[test]
    fn safety_number_scan_with_any_flipped_fingerprint_bit_does_not_match() {
        let (a, b) = pair_cached();
        let scan = b.scannable();
        for byte in 1..scan.len() {
            for bit in 0..8 {
                let mut flipped = scan.clone();
                flipped[byte] ^= 1 << bit;
                assert!(
                    !a.matches_scanned(&flipped).unwrap(),
                    "byte {byte} bit {bit}"
                );
            }
        }
    }

    #[test]
    fn safety_number_malformed_scans_are_errors() {
        let (a, b) = pair_cached();
        let scan = b.scannable();
        assert_eq!(
            a.matches_scanned(&[]),
            Err(SafetyNumberError::MalformedScan { len: 0 })
        );
        assert_eq!(
            a.matches_scanned(&scan[..64]),
            Err(SafetyNumberError::MalformedScan { len: 64 })
        );
        let mut long = scan.clone();
        long.push(0);
        assert_eq!(
            a.matches_scanned(&long),
            Err(SafetyNumberError::MalformedScan { len: 66 })
        );
        let mut versioned = scan;
        versioned[0] = SAFETY_NUMBER_VERSION.wrapping_add(1);
        assert_eq!(
            a.matches_scanned(&versioned),
            Err(SafetyNumberError::VersionMismatch {
                found: SAFETY_NUMBER_VERSION.wrapping_add(1)
            })
        );
    }

    proptest! {
        #[test]
        fn safety_number_arbitrary_scans_never_panic(
            scanned in proptest::collection::vec(any::<u8>(), 0..200)
        ) {
            let (a, _) = pair_cached();
            let result = a.matches_scanned(&scanned);
            if scanned.len() != SafetyNumber::SCANNABLE_LEN {
                prop_assert!(result.is_err());
            }
        }
    }

    /// [`pair`] computed once: 2 × 5201 SHA-512 per side is slow in debug builds.
    fn pair_cached() -> &'static (SafetyNumber, SafetyNumber) {
        static PAIR: std::sync::OnceLock<(SafetyNumber, SafetyNumber)> = std::sync::OnceLock::new();
        PAIR.get_or_init(pair)
    }
}
