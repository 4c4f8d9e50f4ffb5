//! The authentication phase (SPEC.md §9.2): one fresh challenge per connection, answered by
//! `Authenticate` (an existing device) or `Register` (a new device), signed over the
//! transcript bound to the relay's name, the nonce and, with TLS, the channel.
//!
//! Anything else — another request, a bad signature, an unknown device, a malformed frame or
//! no answer before the deadline — gets an error response and the connection is closed. The
//! challenge is never reused: a failed attempt ends the connection.

use kith_protocol::consts::MAX_RELAY_NAME_LEN;
use kith_protocol::wire::{
    ClientFrame, ErrorKind, Register, Request, Response, ServerFrame, verify_auth,
};
use kith_protocol::{BoundedString, DeviceId, DeviceSigningPublicKey, VerifiedCertificate};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, timeout_at};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::sync::CancellationToken;

use super::connection::{Connection, Incoming};
use super::observe::{self, error, kind, store_failure};
use super::{Registration, Shared, clock, handlers};
use crate::store::{InviteTokenHash, NewAccount, Store, StoreError};

/// The one answer to every failed `Authenticate`: it does not say which check failed.
const NOT_AUTHENTICATED: &str = "unknown device or bad signature";

/// An authenticated connection's device.
#[derive(Debug, Clone, Copy)]
pub(super) struct Session {
    /// The device.
    pub(super) device: DeviceId,
    /// Its certified signing key (checks its prekey uploads).
    pub(super) signing_key: DeviceSigningPublicKey,
}

/// What the transcript binds besides the device id.
#[derive(Debug, Clone, Copy)]
struct Challenge<'a> {
    nonce: [u8; 32],
    binding: Option<&'a [u8; 32]>,
}

/// Sends the challenge and handles the answer; `None` means the connection is done (it has
/// been answered and closed as far as possible).
pub(super) async fn authenticate<S: Store, T: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Connection<S, T>,
    binding: Option<&[u8; 32]>,
    deadline: Instant,
    shutdown: &CancellationToken,
) -> Option<Session> {
    let challenge = Challenge {
        nonce: fresh_nonce()?,
        binding,
    };
    let relay_name =
        BoundedString::<MAX_RELAY_NAME_LEN>::new(conn.shared.settings.relay_name.as_str())?;
    conn.send(&ServerFrame::Challenge {
        nonce: challenge.nonce,
        relay_name,
    })
    .await
    .ok()?;
    let incoming = tokio::select! {
        () = shutdown.cancelled() => {
            conn.close(CloseCode::Away, "relay shutting down").await;
            return None;
        }
        incoming = timeout_at(deadline, conn.next_request()) => incoming,
    };
    match incoming {
        Err(_) => {
            observe::count_error(kind::AUTH_TIMEOUT);
            tracing::debug!("authentication timed out");
            conn.reject(
                ErrorKind::Unauthorized,
                "authentication timed out",
                CloseCode::Policy,
            )
            .await;
            None
        }
        Ok(Incoming::Frame(frame)) => answer(conn, *frame, challenge).await,
        Ok(Incoming::Malformed(kind, detail, code)) => {
            conn.reject(kind, detail, code).await;
            None
        }
        Ok(Incoming::Control | Incoming::PeerClosed | Incoming::Ended) => None,
    }
}

/// Handles the first request: `Ok` and a session, or an error response and a close.
async fn answer<S: Store, T: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Connection<S, T>,
    frame: ClientFrame,
    challenge: Challenge<'_>,
) -> Option<Session> {
    let ClientFrame {
        request_id,
        request,
    } = frame;
    observe::count_request(handlers::request_name(&request));
    let shared = &*conn.shared;
    let result = match request {
        Request::Authenticate {
            device_id,
            signature,
        } => authenticate_device(shared, challenge, device_id, &signature).await,
        Request::Register(register) => register_device(shared, challenge, *register).await,
        _ => Err(error(ErrorKind::Unauthorized, "authenticate first")),
    };
    match result {
        Ok(session) => {
            conn.respond(request_id, Response::Ok).await.ok()?;
            tracing::debug!("device authenticated");
            Some(session)
        }
        Err(response) => {
            let _ = conn.respond(request_id, response).await;
            conn.close(CloseCode::Policy, "authentication failed").await;
            None
        }
    }
}

/// 32 bytes from the operating system's CSPRNG.
fn fresh_nonce() -> Option<[u8; 32]> {
    let mut nonce = [0u8; 32];
    match getrandom::fill(&mut nonce) {
        Ok(()) => Some(nonce),
        Err(e) => {
            observe::count_error(observe::kind_name(ErrorKind::Internal));
            tracing::error!(error = %e, "random number generator failed");
            None
        }
    }
}

