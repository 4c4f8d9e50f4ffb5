//! Deterministic keys and one sample of every frame, shared by the wire tests.

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::*;
use crate::consts::{MAX_BODY_LEN, MAX_PART_LEN};
use crate::encoding::{BoundedBytes, BoundedString, BoundedVec};
use crate::keys::{
    AccountKeyPair, DeviceCertificate, DeviceId, DeviceKeyPair, KemPrekey, KemPrekeyKind,
    KemPrekeySecret, OneTimePrekeySecret, PrekeyBundle, PrekeyId, SignedPrekeySecret,
};

/// An account with one certified device, from a fixed seed.
pub(super) struct Fixture {
    pub(super) rng: ChaCha20Rng,
    pub(super) account: AccountKeyPair,
    pub(super) device: DeviceKeyPair,
    pub(super) device_id: DeviceId,
    pub(super) certificate: DeviceCertificate,
}

impl Fixture {
    pub(super) fn new(seed: u64) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let account = AccountKeyPair::generate(&mut rng);
        let device = DeviceKeyPair::generate(&mut rng);
        let device_id = DeviceId::random(&mut rng);
        let certificate = account.certify_device(device_id, &device, 1_700_000_000);
        Self {
            rng,
            account,
            device,
            device_id,
            certificate,
        }
    }
}

pub(super) fn kem_prekey(f: &mut Fixture, id: PrekeyId, kind: KemPrekeyKind) -> KemPrekey {
    KemPrekeySecret::generate(id, kind, &f.device, &mut f.rng)
        .public()
        .clone()
}

/// A valid upload with a signed prekey, a last-resort KEM prekey (id 10 000) and `n` one-time
/// prekeys of each kind (ids 0..n).
pub(super) fn full_upload(f: &mut Fixture, n: usize) -> PrekeyUpload {
    let ids = 0..PrekeyId::try_from(n).unwrap();
    let one_time = ids
        .clone()
        .map(|id| {
            OneTimePrekeySecret::generate(id, &mut f.rng)
                .public()
                .clone()
        })
        .collect();
    let one_time_kem = ids
        .map(|id| kem_prekey(f, id, KemPrekeyKind::OneTime))
        .collect();
    PrekeyUpload {
        signed_prekey: Some(
            SignedPrekeySecret::generate(1, &f.device, &mut f.rng)
                .public()
                .clone(),
        ),
        last_resort_kem_prekey: Some(kem_prekey(f, 10_000, KemPrekeyKind::LastResort)),
        one_time_prekeys: BoundedVec::new(one_time).unwrap(),
        one_time_kem_prekeys: BoundedVec::new(one_time_kem).unwrap(),
    }
}

pub(super) fn bundle(f: &mut Fixture) -> PrekeyBundle {
    let upload = full_upload(f, 1);
    PrekeyBundle::new(
        f.certificate.clone(),
        upload.signed_prekey.unwrap(),
        upload.one_time_prekeys.into_vec().pop(),
        upload.last_resort_kem_prekey.unwrap(),
    )
}

pub(super) fn bytes<const MAX: usize>(len: usize, fill: u8) -> BoundedBytes<MAX> {
    BoundedBytes::new(vec![fill; len]).unwrap()
}

/// One request of every variant, in variant order.
pub(super) fn sample_requests(f: &mut Fixture) -> Vec<Request> {
    let handle = Handle::parse("alice").unwrap();
    let recipients = vec![
        Recipient {
            device_id: f.device_id,
            part: None,
        },
        Recipient {
            device_id: DeviceId::from_bytes([3; 16]),
            part: Some(bytes::<MAX_PART_LEN>(40, 0xAB)),
        },
    ];
    vec![
        Request::Authenticate {
            device_id: f.device_id,
            signature: [5; 64],
        },
        Request::Register(Box::new(Register {
            handle: handle.clone(),
            certificate: f.certificate.clone(),
            prekeys: full_upload(f, 2),
            invite: Some(bytes(12, 1)),
            signature: [6; 64],
        })),
        Request::PublishPrekeys(full_upload(f, 1)),
        Request::Lookup { handle },
        Request::FetchBundles {
            account_key: f.account.public_key(),
            devices: BoundedVec::new(vec![f.device_id]).unwrap(),
        },
        Request::Send(SendRequest {
            client_message_id: [8; 16],
            body: bytes::<MAX_BODY_LEN>(300, 0xCD),
            recipients: BoundedVec::new(recipients).unwrap(),
        }),
        Request::Ack {
            deliveries: BoundedVec::new(vec![1, 300, u64::MAX]).unwrap(),
        },
    ]
}

/// One response of every variant, in variant order.
pub(super) fn sample_responses(f: &mut Fixture) -> Vec<Response> {
    vec![
        Response::Ok,
        Response::Account {
            account_key: f.account.public_key(),
            devices: BoundedVec::new(vec![f.certificate.clone()]).unwrap(),
        },
        Response::Bundles {
            bundles: BoundedVec::new(vec![bundle(f)]).unwrap(),
        },
        Response::Accepted {
            client_message_id: [8; 16],
        },
        Response::Error(ErrorFrame::new(
            ErrorKind::RateLimited {
                retry_after_ms: 2500,
            },
            "send rate",
        )),
    ]
}

/// One server frame of every variant, in variant order (each response as its own frame).
pub(super) fn sample_server_frames(f: &mut Fixture) -> Vec<ServerFrame> {
    let mut frames = vec![ServerFrame::Challenge {
        nonce: [9; 32],
        relay_name: BoundedString::new("relay.example").unwrap(),
    }];
    let responses = sample_responses(f).into_iter().zip(1..);
    frames.extend(
        responses.map(|(response, request_id)| ServerFrame::Response {
            request_id,
            response,
        }),
    );
    frames.push(ServerFrame::Deliver(Delivery {
        delivery_id: 77,
        arrived_at: 1_700_000_123,
        body: bytes(500, 2),
        part: Some(bytes(20, 3)),
    }));
    frames.push(ServerFrame::QueueDrained);
    frames.push(ServerFrame::PrekeyCountLow {
        one_time_prekeys: 4,
        one_time_kem_prekeys: 0,
    });
    frames
}

/// One client frame per request variant.
pub(super) fn sample_client_frames(f: &mut Fixture) -> Vec<ClientFrame> {
    sample_requests(f)
        .into_iter()
        .zip(1..)
        .map(|(request, request_id)| ClientFrame {
            request_id,
            request,
        })
        .collect()
}
