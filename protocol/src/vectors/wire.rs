//! `wire.json`: one canonical encoding of every client request and every server frame
//! (SPEC.md §9).

use serde::{Deserialize, Serialize};

use super::fixtures::{PartyRecord, ed25519_verifies};
use super::wire_frames::{
    ERROR_KINDS, RELAY_NAME, UploadSecrets, client_frames, inputs, server_frames,
};
use super::{check_against_file, hex, push_varint, unhex, unhex_vec};
use crate::encoding;
use crate::wire::{
    ClientFrame, ErrorKind, Request, Response, ServerFrame, auth_transcript, sign_auth,
};

const DESCRIPTION: &str = "Wire frames (SPEC.md §9): one canonical encoding (SPEC.md §2) of \
    every ClientFrame request variant and every ServerFrame variant (every Response variant \
    inside ServerFrame::Response), and of every ErrorKind. Each frame is version:u8 (1) || \
    postcard(frame). Decoding a frame and re-encoding it must give the same bytes. \
    auth_transcript = \"Kith-v1 relay auth\" || len(relay_name):u8 || relay_name || \
    challenge_nonce || device.device_id || 0x01 || channel_binding (SPEC.md §9.2); \
    auth_signature = Ed25519(device.signing_secret, auth_transcript), used by Authenticate and \
    Register. The prekeys in Register, PublishPrekeys and Bundles are made from upload_secrets \
    (signed prekey id 1, last-resort ML-KEM prekey id 1000, one-time prekeys ids 100 and 101, \
    one-time ML-KEM prekey id 200), signed by device.signing_secret (SPEC.md §3.5).";

#[derive(Serialize, Deserialize)]
struct WireVector {
    description: String,
    device: PartyRecord,
    upload_secrets: UploadSecrets,
    relay_name: String,
    challenge_nonce: String,
    channel_binding: String,
    auth_transcript: String,
    auth_signature: String,
    client_frames: Vec<Frame>,
    server_frames: Vec<Frame>,
    error_kinds: Vec<Frame>,
}

#[derive(Serialize, Deserialize)]
struct Frame {
    name: String,
    encoding: String,
}

fn compute() -> WireVector {
    let inputs = inputs();
    let device = &inputs.party.device;
    let device_id = inputs.party.certificate.device_id();
    let transcript = auth_transcript(RELAY_NAME, &inputs.nonce, Some(&inputs.binding), &device_id)
        .expect("short relay name");
    let signature = sign_auth(
        device,
        RELAY_NAME,
        &inputs.nonce,
        Some(&inputs.binding),
        &device_id,
    )
    .expect("short relay name");
    let frame = |name: &str, encoding: Vec<u8>| Frame {
        name: name.to_owned(),
        encoding: hex(encoding),
    };
    WireVector {
        description: DESCRIPTION.to_owned(),
        device: inputs.party.record(),
        relay_name: RELAY_NAME.to_owned(),
        challenge_nonce: hex(inputs.nonce),
        channel_binding: hex(inputs.binding),
        auth_transcript: hex(transcript),
        auth_signature: hex(signature),
        client_frames: client_frames(&inputs, signature)
            .into_iter()
            .map(|(name, f)| frame(name, f.to_bytes()))
            .collect(),
        server_frames: server_frames(&inputs)
            .into_iter()
            .map(|(name, f)| frame(name, f.to_bytes()))
            .collect(),
        error_kinds: ERROR_KINDS
            .iter()
            .map(|(name, kind)| frame(name, encoding::encode(kind)))
            .collect(),
        upload_secrets: inputs.upload,
    }
}

