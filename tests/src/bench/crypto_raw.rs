//! The raw primitives, called directly on the crates kith-protocol is built on, each the way
//! the protocol uses it (same sizes, keys decoded from bytes where the protocol decodes them).

use std::hint::black_box;

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, KeyInit as _, Nonce};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use hkdf::Hkdf;
use hmac::{Hmac, Mac as _};
use kith_protocol::consts::labels;
use ml_kem::{
    Decapsulate as _, DecapsulationKey, Encapsulate as _, EncapsulationKey, Generate as _,
    KeyExport as _, MlKem768,
};
use rand_chacha::ChaCha20Rng;
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};

use super::crypto_timing::{Stopwatch, Timing};
use crate::device::rng;

/// Plaintext of a ratchet message in this benchmark.
pub(super) const MESSAGE_LEN: usize = 200;
/// A ratchet message's associated data: version, both identities (2 × 80), header (40).
const RATCHET_AD_LEN: usize = 1 + 2 * 80 + 40;
/// A signed message about the size of a device certificate's signed bytes.
const SIGNED_LEN: usize = 128;

/// The cost of each primitive, in microseconds.
#[derive(Debug, Clone, Copy)]
pub(super) struct RawCosts {
    pub(super) x25519_dh: f64,
    pub(super) x25519_base: f64,
    pub(super) ed25519_verify: f64,
    pub(super) ml_kem_keygen: f64,
    pub(super) ml_kem_encaps: f64,
    pub(super) ml_kem_decaps: f64,
    pub(super) aead_seal: f64,
    pub(super) aead_open: f64,
    pub(super) hmac: f64,
    pub(super) hkdf_44: f64,
}

/// Measures every primitive; returns the costs and one `(name, timing)` per primitive.
pub(super) fn measure(
    clock: &Stopwatch,
) -> anyhow::Result<(RawCosts, Vec<(&'static str, Timing)>)> {
    let mut rng = rng(0xC0FFEE);
    let mut rows = Vec::new();
    let mut time = |name: &'static str, op: &mut dyn FnMut() -> anyhow::Result<()>| {
        let timing = clock.time(op)?;
        rows.push((name, timing));
        anyhow::Ok(timing.us)
    };
    let (x25519_dh, x25519_base) = x25519(&mut rng, &mut time)?;
    let ed25519_verify = ed25519(&mut rng, &mut time)?;
    let (ml_kem_keygen, ml_kem_encaps, ml_kem_decaps) = ml_kem(&mut rng, &mut time)?;
    let (aead_seal, aead_open) = chacha(&mut time)?;
    let (hmac, hkdf_44) = kdfs(&mut time)?;
    let costs = RawCosts {
        x25519_dh,
        x25519_base,
        ed25519_verify,
        ml_kem_keygen,
        ml_kem_encaps,
        ml_kem_decaps,
        aead_seal,
        aead_open,
        hmac,
        hkdf_44,
    };
    Ok((costs, rows))
}

