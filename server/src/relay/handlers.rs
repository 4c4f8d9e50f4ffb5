//! One function per request of an authenticated device (SPEC.md §9.3). Each returns the one
//! [`Response`] to send — or, for `Send` and `Ack`, the wait for the store's flush that must
//! come before it ([`Handled::Durable`]); none logs request contents.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use kith_protocol::consts::MAX_DEVICES_PER_ACCOUNT;
use kith_protocol::wire::{self, ErrorKind, PrekeyUpload, Request, Response, SendRequest};
use kith_protocol::{AccountPublicKey, BoundedBytes, BoundedVec, DeviceId, PrekeyBundle};

use super::auth::Session;
use super::observe::{self, error, store_failure};
use super::{Shared, clock};
use crate::store::{self, Enqueue, IdempotencyKey, Prekeys, Store, StoreError};

/// The metric label of a request.
pub(super) fn request_name(request: &Request) -> &'static str {
    match request {
        Request::Authenticate { .. } => "authenticate",
        Request::Register(_) => "register",
        Request::PublishPrekeys(_) => "publish_prekeys",
        Request::Lookup { .. } => "lookup",
        Request::FetchBundles { .. } => "fetch_bundles",
        Request::Send(_) => "send",
        Request::Ack { .. } => "ack",
    }
}

/// A response that may be given only once the request's write is applied and durable.
pub(super) type Pending = Pin<Box<dyn Future<Output = Response> + Send + 'static>>;

/// The outcome of handling one request.
pub(super) enum Handled {
    /// The response, ready to send.
    Now(Response),
    /// The request's write is queued (ordered after the connection's earlier ones) but not yet
    /// applied and durable: the response once it is.
    Durable(Pending),
}

/// Handles one request of an authenticated device. Its store write (if any) is queued or
/// applied before this returns, so a connection's writes happen in request order even when
/// their completions are awaited together.
pub(super) async fn handle<S: Store>(
    shared: &Arc<Shared<S>>,
    session: &Session,
    request: Request,
) -> Handled {
    observe::count_request(request_name(&request));
    let response = match request {
        Request::Authenticate { .. } | Request::Register(_) => {
            error(ErrorKind::BadRequest, "already authenticated")
        }
        Request::PublishPrekeys(upload) => publish_prekeys(shared, session, upload).await,
        Request::Lookup { handle } => lookup(shared, &handle).await,
        Request::FetchBundles {
            account_key,
            devices,
        } => fetch_bundles(shared, session, &account_key, devices.into_vec()).await,
        Request::Send(send) => return send_message(shared, session, send).await,
        Request::Ack { deliveries } => return ack(shared, session, deliveries.as_slice()).await,
    };
    Handled::Now(response)
}

/// The store's form of a (verified) upload.
pub(super) fn store_prekeys(upload: PrekeyUpload) -> Prekeys {
    Prekeys {
        signed: upload.signed_prekey,
        last_resort_kem: upload.last_resort_kem_prekey,
        one_time: upload.one_time_prekeys.into_vec(),
        one_time_kem: upload.one_time_kem_prekeys.into_vec(),
    }
}

/// `PublishPrekeys`: verified under the device's own certified key before anything is stored.
async fn publish_prekeys<S: Store>(
    shared: &Shared<S>,
    session: &Session,
    upload: PrekeyUpload,
) -> Response {
    if upload.verify(&session.signing_key).is_err() {
        return error(ErrorKind::BadRequest, "prekeys do not verify");
    }
    match shared
        .store
        .publish_prekeys(session.device, store_prekeys(upload))
        .await
    {
        Ok(()) => Response::Ok,
        Err(StoreError::DuplicatePrekey) => error(
            ErrorKind::BadRequest,
            "a one-time prekey id is already stored",
        ),
        Err(StoreError::DeviceNotFound) => error(ErrorKind::NotFound, "device not found"),
        Err(e) => store_failure("publish_prekeys", &e),
    }
}

