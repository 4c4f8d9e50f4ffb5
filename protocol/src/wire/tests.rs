//! Frame encoding tests: round trips, exact layouts, and rejection of every kind of bad input.

use serde::Serialize;

use super::fixtures::{Fixture, bytes, full_upload, sample_client_frames, sample_server_frames};
use super::*;
use crate::consts::{
    MAX_BODY_LEN, MAX_FRAME_LEN, MAX_PART_LEN, MAX_PREKEYS_PER_UPLOAD, MAX_RECIPIENTS,
};
use crate::encoding::{BoundedString, BoundedVec, DecodeError, encode_versioned};
use crate::keys::DeviceId;

/// Hand-built frame bodies: postcard encodes a tuple as its fields in order, so a tuple can
/// mirror a frame's layout with fields over their bounds.
fn raw_frame<T: Serialize>(body: &T) -> Vec<u8> {
    encode_versioned(WIRE_VERSION, body)
}

#[test]
fn every_client_frame_round_trips() {
    let frames = sample_client_frames(&mut Fixture::new(30));
    assert_eq!(frames.len(), 7);
    for frame in frames {
        let bytes = frame.to_bytes();
        assert_eq!(bytes[0], WIRE_VERSION);
        assert_eq!(ClientFrame::from_bytes(&bytes), Ok(frame));
    }
}

#[test]
fn every_server_frame_round_trips() {
    let frames = sample_server_frames(&mut Fixture::new(31));
    assert_eq!(frames.len(), 9);
    for frame in frames {
        let bytes = frame.to_bytes();
        assert_eq!(bytes[0], WIRE_VERSION);
        assert_eq!(ServerFrame::from_bytes(&bytes), Ok(frame));
    }
}

#[test]
fn layout_of_simple_frames() {
    let ack = ClientFrame {
        request_id: 300,
        request: Request::Ack {
            deliveries: BoundedVec::new(vec![1]).unwrap(),
        },
    };
    assert_eq!(ack.to_bytes(), [1, 0xAC, 0x02, 6, 1, 1]);
    assert_eq!(ServerFrame::QueueDrained.to_bytes(), [1, 3]);
    let low = ServerFrame::PrekeyCountLow {
        one_time_prekeys: 5,
        one_time_kem_prekeys: 128,
    };
    assert_eq!(low.to_bytes(), [1, 4, 5, 0x80, 0x01]);
    let challenge = ServerFrame::Challenge {
        nonce: [9; 32],
        relay_name: BoundedString::new("kith.example").unwrap(),
    };
    let expected = [&[1u8, 0][..], &[9; 32], &[12], b"kith.example"].concat();
    assert_eq!(challenge.to_bytes(), expected);
    let error = ServerFrame::Response {
        request_id: 2,
        response: Response::Error(ErrorFrame::new(
            ErrorKind::RateLimited {
                retry_after_ms: 1000,
            },
            "x",
        )),
    };
    assert_eq!(error.to_bytes(), [1, 1, 2, 4, 4, 0xE8, 0x07, 1, b'x']);
}

#[test]
fn rejects_trailing_bytes() {
    for frame in sample_client_frames(&mut Fixture::new(32)) {
        let mut bytes = frame.to_bytes();
        bytes.push(0);
        assert_eq!(
            ClientFrame::from_bytes(&bytes),
            Err(DecodeError::TrailingBytes)
        );
    }
    let mut bytes = ServerFrame::QueueDrained.to_bytes();
    bytes.push(0);
    assert_eq!(
        ServerFrame::from_bytes(&bytes),
        Err(DecodeError::TrailingBytes)
    );
}

#[test]
fn rejects_other_versions() {
    let mut client = sample_client_frames(&mut Fixture::new(33))
        .remove(0)
        .to_bytes();
    let mut server = ServerFrame::QueueDrained.to_bytes();
    for found in [0, 2, 255] {
        client[0] = found;
        server[0] = found;
        assert_eq!(
            ClientFrame::from_bytes(&client),
            Err(DecodeError::UnsupportedVersion { found })
        );
        assert_eq!(
            ServerFrame::from_bytes(&server),
            Err(DecodeError::UnsupportedVersion { found })
        );
    }
}

#[test]
fn every_truncation_is_an_error() {
    let mut f = Fixture::new(34);
    for frame in sample_client_frames(&mut f) {
        let bytes = frame.to_bytes();
        for len in 0..bytes.len() {
            assert!(
                ClientFrame::from_bytes(&bytes[..len]).is_err(),
                "prefix {len} of {frame:?}"
            );
        }
    }
    for frame in sample_server_frames(&mut f) {
        let bytes = frame.to_bytes();
        for len in 0..bytes.len() {
            assert!(
                ServerFrame::from_bytes(&bytes[..len]).is_err(),
                "prefix {len} of {frame:?}"
            );
        }
    }
}

#[test]
fn rejects_non_canonical_varints() {
    // request_id 1 written as the two-byte varint 0x81 0x00.
    let bytes = [1, 0x81, 0x00, 6, 0];
    assert_eq!(
        ClientFrame::from_bytes(&bytes),
        Err(DecodeError::NonCanonical)
    );
    assert!(ClientFrame::from_bytes(&[1, 1, 6, 0]).is_ok());
}

#[test]
fn rejects_unknown_variants() {
    assert_eq!(
        ClientFrame::from_bytes(&[1, 1, 7]),
        Err(DecodeError::Malformed)
    );
    assert_eq!(
        ServerFrame::from_bytes(&[1, 5]),
        Err(DecodeError::Malformed)
    );
}