/// The timing callback `measure` hands each group of primitives.
type TimeFn<'a> =
    dyn FnMut(&'static str, &mut dyn FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> + 'a;

/// X25519: a DH with a peer's public key, and a base-point multiplication (a public key from
/// a secret, what "keygen" costs beyond drawing 32 random bytes).
fn x25519(rng: &mut ChaCha20Rng, time: &mut TimeFn<'_>) -> anyhow::Result<(f64, f64)> {
    let secret = StaticSecret::random_from_rng(&mut *rng);
    let peer = PublicKey::from(&StaticSecret::random_from_rng(&mut *rng));
    let dh = time("x25519-dh", &mut || {
        black_box(black_box(&secret).diffie_hellman(black_box(&peer)));
        Ok(())
    })?;
    let base = time("x25519-base-mul", &mut || {
        black_box(PublicKey::from(black_box(&secret)));
        Ok(())
    })?;
    Ok((dh, base))
}

/// Ed25519: a signature (for reference: setup and seal + open sign nothing), and a strict
/// verification from the encoded public key (the protocol decodes the key for every
/// verification). Returns the verification's cost.
fn ed25519(rng: &mut ChaCha20Rng, time: &mut TimeFn<'_>) -> anyhow::Result<f64> {
    let key = SigningKey::generate(&mut *rng);
    let message = [0x42u8; SIGNED_LEN];
    let signature = key.sign(&message);
    let public = key.verifying_key().to_bytes();
    time("ed25519-sign", &mut || {
        black_box(black_box(&key).sign(black_box(&message)));
        Ok(())
    })?;
    let verify = time("ed25519-verify", &mut || {
        let key = VerifyingKey::from_bytes(black_box(&public))?;
        key.verify_strict(black_box(&message), &signature)?;
        Ok(())
    })?;
    Ok(verify)
}

/// ML-KEM-768: key generation from a 64-byte seed (what kith-protocol does before every
/// decapsulation, as it stores seeds), encapsulation to an encoded key, decapsulation with an
/// expanded key.
fn ml_kem(rng: &mut ChaCha20Rng, time: &mut TimeFn<'_>) -> anyhow::Result<(f64, f64, f64)> {
    let dk = DecapsulationKey::<MlKem768>::generate_from_rng(&mut *rng);
    let seed = dk
        .to_seed()
        .ok_or_else(|| anyhow::anyhow!("a generated ML-KEM key has no seed"))?;
    let public = dk.encapsulation_key().to_bytes();
    let keygen = time("ml-kem-768-keygen", &mut || {
        black_box(DecapsulationKey::<MlKem768>::from_seed(black_box(seed)));
        Ok(())
    })?;
    let mut encaps_rng = self::rng(7);
    let encaps = time("ml-kem-768-encaps", &mut || {
        let ek = EncapsulationKey::<MlKem768>::new(black_box(&public))
            .map_err(|_| anyhow::anyhow!("ML-KEM rejected its own public key"))?;
        black_box(ek.encapsulate_with_rng(&mut encaps_rng));
        Ok(())
    })?;
    let (ciphertext, _) = EncapsulationKey::<MlKem768>::new(&public)
        .map_err(|_| anyhow::anyhow!("ML-KEM rejected its own public key"))?
        .encapsulate_with_rng(&mut *rng);
    let decaps = time("ml-kem-768-decaps", &mut || {
        black_box(dk.decapsulate(black_box(&ciphertext)));
        Ok(())
    })?;
    Ok((keygen, encaps, decaps))
}

/// ChaCha20-Poly1305 seal and open of a ratchet message: 200 bytes with the ratchet's AD.
fn chacha(time: &mut TimeFn<'_>) -> anyhow::Result<(f64, f64)> {
    let key = Key::from([7u8; 32]);
    let nonce = Nonce::from([9u8; 12]);
    let message = [0x6bu8; MESSAGE_LEN];
    let ad = [0x11u8; RATCHET_AD_LEN];
    let payload = |msg| Payload { msg, aad: &ad[..] };
    let sealed = ChaCha20Poly1305::new(&key)
        .encrypt(&nonce, payload(&message[..]))
        .map_err(|_| anyhow::anyhow!("ChaCha20-Poly1305 encryption failed"))?;
    let seal = time("chacha20poly1305-seal-200", &mut || {
        let cipher = ChaCha20Poly1305::new(black_box(&key));
        black_box(cipher.encrypt(&nonce, payload(black_box(&message[..]))))
            .map_err(|_| anyhow::anyhow!("ChaCha20-Poly1305 encryption failed"))?;
        Ok(())
    })?;
    let open = time("chacha20poly1305-open-200", &mut || {
        let cipher = ChaCha20Poly1305::new(black_box(&key));
        black_box(cipher.decrypt(&nonce, payload(black_box(&sealed[..]))))
            .map_err(|_| anyhow::anyhow!("ChaCha20-Poly1305 rejected its own ciphertext"))?;
        Ok(())
    })?;
    Ok((seal, open))
}

/// HMAC-SHA256 as the chain KDF calls it (32-byte key, one input byte), and HKDF-SHA256
/// (extract + expand to 44 bytes) as the per-message AEAD key derivation calls it.
fn kdfs(time: &mut TimeFn<'_>) -> anyhow::Result<(f64, f64)> {
    let key = [3u8; 32];
    let hmac = time("hmac-sha256", &mut || {
        let mut mac = <Hmac<Sha256>>::new_from_slice(black_box(&key))
            .map_err(|_| anyhow::anyhow!("HMAC rejected a 32-byte key"))?;
        mac.update(&[0x01]);
        black_box(mac.finalize());
        Ok(())
    })?;
    let salt = [0u8; 32];
    let hkdf = time("hkdf-sha256-44", &mut || {
        let mut okm = [0u8; 44];
        Hkdf::<Sha256>::new(Some(&salt[..]), black_box(&key[..]))
            .expand(labels::MESSAGE_KEYS_INFO, &mut okm)
            .map_err(|_| anyhow::anyhow!("HKDF refused 44 bytes"))?;
        black_box(okm);
        Ok(())
    })?;
    Ok((hmac, hkdf))
}