/// `Lookup`: the account key and device certificates behind a handle.
async fn lookup<S: Store>(shared: &Shared<S>, handle: &wire::Handle) -> Response {
    let account = match shared.store.account_by_handle(handle.as_str()).await {
        Ok(Some(account)) => account,
        Ok(None) => return error(ErrorKind::NotFound, "no such handle"),
        Err(e) => return store_failure("account_by_handle", &e),
    };
    match shared.store.devices_of(&account.account_key).await {
        Ok(records) => {
            let mut certificates: Vec<_> = records.into_iter().map(|r| r.certificate).collect();
            certificates.truncate(MAX_DEVICES_PER_ACCOUNT);
            Response::Account {
                account_key: account.account_key,
                devices: BoundedVec::new(certificates).unwrap_or_default(),
            }
        }
        Err(StoreError::AccountNotFound) => error(ErrorKind::NotFound, "no such handle"),
        Err(e) => store_failure("devices_of", &e),
    }
}

/// `FetchBundles`: one bundle per wanted device of the account (all when `devices` is
/// empty), each taking one-time prekeys; devices running low are told if connected. Limited
/// per requesting device and target account, so that nobody can drain another's one-time
/// prekeys (`limits.rs`).
async fn fetch_bundles<S: Store>(
    shared: &Shared<S>,
    session: &Session,
    account_key: &AccountPublicKey,
    devices: Vec<DeviceId>,
) -> Response {
    if let Err(retry_after_ms) = shared.bundle_limiter.check(session.device, *account_key) {
        return error(
            ErrorKind::RateLimited { retry_after_ms },
            "bundle fetch limit for this account reached",
        );
    }
    let account = match shared.store.account_by_key(account_key).await {
        Ok(Some(account)) => account,
        Ok(None) => return error(ErrorKind::NotFound, "no such account"),
        Err(e) => return store_failure("account_by_key", &e),
    };
    let wanted = wanted_devices(&account.devices, devices);
    let mut bundles = Vec::with_capacity(wanted.len());
    for device in wanted {
        match bundle_for(shared, device).await {
            Ok(Some(bundle)) => bundles.push(bundle),
            Ok(None) => {}
            Err(response) => return response,
        }
        notice_if_low(shared, device).await;
    }
    Response::Bundles {
        bundles: BoundedVec::new(bundles).unwrap_or_default(),
    }
}

/// The requested devices that belong to the account, without repeats, in request order (all
/// of the account's devices when none are named), at most [`MAX_DEVICES_PER_ACCOUNT`].
fn wanted_devices(of_account: &[DeviceId], requested: Vec<DeviceId>) -> Vec<DeviceId> {
    let candidates = if requested.is_empty() {
        of_account.to_vec()
    } else {
        requested
    };
    let mut seen = HashSet::new();
    candidates
        .into_iter()
        .filter(|d| of_account.contains(d) && seen.insert(*d))
        .take(MAX_DEVICES_PER_ACCOUNT)
        .collect()
}

/// One device's bundle; `None` when the device vanished or has no prekeys to offer.
async fn bundle_for<S: Store>(
    shared: &Shared<S>,
    device: DeviceId,
) -> Result<Option<PrekeyBundle>, Response> {
    let record = match shared.store.device(device).await {
        Ok(Some(record)) => record,
        Ok(None) => return Ok(None),
        Err(e) => return Err(store_failure("device", &e)),
    };
    match shared.store.take_bundle_material(device).await {
        Ok(material) => Ok(Some(PrekeyBundle::new(
            record.certificate,
            material.signed,
            material.one_time,
            material.kem,
        ))),
        Err(StoreError::DeviceNotFound | StoreError::PrekeysMissing) => Ok(None),
        Err(e) => Err(store_failure("take_bundle_material", &e)),
    }
}

/// Wakes `device`'s connection to send `PrekeyCountLow` if either kind of one-time prekey
/// is below the watermark.
async fn notice_if_low<S: Store>(shared: &Shared<S>, device: DeviceId) {
    if !shared.registry.is_connected(&device) {
        return;
    }
    if let Ok(counts) = shared.store.prekey_counts(device).await {
        let low = shared.settings.prekey_low_watermark;
        if counts.one_time < low || counts.one_time_kem < low {
            shared.registry.wake_prekeys(&device);
        }
    }
}

