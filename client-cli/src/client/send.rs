//! Sending: look the contact up, check the pinned key, start sessions from verified bundles,
//! encrypt and seal once per device, persist the sessions, then hand the envelopes to the relay.

use kith_protocol::consts::MAX_TEXT_LEN;
use kith_protocol::rand_core::CryptoRng;
use kith_protocol::wire::{Handle, Recipient, Request, Response, SendRequest};
use kith_protocol::{
    AccountPublicKey, Body, BoundedBytes, BoundedString, BoundedVec, Content, DeviceId, Session,
    seal,
};
use zeroize::Zeroizing;

use super::account::Account;
use super::contacts::{self, Directory};
use super::history::Conversation;
use super::records::HistoryRecord;
use super::sessions::SessionSet;
use super::{Sent, history, now};
use crate::error::Error;
use crate::relay::Link;
use crate::store::{Batch, LocalStore};

/// One envelope ready for the relay.
pub(super) struct Envelope {
    device: DeviceId,
    sealed: Vec<u8>,
}

/// Sends `text` to every device of `to` and a transcript to this account's other devices.
pub(super) async fn send_text<R: CryptoRng + ?Sized>(
    store: &LocalStore,
    link: &mut Link,
    account: &Account,
    to: &Handle,
    text: &str,
    rng: &mut R,
) -> Result<Sent, Error> {
    if *to == account.handle {
        return Err(Error::SelfSend);
    }
    let text = checked_text(text)?;
    let directory = contacts::lookup(link, to).await?;
    let mut contact = contacts::pin(store, to, &directory)?;
    if directory.devices.is_empty() {
        return Err(Error::NoDevices { handle: to.clone() });
    }
    let own = own_other_devices(link, account).await?;

    let mut message_id = [0u8; 16];
    rng.fill_bytes(&mut message_id);
    let sent_at = now();
    let to_them = Content {
        message_id,
        sent_at,
        sender: account.handle.clone(),
        body: Body::Text { text: text.clone() },
    };
    let to_us = Content {
        body: Body::SentTranscript {
            to: to.clone(),
            text: text.clone(),
        },
        ..to_them.clone()
    };

    let mut batch = Batch::new();
    let mut envelopes = encrypt_for(
        store,
        link,
        account,
        (to, &directory),
        &to_them.to_bytes(),
        &mut batch,
        rng,
    )
    .await?;
    if envelopes.is_empty() {
        return Err(Error::NoDevices { handle: to.clone() });
    }
    if let Some(own) = &own {
        let own = (&account.handle, own);
        let mine = encrypt_for(
            store,
            link,
            account,
            own,
            &to_us.to_bytes(),
            &mut batch,
            rng,
        )
        .await?;
        envelopes.extend(mine);
    }
    // The sessions are durable before any envelope leaves: a crash now can lose this message,
    // but can never make the next one reuse a message key.
    store.apply(batch)?;

    for envelope in &envelopes {
        deliver(link, &envelope.sealed, &[envelope.device], rng).await?;
    }

    let record = HistoryRecord {
        id: message_id,
        from: account.handle.as_str().to_owned(),
        outgoing: true,
        text: text.as_str().to_owned(),
        sent_at,
        received_at: now(),
    };
    let mut batch = Batch::new();
    history::append(
        &mut batch,
        Conversation::with_contact(&mut contact),
        &record,
    )?;
    contacts::save(&mut batch, &contact)?;
    store.apply(batch)?;
    Ok(Sent {
        id: hex::encode(message_id),
        to: to.clone(),
        envelopes: envelopes.len(),
        sent_at,
    })
}

/// A message text within the limit and not blank.
pub(super) fn checked_text(text: &str) -> Result<BoundedString<MAX_TEXT_LEN>, Error> {
    let text = BoundedString::<MAX_TEXT_LEN>::new(text).ok_or(Error::TooLong {
        len: text.len(),
        max: MAX_TEXT_LEN,
    })?;
    if text.as_str().trim().is_empty() {
        return Err(Error::EmptyMessage);
    }
    Ok(text)
}

/// This account's devices other than this one, or `None` when there are none (or the relay's
/// answer for our own handle is not our own account key).
pub(super) async fn own_other_devices(
    link: &mut Link,
    account: &Account,
) -> Result<Option<Directory>, Error> {
    let mut own = contacts::lookup(link, &account.handle).await?;
    if own.account_key != *account.account_key() {
        return Ok(None);
    }
    own.devices.retain(|c| c.device_id() != account.device_id());
    Ok((!own.devices.is_empty()).then_some(own))
}

