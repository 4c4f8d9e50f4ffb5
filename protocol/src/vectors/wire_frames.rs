//! The fixed values and frames of `wire.json`: every client request and server frame variant.

use serde::{Deserialize, Serialize};

use super::fixtures::Party;
use super::{draw, hex, seeded, unhex};
use crate::encoding::{BoundedBytes, BoundedString, BoundedVec};
use crate::keys::{
    AccountPublicKey, DeviceId, KemPrekeyKind, KemPrekeySecret, OneTimePrekeySecret, PrekeyBundle,
    SignedPrekeySecret,
};
use crate::wire::{
    ClientFrame, Delivery, ErrorFrame, ErrorKind, Handle, PrekeyUpload, Recipient, Register,
    Request, Response, SendRequest, ServerFrame,
};

const SEED: u64 = 6;

/// Secrets of the prekeys the frames carry.
#[derive(Serialize, Deserialize)]
pub(super) struct UploadSecrets {
    pub(super) signed_prekey_secret: String,
    pub(super) last_resort_kem_seed: String,
    pub(super) one_time_prekey_secrets: [String; 2],
    pub(super) one_time_kem_seed: String,
}

pub(super) const RELAY_NAME: &str = "relay.example";

/// Every fixed value the frames are built from.
pub(super) struct Inputs {
    pub(super) party: Party,
    pub(super) upload: UploadSecrets,
    pub(super) nonce: [u8; 32],
    pub(super) binding: [u8; 32],
    pub(super) other_account: [u8; 32],
    pub(super) other_device: [u8; 16],
    pub(super) client_message_id: [u8; 16],
    pub(super) body: [u8; 64],
    pub(super) part: [u8; 24],
}

pub(super) fn inputs() -> Inputs {
    let mut rng = seeded(SEED);
    let party = Party::draw(&mut rng);
    let upload = UploadSecrets {
        signed_prekey_secret: hex(draw::<32>(&mut rng)),
        last_resort_kem_seed: hex(draw::<64>(&mut rng)),
        one_time_prekey_secrets: [hex(draw::<32>(&mut rng)), hex(draw::<32>(&mut rng))],
        one_time_kem_seed: hex(draw::<64>(&mut rng)),
    };
    Inputs {
        party,
        upload,
        nonce: draw(&mut rng),
        binding: draw(&mut rng),
        other_account: draw(&mut rng),
        other_device: draw(&mut rng),
        client_message_id: draw(&mut rng),
        body: draw(&mut rng),
        part: draw(&mut rng),
    }
}

/// The uploads: (registration upload, later one-time upload, a bundle of those prekeys).
fn prekeys(inputs: &Inputs) -> (PrekeyUpload, PrekeyUpload, PrekeyBundle) {
    let device = &inputs.party.device;
    let secrets = &inputs.upload;
    let signed =
        SignedPrekeySecret::from_secret_bytes(1, device, &unhex(&secrets.signed_prekey_secret));
    let last_resort = KemPrekeySecret::from_secret_bytes(
        1000,
        KemPrekeyKind::LastResort,
        device,
        &unhex(&secrets.last_resort_kem_seed),
    );
    let one_time: Vec<_> = [100, 101]
        .into_iter()
        .zip(&secrets.one_time_prekey_secrets)
        .map(|(id, secret)| {
            OneTimePrekeySecret::from_secret_bytes(id, &unhex(secret))
                .public()
                .clone()
        })
        .collect();
    let one_time_kem = KemPrekeySecret::from_secret_bytes(
        200,
        KemPrekeyKind::OneTime,
        device,
        &unhex(&secrets.one_time_kem_seed),
    );
    let registration = PrekeyUpload {
        signed_prekey: Some(signed.public().clone()),
        last_resort_kem_prekey: Some(last_resort.public().clone()),
        ..PrekeyUpload::default()
    };
    let bundle = PrekeyBundle::new(
        inputs.party.certificate.certificate().clone(),
        signed.public().clone(),
        Some(one_time[0].clone()),
        last_resort.public().clone(),
    );
    let later = PrekeyUpload {
        one_time_prekeys: BoundedVec::new(one_time).expect("2 ≤ 100"),
        one_time_kem_prekeys: BoundedVec::new(vec![one_time_kem.public().clone()])
            .expect("1 ≤ 100"),
        ..PrekeyUpload::default()
    };
    (registration, later, bundle)
}