/// Checks the device's signature over the transcript under its certified signing key.
fn check_signature<S>(
    shared: &Shared<S>,
    challenge: Challenge<'_>,
    certificate: &VerifiedCertificate,
    signature: &[u8; 64],
) -> Result<(), Response> {
    let ok = verify_auth(
        certificate.signing_key(),
        &shared.settings.relay_name,
        &challenge.nonce,
        challenge.binding,
        &certificate.device_id(),
        signature,
    );
    if ok {
        Ok(())
    } else {
        Err(error(ErrorKind::Unauthorized, NOT_AUTHENTICATED))
    }
}

/// `Authenticate`: a known device whose certified key signed the transcript.
async fn authenticate_device<S: Store>(
    shared: &Shared<S>,
    challenge: Challenge<'_>,
    device_id: DeviceId,
    signature: &[u8; 64],
) -> Result<Session, Response> {
    let record = shared
        .store
        .device(device_id)
        .await
        .map_err(|e| store_failure("device", &e))?
        .ok_or_else(|| error(ErrorKind::Unauthorized, NOT_AUTHENTICATED))?;
    let certificate = record
        .certificate
        .verify()
        .ok()
        .filter(|c| c.device_id() == device_id)
        .ok_or_else(|| error(ErrorKind::Unauthorized, NOT_AUTHENTICATED))?;
    check_signature(shared, challenge, &certificate, signature)?;
    Ok(Session {
        device: device_id,
        signing_key: *certificate.signing_key(),
    })
}

/// `Register`: checks everything, then creates the account or adds the device, then stores
/// the prekeys.
async fn register_device<S: Store>(
    shared: &Shared<S>,
    challenge: Challenge<'_>,
    register: Register,
) -> Result<Session, Response> {
    let Register {
        handle,
        certificate,
        prekeys,
        invite,
        signature,
    } = register;
    let certificate = certificate
        .verify()
        .map_err(|_| error(ErrorKind::Unauthorized, "certificate does not verify"))?;
    check_signature(shared, challenge, &certificate, &signature)?;
    if prekeys.verify(certificate.signing_key()).is_err() {
        return Err(error(ErrorKind::BadRequest, "prekeys do not verify"));
    }
    if !prekeys.is_complete_for_registration() {
        return Err(error(
            ErrorKind::BadRequest,
            "registration needs a signed prekey and a last-resort KEM prekey",
        ));
    }
    let invite = invite.map(|token| InviteTokenHash::of(token.as_slice()));
    join_account(shared, handle.as_str(), &certificate, invite).await?;
    let device = certificate.device_id();
    shared
        .store
        .publish_prekeys(device, handlers::store_prekeys(prekeys))
        .await
        .map_err(|e| store_failure("publish_prekeys", &e))?;
    tracing::debug!("device registered");
    Ok(Session {
        device,
        signing_key: *certificate.signing_key(),
    })
}

/// Creates the account (new handle) or adds the device (same account key); another key's
/// handle is `HandleTaken`.
async fn join_account<S: Store>(
    shared: &Shared<S>,
    handle: &str,
    certificate: &VerifiedCertificate,
    invite: Option<InviteTokenHash>,
) -> Result<(), Response> {
    let now = clock::now();
    let existing = shared
        .store
        .account_by_handle(handle)
        .await
        .map_err(|e| store_failure("account_by_handle", &e))?;
    let result = match existing {
        Some(account) if account.account_key == *certificate.account_key() => {
            shared.store.add_device(certificate, now).await.map(drop)
        }
        Some(_) => return Err(error(ErrorKind::HandleTaken, "handle taken")),
        None => {
            let invite = match shared.settings.registration {
                Registration::Open => None,
                Registration::Invite => Some(
                    invite
                        .ok_or_else(|| error(ErrorKind::InviteInvalid, "an invite is required"))?,
                ),
            };
            let new = NewAccount {
                handle: handle.to_owned(),
                certificate: certificate.clone(),
                invite,
                now,
            };
            shared.store.create_account(new).await.map(drop)
        }
    };
    result.map_err(|e| registration_error(&e))
}

/// The response to a failed account creation or device addition.
fn registration_error(e: &StoreError) -> Response {
    match e {
        StoreError::InviteInvalid => error(ErrorKind::InviteInvalid, "invite invalid"),
        StoreError::HandleTaken => error(ErrorKind::HandleTaken, "handle taken"),
        StoreError::AccountExists => error(
            ErrorKind::BadRequest,
            "account key is registered under another handle",
        ),
        StoreError::DeviceExists => error(
            ErrorKind::BadRequest,
            "device is registered already: authenticate instead",
        ),
        StoreError::TooManyDevices => error(ErrorKind::BadRequest, "too many devices"),
        other => store_failure("register", other),
    }
}
