//! Property tests: decoding arbitrary or corrupted bytes never panics.

use std::sync::LazyLock;

use proptest::collection::vec;
use proptest::prelude::*;

use super::fixtures::{Fixture, sample_client_frames, sample_server_frames};
use super::*;
use crate::encoding::BoundedVec;

/// The encoding of every sample frame.
struct Samples {
    client: Vec<Vec<u8>>,
    server: Vec<Vec<u8>>,
}

static SAMPLES: LazyLock<Samples> = LazyLock::new(|| {
    let mut f = Fixture::new(40);
    let client = sample_client_frames(&mut f)
        .iter()
        .map(ClientFrame::to_bytes)
        .collect();
    let server = sample_server_frames(&mut f)
        .iter()
        .map(ServerFrame::to_bytes)
        .collect();
    Samples { client, server }
});

fn flip(mut bytes: Vec<u8>, flips: &[(usize, u8)]) -> Vec<u8> {
    for &(at, mask) in flips {
        let at = at % bytes.len();
        bytes[at] ^= mask;
    }
    bytes
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..4096)) {
        let _ = ClientFrame::from_bytes(&bytes);
        let _ = ServerFrame::from_bytes(&bytes);
    }

    #[test]
    fn arbitrary_bytes_after_the_version_never_panic(body in vec(any::<u8>(), 0..4096)) {
        let bytes = [&[WIRE_VERSION][..], &body].concat();
        let _ = ClientFrame::from_bytes(&bytes);
        let _ = ServerFrame::from_bytes(&bytes);
    }

    #[test]
    fn mutated_client_frames_never_panic(
        which in any::<prop::sample::Index>(),
        flips in vec((any::<usize>(), 1..=u8::MAX), 1..8),
    ) {
        let bytes = flip(which.get(&SAMPLES.client).clone(), &flips);
        if let Ok(frame) = ClientFrame::from_bytes(&bytes) {
            prop_assert_eq!(frame.to_bytes(), bytes);
        }
    }

    #[test]
    fn mutated_server_frames_never_panic(
        which in any::<prop::sample::Index>(),
        flips in vec((any::<usize>(), 1..=u8::MAX), 1..8),
    ) {
        let bytes = flip(which.get(&SAMPLES.server).clone(), &flips);
        if let Ok(frame) = ServerFrame::from_bytes(&bytes) {
            prop_assert_eq!(frame.to_bytes(), bytes);
        }
    }

    #[test]
    fn acks_round_trip(request_id in any::<u64>(), ids in vec(any::<u64>(), 0..=256)) {
        let frame = ClientFrame { request_id, request: Request::Ack { deliveries: BoundedVec::new(ids).unwrap() } };
        prop_assert_eq!(ClientFrame::from_bytes(&frame.to_bytes()), Ok(frame));
    }

    #[test]
    fn handles_parse_to_their_canonical_form(input in "[A-Za-z0-9._-]{3,32}") {
        let handle = Handle::parse(&input).unwrap();
        prop_assert_eq!(handle.as_str(), input.to_ascii_lowercase());
        let frame = ClientFrame { request_id: 1, request: Request::Lookup { handle } };
        prop_assert_eq!(ClientFrame::from_bytes(&frame.to_bytes()), Ok(frame));
    }
}