pub(super) fn client_frames(
    inputs: &Inputs,
    signature: [u8; 64],
) -> Vec<(&'static str, ClientFrame)> {
    let certificate = inputs.party.certificate.certificate();
    let device_id = certificate.claimed_device_id();
    let (registration, later, _) = prekeys(inputs);
    let requests = vec![
        (
            "Authenticate",
            Request::Authenticate {
                device_id,
                signature,
            },
        ),
        (
            "Register",
            Request::Register(Box::new(Register {
                handle: Handle::parse("Alice.K").expect("valid handle"),
                certificate: certificate.clone(),
                prekeys: registration,
                invite: BoundedBytes::new(b"invite-2f9c".to_vec()),
                signature,
            })),
        ),
        ("PublishPrekeys", Request::PublishPrekeys(later)),
        (
            "Lookup",
            Request::Lookup {
                handle: Handle::parse("peer_worker-01").expect("valid"),
            },
        ),
        (
            "FetchBundles",
            Request::FetchBundles {
                account_key: AccountPublicKey::from_bytes(inputs.other_account),
                devices: BoundedVec::new(vec![DeviceId::from_bytes(inputs.other_device)])
                    .expect("1"),
            },
        ),
        (
            "Send",
            Request::Send(SendRequest {
                client_message_id: inputs.client_message_id,
                body: BoundedBytes::new(inputs.body.to_vec()).expect("small"),
                recipients: BoundedVec::new(vec![
                    Recipient {
                        device_id: DeviceId::from_bytes(inputs.other_device),
                        part: None,
                    },
                    Recipient {
                        device_id,
                        part: BoundedBytes::new(inputs.part.to_vec()),
                    },
                ])
                .expect("2 recipients"),
            }),
        ),
        (
            "Ack",
            Request::Ack {
                deliveries: BoundedVec::new(vec![1, 300, 1 << 40]).expect("3"),
            },
        ),
    ];
    requests
        .into_iter()
        .zip(1..)
        .map(|((name, request), request_id)| {
            (
                name,
                ClientFrame {
                    request_id,
                    request,
                },
            )
        })
        .collect()
}

pub(super) fn server_frames(inputs: &Inputs) -> Vec<(&'static str, ServerFrame)> {
    let certificate = inputs.party.certificate.certificate().clone();
    let (_, _, bundle) = prekeys(inputs);
    let response = |request_id, response| ServerFrame::Response {
        request_id,
        response,
    };
    vec![
        (
            "Challenge",
            ServerFrame::Challenge {
                nonce: inputs.nonce,
                relay_name: BoundedString::new(RELAY_NAME).expect("short"),
            },
        ),
        ("Response/Ok", response(1, Response::Ok)),
        (
            "Response/Account",
            response(
                4,
                Response::Account {
                    account_key: *certificate.claimed_account_key(),
                    devices: BoundedVec::new(vec![certificate]).expect("1"),
                },
            ),
        ),
        (
            "Response/Bundles",
            response(
                5,
                Response::Bundles {
                    bundles: BoundedVec::new(vec![bundle]).expect("1"),
                },
            ),
        ),
        (
            "Response/Accepted",
            response(
                6,
                Response::Accepted {
                    client_message_id: inputs.client_message_id,
                },
            ),
        ),
        (
            "Response/Error",
            response(
                7,
                Response::Error(ErrorFrame::new(
                    ErrorKind::RateLimited {
                        retry_after_ms: 1500,
                    },
                    "send rate",
                )),
            ),
        ),
        (
            "Deliver",
            ServerFrame::Deliver(Delivery {
                delivery_id: 300,
                arrived_at: 1_700_000_123,
                body: BoundedBytes::new(inputs.body.to_vec()).expect("small"),
                part: BoundedBytes::new(inputs.part.to_vec()),
            }),
        ),
        ("QueueDrained", ServerFrame::QueueDrained),
        (
            "PrekeyCountLow",
            ServerFrame::PrekeyCountLow {
                one_time_prekeys: 3,
                one_time_kem_prekeys: 0,
            },
        ),
    ]
}

pub(super) const ERROR_KINDS: [(&str, ErrorKind); 10] = [
    ("BadRequest", ErrorKind::BadRequest),
    ("Unauthorized", ErrorKind::Unauthorized),
    ("NotFound", ErrorKind::NotFound),
    ("MailboxFull", ErrorKind::MailboxFull),
    (
        "RateLimited",
        ErrorKind::RateLimited {
            retry_after_ms: 1500,
        },
    ),
    ("TooLarge", ErrorKind::TooLarge),
    ("VersionUnsupported", ErrorKind::VersionUnsupported),
    ("HandleTaken", ErrorKind::HandleTaken),
    ("InviteInvalid", ErrorKind::InviteInvalid),
    ("Internal", ErrorKind::Internal),
];