#[test]
fn wire_vector() {
    let recorded = check_against_file("wire.json", &compute());
    let party = recorded.device.party();

    // The transcript, laid out by hand, and its signature, with ed25519-dalek directly.
    let mut transcript = b"Kith-v1 relay auth".to_vec();
    transcript.push(u8::try_from(recorded.relay_name.len()).expect("short"));
    transcript.extend_from_slice(recorded.relay_name.as_bytes());
    transcript.extend_from_slice(&unhex::<32>(&recorded.challenge_nonce));
    transcript.extend_from_slice(&unhex::<16>(&recorded.device.device_id));
    transcript.push(0x01);
    transcript.extend_from_slice(&unhex::<32>(&recorded.channel_binding));
    assert_eq!(hex(&transcript), recorded.auth_transcript);
    let signature = unhex::<64>(&recorded.auth_signature);
    assert!(ed25519_verifies(
        &unhex(&recorded.device.signing_public),
        &transcript,
        &signature
    ));

    // Every frame decodes, re-encodes to the same bytes, and carries verifiable prekeys.
    let signer = party.device.signing_public();
    for frame in &recorded.client_frames {
        let bytes = unhex_vec(&frame.encoding);
        let decoded =
            ClientFrame::from_bytes(&bytes).unwrap_or_else(|e| panic!("{}: {e}", frame.name));
        assert_eq!(decoded.to_bytes(), bytes, "{}", frame.name);
        match decoded.request {
            Request::Register(register) => assert_eq!(register.prekeys.verify(&signer), Ok(())),
            Request::PublishPrekeys(upload) => assert_eq!(upload.verify(&signer), Ok(())),
            _ => {}
        }
    }
    for frame in &recorded.server_frames {
        let bytes = unhex_vec(&frame.encoding);
        let decoded =
            ServerFrame::from_bytes(&bytes).unwrap_or_else(|e| panic!("{}: {e}", frame.name));
        assert_eq!(decoded.to_bytes(), bytes, "{}", frame.name);
        if let ServerFrame::Response {
            response: Response::Bundles { bundles },
            ..
        } = decoded
        {
            bundles.as_slice()[0]
                .verify(party.certificate.account_key())
                .expect("bundle verifies");
        }
    }
    for (i, frame) in recorded.error_kinds.iter().enumerate() {
        let bytes = unhex_vec(&frame.encoding);
        let kind: ErrorKind = encoding::decode(&bytes, 16).expect("error kind decodes");
        assert_eq!(encoding::encode(&kind), bytes);
        assert_eq!(
            bytes[0],
            u8::try_from(i).expect("small tag"),
            "tags in variant order"
        );
    }
    check_hand_layouts(&recorded);
}

/// A few small frames laid out byte by byte from SPEC.md §9.
fn check_hand_layouts(recorded: &WireVector) {
    let encoding = |name: &str, frames: &[Frame]| {
        let frame = frames
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("{name}"));
        unhex_vec(&frame.encoding)
    };
    let client = |name| encoding(name, &recorded.client_frames);
    let server = |name| encoding(name, &recorded.server_frames);

    let mut ack = vec![1, 7, 6, 3, 1];
    push_varint(&mut ack, 300);
    push_varint(&mut ack, 1 << 40);
    assert_eq!(client("Ack"), ack);
    let mut lookup = vec![1, 4, 3, 14];
    lookup.extend_from_slice(b"peer_worker-01");
    assert_eq!(client("Lookup"), lookup);
    let mut authenticate = vec![1, 1, 0];
    authenticate.extend_from_slice(&unhex::<16>(&recorded.device.device_id));
    authenticate.extend_from_slice(&unhex::<64>(&recorded.auth_signature));
    assert_eq!(client("Authenticate"), authenticate);

    let mut challenge = vec![1, 0];
    challenge.extend_from_slice(&unhex::<32>(&recorded.challenge_nonce));
    challenge.push(13);
    challenge.extend_from_slice(RELAY_NAME.as_bytes());
    assert_eq!(server("Challenge"), challenge);
    assert_eq!(server("Response/Ok"), [1, 1, 1, 0]);
    // Error: tag 4, RateLimited (4) with 1500 = 0xDC 0x0B, detail "send rate".
    let mut error = vec![1, 1, 7, 4, 4, 0xDC, 0x0B, 9];
    error.extend_from_slice(b"send rate");
    assert_eq!(server("Response/Error"), error);
    assert_eq!(server("QueueDrained"), [1, 3]);
    assert_eq!(server("PrekeyCountLow"), [1, 4, 3, 0]);
}