/// `Send`: rate-limited per sending device, stored durably once for all recipients, then the
/// connected recipients are woken and the sender told "accepted" — both only once the store
/// has flushed it.
async fn send_message<S: Store>(
    shared: &Arc<Shared<S>>,
    session: &Session,
    send: SendRequest,
) -> Handled {
    if let Err(retry_after_ms) = shared.limiter.check(&session.device) {
        return Handled::Now(error(
            ErrorKind::RateLimited { retry_after_ms },
            "send rate limit reached",
        ));
    }
    let SendRequest {
        client_message_id,
        body,
        recipients,
    } = send;
    let recipients = recipients.into_vec();
    if recipients.is_empty() {
        return Handled::Now(error(ErrorKind::BadRequest, "a send needs recipients"));
    }
    if has_repeats(recipients.iter().map(|r| r.device_id)) {
        return Handled::Now(error(
            ErrorKind::BadRequest,
            "a recipient device is repeated",
        ));
    }
    let devices: Vec<DeviceId> = recipients.iter().map(|r| r.device_id).collect();
    let enqueue = enqueue_of(shared, &client_message_id, body, recipients);
    let staged = match shared.store.enqueue_staged(enqueue).await {
        Ok(staged) => staged,
        Err(e) => return Handled::Now(enqueue_failure(&e)),
    };
    let shared = Arc::clone(shared);
    Handled::Durable(Box::pin(async move {
        let receipt = match staged.await {
            Ok(receipt) => receipt,
            Err(e) => return enqueue_failure(&e),
        };
        if !receipt.duplicate {
            observe::count_accepted();
            for device in &devices {
                shared.registry.wake_queue(device);
            }
        }
        Response::Accepted { client_message_id }
    }))
}

/// The response to a send the store refused.
fn enqueue_failure(e: &StoreError) -> Response {
    match e {
        StoreError::MailboxFull => error(ErrorKind::MailboxFull, "a recipient's mailbox is full"),
        StoreError::DeviceNotFound => error(ErrorKind::NotFound, "unknown recipient device"),
        e => store_failure("enqueue", e),
    }
}

/// The store's form of a send, timed now. The idempotency key is the client message id
/// alone (SPEC.md §9.3): the store learns nothing about the sender.
fn enqueue_of<S>(
    shared: &Shared<S>,
    client_message_id: &[u8; 16],
    body: BoundedBytes<{ kith_protocol::consts::MAX_BODY_LEN }>,
    recipients: Vec<wire::Recipient>,
) -> Enqueue {
    let settings = &shared.settings;
    let now = clock::now();
    let expires_at = clock::after(now, settings.envelope_ttl);
    Enqueue {
        idempotency_key: IdempotencyKey::of_message(client_message_id),
        body: body.into_vec(),
        recipients: recipients
            .into_iter()
            .map(|r| store::Recipient {
                device: r.device_id,
                part: r.part.map(BoundedBytes::into_vec),
            })
            .collect(),
        arrived_at: now,
        expires_at,
        idempotent_until: clock::after(now, settings.idempotency_window).min(expires_at),
        limits: settings.mailbox_limits,
    }
}

/// Whether any device id occurs twice.
fn has_repeats(devices: impl Iterator<Item = DeviceId>) -> bool {
    let mut seen = HashSet::new();
    !devices.into_iter().all(|d| seen.insert(d))
}

/// `Ack`: deletes those entries of this device's own mailbox; answered once durable.
async fn ack<S: Store>(
    shared: &Shared<S>,
    session: &Session,
    deliveries: &[wire::DeliveryId],
) -> Handled {
    match shared.store.ack_staged(session.device, deliveries).await {
        Ok(staged) => Handled::Durable(Box::pin(async move {
            match staged.await {
                Ok(_) => Response::Ok,
                Err(e) => store_failure("ack", &e),
            }
        })),
        Err(e) => Handled::Now(store_failure("ack", &e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(n: u8) -> DeviceId {
        DeviceId::from_bytes([n; 16])
    }

    #[test]
    fn repeated_recipients_are_detected() {
        assert!(!has_repeats([device(1), device(2), device(3)].into_iter()));
        assert!(has_repeats([device(1), device(2), device(1)].into_iter()));
        assert!(!has_repeats(std::iter::empty()));
    }

    #[test]
    fn wanted_devices_filters_and_dedups() {
        let account = [device(1), device(2), device(3)];
        assert_eq!(wanted_devices(&account, vec![]), account.to_vec());
        assert_eq!(
            wanted_devices(&account, vec![device(3), device(9), device(3), device(1)]),
            vec![device(3), device(1)]
        );
    }
}
