//! `certificate.json`: a device certificate (SPEC.md §3.4).

use ed25519_dalek::{Signer, SigningKey};
use serde::{Deserialize, Serialize};

use super::fixtures::{Party, PartyRecord, ed25519_verifies};
use super::{check_against_file, hex, push_varint, seeded, unhex, unhex_vec};
use crate::keys::DeviceCertificate;

const SEED: u64 = 1;

const DESCRIPTION: &str = "Device certificate (SPEC.md §3.4). The account key (Ed25519 secret \
    seed account_secret) certifies a device: X25519 identity key, Ed25519 signing key, 16-byte \
    device id, created_at (seconds since the Unix epoch). signed_message = \"Kith-v1 device \
    certificate\" || version:u8 (1) || account_public || device_id || identity_public || \
    signing_public || created_at as LEB128 varint; signature = Ed25519(account_secret, \
    signed_message) (RFC 8032, deterministic); certificate (the canonical encoding) = \
    signed_message without the label || signature. Check: derive the public keys from the \
    secrets, rebuild signed_message and the signature, decode and verify the certificate.";

#[derive(Serialize, Deserialize)]
struct CertificateVector {
    description: String,
    device: PartyRecord,
    signed_message: String,
    signature: String,
}

fn compute() -> CertificateVector {
    let party = Party::draw(&mut seeded(SEED));
    let device = party.record();
    let certificate = unhex_vec(&device.certificate);
    let signature = hex(&certificate[certificate.len() - 64..]);
    CertificateVector {
        description: DESCRIPTION.to_owned(),
        signed_message: hex(signed_message(&device)),
        signature,
        device,
    }
}

/// The signed bytes, built field by field from the spec's layout.
fn signed_message(device: &PartyRecord) -> Vec<u8> {
    let mut out = b"Kith-v1 device certificate".to_vec();
    out.push(1);
    out.extend_from_slice(&unhex::<32>(&device.account_public));
    out.extend_from_slice(&unhex::<16>(&device.device_id));
    out.extend_from_slice(&unhex::<32>(&device.identity_public));
    out.extend_from_slice(&unhex::<32>(&device.signing_public));
    push_varint(&mut out, device.created_at);
    out
}

#[test]
fn certificate_vector() {
    let recorded = check_against_file("certificate.json", &compute());
    let device = &recorded.device;
    // Rebuilding from the secrets checks every public key and the certificate bytes.
    let party = device.party();

    let message = unhex_vec(&recorded.signed_message);
    assert_eq!(message, signed_message(device));
    let signature = unhex::<64>(&recorded.signature);
    let account = SigningKey::from_bytes(&unhex(&device.account_secret));
    assert_eq!(account.sign(&message).to_bytes(), signature);
    assert!(ed25519_verifies(
        &unhex(&device.account_public),
        &message,
        &signature
    ));

    let label_len = b"Kith-v1 device certificate".len();
    let expected = [&message[label_len..], &signature[..]].concat();
    assert_eq!(unhex_vec(&device.certificate), expected);

    let verified = DeviceCertificate::from_bytes(&expected)
        .expect("certificate decodes")
        .verify()
        .expect("certificate verifies");
    assert_eq!(verified, party.certificate);
    assert_eq!(hex(verified.device_id().as_bytes()), device.device_id);
    assert_eq!(verified.created_at(), device.created_at);
}