#[test]
fn rejects_body_over_its_bound() {
    let send = |len: usize| raw_frame(&(1u64, 5u32, [8u8; 16], vec![0u8; len], Vec::<u8>::new()));
    assert!(ClientFrame::from_bytes(&send(MAX_BODY_LEN)).is_ok());
    assert_eq!(
        ClientFrame::from_bytes(&send(MAX_BODY_LEN + 1)),
        Err(DecodeError::Malformed)
    );
    let deliver = |len: usize| raw_frame(&(2u32, 1u64, 2u64, vec![0u8; len], 0u8));
    assert!(ServerFrame::from_bytes(&deliver(MAX_BODY_LEN)).is_ok());
    assert_eq!(
        ServerFrame::from_bytes(&deliver(MAX_BODY_LEN + 1)),
        Err(DecodeError::Malformed)
    );
}

#[test]
fn rejects_part_over_its_bound() {
    let send = |len: usize| {
        raw_frame(&(
            1u64,
            5u32,
            [8u8; 16],
            Vec::<u8>::new(),
            vec![([1u8; 16], Some(vec![0u8; len]))],
        ))
    };
    assert!(ClientFrame::from_bytes(&send(MAX_PART_LEN)).is_ok());
    assert_eq!(
        ClientFrame::from_bytes(&send(MAX_PART_LEN + 1)),
        Err(DecodeError::Malformed)
    );
}

#[test]
fn rejects_too_many_recipients() {
    let send = |n: usize| {
        raw_frame(&(
            1u64,
            5u32,
            [8u8; 16],
            Vec::<u8>::new(),
            vec![([1u8; 16], 0u8); n],
        ))
    };
    assert!(ClientFrame::from_bytes(&send(MAX_RECIPIENTS)).is_ok());
    assert_eq!(
        ClientFrame::from_bytes(&send(MAX_RECIPIENTS + 1)),
        Err(DecodeError::Malformed)
    );
}

#[test]
fn rejects_invalid_handles_in_frames() {
    let lookup = |handle: &str| raw_frame(&(1u64, 3u32, handle));
    assert!(ClientFrame::from_bytes(&lookup("alice")).is_ok());
    for bad in ["AB", "ab", "Alice", "al@ce", "", &"a".repeat(33)] {
        assert_eq!(
            ClientFrame::from_bytes(&lookup(bad)),
            Err(DecodeError::Malformed),
            "{bad}"
        );
    }
}

#[test]
fn rejects_input_over_the_frame_limit() {
    let len = MAX_FRAME_LEN + 1;
    let too_long = vec![WIRE_VERSION; len];
    assert_eq!(
        ClientFrame::from_bytes(&too_long),
        Err(DecodeError::TooLarge {
            len,
            max: MAX_FRAME_LEN
        })
    );
    assert_eq!(
        ServerFrame::from_bytes(&too_long),
        Err(DecodeError::TooLarge {
            len,
            max: MAX_FRAME_LEN
        })
    );
}

#[test]
fn send_with_in_bound_fields_can_still_exceed_the_frame_limit() {
    let recipient = Recipient {
        device_id: DeviceId::from_bytes([0; 16]),
        part: Some(bytes(MAX_PART_LEN, 7)),
    };
    let recipients = vec![recipient; MAX_RECIPIENTS];
    let frame = ClientFrame {
        request_id: 1,
        request: Request::Send(SendRequest {
            client_message_id: [0; 16],
            body: bytes(MAX_BODY_LEN, 0),
            recipients: BoundedVec::new(recipients).unwrap(),
        }),
    };
    let bytes = frame.to_bytes();
    assert!(bytes.len() > MAX_FRAME_LEN);
    assert!(matches!(
        ClientFrame::from_bytes(&bytes),
        Err(DecodeError::TooLarge { .. })
    ));
}

#[test]
fn maximal_deliver_fits_in_a_frame() {
    let frame = ServerFrame::Deliver(Delivery {
        delivery_id: u64::MAX,
        arrived_at: u64::MAX,
        body: bytes(MAX_BODY_LEN, 1),
        part: Some(bytes(MAX_PART_LEN, 2)),
    });
    let bytes = frame.to_bytes();
    assert!(bytes.len() <= MAX_FRAME_LEN);
    assert_eq!(ServerFrame::from_bytes(&bytes), Ok(frame));
}

#[test]
fn maximal_registration_fits_in_a_frame() {
    let mut f = Fixture::new(35);
    let frame = ClientFrame {
        request_id: u64::MAX,
        request: Request::Register(Box::new(Register {
            handle: Handle::parse(&"a".repeat(32)).unwrap(),
            certificate: f.certificate.clone(),
            prekeys: full_upload(&mut f, MAX_PREKEYS_PER_UPLOAD),
            invite: Some(bytes(64, 1)),
            signature: [0; 64],
        })),
    };
    let bytes = frame.to_bytes();
    assert!(bytes.len() <= MAX_FRAME_LEN, "{}", bytes.len());
    assert_eq!(ClientFrame::from_bytes(&bytes), Ok(frame));
}

#[test]
fn debug_does_not_print_bodies_or_tokens() {
    for frame in sample_client_frames(&mut Fixture::new(36)) {
        let debug = format!("{frame:?}");
        assert!(!debug.contains("205, 205"), "{debug}"); // the Send body is 0xCD bytes
        assert!(!debug.contains("171, 171"), "{debug}"); // the Send part is 0xAB bytes
        assert!(!debug.contains("[1, 1, 1"), "{debug}"); // the invite token is 0x01 bytes
    }
}