/// Encrypts `plaintext` for every device in `directory`, starting sessions where needed, and
/// adds the updated sessions to `batch`.
pub(super) async fn encrypt_for<R: CryptoRng + ?Sized>(
    store: &LocalStore,
    link: &mut Link,
    account: &Account,
    (handle, directory): (&Handle, &Directory),
    plaintext: &Zeroizing<Vec<u8>>,
    batch: &mut Batch,
    rng: &mut R,
) -> Result<Vec<Envelope>, Error> {
    let mut sets = Vec::with_capacity(directory.devices.len());
    let mut missing = Vec::new();
    for certificate in &directory.devices {
        let mut set = SessionSet::load(store, certificate)?;
        if set.active_mut(certificate).is_none() {
            missing.push(certificate.device_id());
        }
        sets.push((certificate, set));
    }
    if !missing.is_empty() {
        let started = start_sessions(
            link,
            account,
            (handle, &directory.account_key),
            missing,
            rng,
        )
        .await?;
        for session in started {
            let device = session.remote().device_id();
            if let Some((_, set)) = sets.iter_mut().find(|(c, _)| c.device_id() == device) {
                set.make_active(session);
            }
        }
    }
    let mut envelopes = Vec::with_capacity(sets.len());
    for (certificate, mut set) in sets {
        // A device the relay had no bundle for gets nothing (it can register prekeys later).
        let Some(session) = set.active_mut(certificate) else {
            continue;
        };
        let message = session
            .encrypt(plaintext)
            .map_err(|_| Error::SessionBroken)?;
        let sealed = seal(&account.certificate, certificate, &message, rng)
            .map_err(|_| Error::SessionBroken)?;
        set.save(batch)?;
        envelopes.push(Envelope {
            device: certificate.device_id(),
            sealed,
        });
    }
    Ok(envelopes)
}

/// Fetches bundles for `devices` of `account_key`, verifies them and starts a session with each.
async fn start_sessions<R: CryptoRng + ?Sized>(
    link: &mut Link,
    account: &Account,
    (handle, account_key): (&Handle, &AccountPublicKey),
    devices: Vec<DeviceId>,
    rng: &mut R,
) -> Result<Vec<Session>, Error> {
    let bad_keys = || Error::BadKeys {
        handle: handle.clone(),
    };
    let devices = BoundedVec::new(devices).ok_or_else(bad_keys)?;
    let request = Request::FetchBundles {
        account_key: *account_key,
        devices,
    };
    let bundles = match link.request(request).await? {
        Response::Bundles { bundles } => bundles.into_vec(),
        _ => {
            return Err(Error::UnexpectedResponse {
                what: "prekey bundles",
            });
        }
    };
    bundles
        .iter()
        .map(|bundle| {
            let verified = bundle.verify(account_key).map_err(|_| bad_keys())?;
            Session::initiate(&account.device, &account.certificate, &verified, rng)
                .map_err(|_| bad_keys())
        })
        .collect()
}

/// Hands one body for `devices` to the relay and waits for "accepted".
pub(super) async fn deliver<R: CryptoRng + ?Sized>(
    link: &mut Link,
    body: &[u8],
    devices: &[DeviceId],
    rng: &mut R,
) -> Result<(), Error> {
    let mut client_message_id = [0u8; 16];
    rng.fill_bytes(&mut client_message_id);
    let recipients = devices
        .iter()
        .map(|&device_id| Recipient {
            device_id,
            part: None,
        })
        .collect();
    let request = Request::Send(SendRequest {
        client_message_id,
        body: BoundedBytes::new(body.to_vec()).ok_or(Error::TooLong {
            len: body.len(),
            max: kith_protocol::consts::MAX_BODY_LEN,
        })?,
        recipients: BoundedVec::new(recipients).ok_or(Error::TooManyRecipients {
            count: devices.len(),
            max: kith_protocol::consts::MAX_RECIPIENTS,
        })?,
    });
    match link.request(request).await? {
        Response::Accepted {
            client_message_id: echoed,
        } if echoed == client_message_id => Ok(()),
        _ => Err(Error::UnexpectedResponse {
            what: "\"accepted\"",
        }),
    }
}

/// Sends `content` over the 1:1 sessions to every device in `directory` (used for circle
/// states and sender keys). Returns the number of envelopes the relay accepted.
pub(super) async fn send_content<R: CryptoRng + ?Sized>(
    store: &LocalStore,
    link: &mut Link,
    account: &Account,
    recipient: (&Handle, &Directory),
    content: &Content,
    rng: &mut R,
) -> Result<usize, Error> {
    let mut batch = Batch::new();
    let envelopes = encrypt_for(
        store,
        link,
        account,
        recipient,
        &content.to_bytes(),
        &mut batch,
        rng,
    )
    .await?;
    store.apply(batch)?;
    for envelope in &envelopes {
        deliver(link, &envelope.sealed, &[envelope.device], rng).await?;
    }
    Ok(envelopes.len())
}
