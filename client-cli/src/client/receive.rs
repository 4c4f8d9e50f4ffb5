//! Receiving: open the seal, find or start the session, decrypt, decide who the message is
//! from, drop copies of messages already shown, and store session, history and contact in one
//! durable write — only then is the message shown (after a notice if it reveals that earlier
//! messages from its sender have not arrived) and acknowledged.

use kith_protocol::consts::GROUP_ENVELOPE_VERSION;
use kith_protocol::rand_core::CryptoRng;
use kith_protocol::wire::{Delivery, Handle};
use kith_protocol::{
    Body, Content, DecryptError, PrekeyMessage, Session, SessionMessage, VerifiedCertificate, open,
};
use zeroize::Zeroizing;

use super::account::Account;
use super::contacts;
use super::groups;
use super::history::Conversation;
use super::prekeys::LoadedPrekeys;
use super::records::{ContactRecord, HistoryRecord};
use super::sessions::{self, SessionSet};
use super::{Event, history, now};
use crate::error::Error;
use crate::relay::Link;
use crate::store::{Batch, LocalStore};

/// What decrypting a delivery gave.
enum Decrypted {
    /// The plaintext; `batch` holds the session changes. `missing` counts the earlier messages
    /// from the same device that this one showed have not arrived.
    Plaintext {
        plaintext: Zeroizing<Vec<u8>>,
        missing: usize,
    },
    /// Already received (a redelivery after a lost acknowledgement): nothing to do.
    Duplicate,
    /// Unusable; the reason is for the user.
    Dropped(&'static str),
}

/// Who a message is from, as far as this device can tell.
struct Attribution {
    /// The conversation's contact record (saved with the message).
    contact: ContactRecord,
    /// Whether this account wrote it (a transcript from another own device).
    outgoing: bool,
    /// The author.
    from: Handle,
    /// Whether the contact's account key changed with this message.
    key_changed: bool,
}

/// Decrypts and stores one delivery. Returns the events to show; the caller acknowledges the
/// delivery after this returned `Ok` (everything is durable by then).
pub(super) async fn delivery<R: CryptoRng + ?Sized>(
    store: &LocalStore,
    link: &mut Link,
    account: &Account,
    delivery: &Delivery,
    rng: &mut R,
) -> Result<Vec<Event>, Error> {
    if delivery.body.as_slice().first() == Some(&GROUP_ENVELOPE_VERSION) {
        return groups::on_envelope(store, account, delivery.body.as_slice());
    }
    let Ok(opened) = open(
        &account.device,
        &account.certificate,
        delivery.body.as_slice(),
    ) else {
        return Ok(vec![dropped(
            "an envelope could not be opened (damaged or not for this device)",
        )]);
    };
    let sender = opened.sender;
    let mut set = SessionSet::load(store, &sender)?;
    let mut batch = Batch::new();
    let (plaintext, missing) = match decrypt(
        store,
        account,
        &mut set,
        &sender,
        &opened.message,
        &mut batch,
        rng,
    )? {
        Decrypted::Plaintext { plaintext, missing } => (plaintext, missing),
        Decrypted::Duplicate => return Ok(Vec::new()),
        Decrypted::Dropped(reason) => return Ok(vec![dropped(reason)]),
    };
    set.save(&mut batch)?;
    let Ok(content) = Content::from_bytes(&plaintext) else {
        store.apply(batch)?;
        let author = author_of(store, account, &sender)?;
        return Ok(author
            .and_then(|author| gap(&author, missing))
            .into_iter()
            .chain([dropped(
                "a message in a format this version of Kith does not understand (update Kith)",
            )])
            .collect());
    };
    let control = match &content.body {
        Body::SenderKey(distribution) => Some(groups::on_sender_key(
            store,
            &sender,
            distribution,
            &mut batch,
        )?),
        Body::GroupUpdate(signed) => Some(groups::on_update(
            store, account, &sender, signed, &mut batch,
        )?),
        _ => None,
    };
    if let Some(events) = control {
        store.apply(batch)?;
        let author = author_of(store, account, &sender)?;
        return Ok(author
            .and_then(|author| gap(&author, missing))
            .into_iter()
            .chain(events)
            .collect());
    }
    let Some(attribution) = attribute(store, link, account, &sender, &content).await? else {
        store.apply(batch)?;
        return Ok(vec![dropped(
            "a message whose sender could not be confirmed by the relay's directory",
        )]);
    };
    let Attribution {
        mut contact,
        outgoing,
        from,
        key_changed,
    } = attribution;
    let conversation = Handle::parse(&contact.handle).unwrap_or_else(|_| from.clone());
    let author = sender.account_key();
    if history::already_accepted(store, &conversation, author, &content.message_id)? {
        // A re-encrypted copy of a message already shown: only the session moves on.
        store.apply(batch)?;
        return Ok(Vec::new());
    }
    history::remember_accepted(&mut batch, &conversation, author, &content.message_id);
    let record = HistoryRecord {
        id: content.message_id,
        from: from.as_str().to_owned(),
        outgoing,
        text: content.body.text().to_owned(),
        sent_at: content.sent_at,
        received_at: now(),
    };
    history::append(
        &mut batch,
        Conversation::with_contact(&mut contact),
        &record,
    )?;
    contacts::save(&mut batch, &contact)?;
    store.apply(batch)?;

    let mut events = Vec::with_capacity(3);
    if key_changed {
        events.push(Event::KeyChanged {
            handle: conversation.clone(),
        });
    }
    events.extend(gap(&from, missing));
    events.push(Event::Message(history::message(&conversation, &record)));
    Ok(events)
}

/// Decrypts with an existing session, or accepts a new one from a prekey message.
fn decrypt<R: CryptoRng + ?Sized>(
    store: &LocalStore,
    account: &Account,
    set: &mut SessionSet,
    sender: &VerifiedCertificate,
    message: &SessionMessage,
    batch: &mut Batch,
    rng: &mut R,
) -> Result<Decrypted, Error> {
    if let SessionMessage::Prekey(prekey) = message
        && !set.has_session_for(prekey)
    {
        return accept(store, account, set, sender, prekey, batch, rng);
    }
    Ok(match set.decrypt(sender, message, rng) {
        Ok(opened) => Decrypted::Plaintext {
            plaintext: opened.plaintext,
            missing: opened.missing,
        },
        Err(DecryptError::Duplicate) => Decrypted::Duplicate,
        Err(_) => Decrypted::Dropped(
            "a message that did not decrypt (tampered with, or from a session this device no \
             longer has)",
        ),
    })
}

/// Starts the session a prekey message proposes (responder side).
fn accept<R: CryptoRng + ?Sized>(
    store: &LocalStore,
    account: &Account,
    set: &mut SessionSet,
    sender: &VerifiedCertificate,
    prekey: &PrekeyMessage,
    batch: &mut Batch,
    rng: &mut R,
) -> Result<Decrypted, Error> {
    if sessions::base_key_seen(store, prekey.base_key())? {
        return Ok(Decrypted::Duplicate);
    }
    let Some(prekeys) = LoadedPrekeys::load(store, account, prekey)? else {
        return Ok(Decrypted::Dropped(
            "a first message naming a prekey this device no longer has (the prekey was \
             replaced more than 30 days ago, the message is a replay, or it was sent before \
             this device was restored)",
        ));
    };
    let responder = prekeys.responder();
    match Session::respond(
        &account.device,
        &account.certificate,
        &responder,
        sender,
        prekey,
        rng,
    ) {
        Ok((session, plaintext)) => {
            prekeys.consume(batch);
            sessions::remember_base_key(batch, prekey.base_key());
            // The first message to arrive need not be the first one sent.
            let missing = session.skipped_keys();
            set.make_active(session);
            Ok(Decrypted::Plaintext {
                plaintext: Zeroizing::new(plaintext),
                missing,
            })
        }
        Err(_) => Ok(Decrypted::Dropped(
            "a first message that did not decrypt (tampered with, or not meant for this device)",
        )),
    }
}

/// Decides who wrote `content`, from the sealed certificate's account key (authenticated) and
/// the handle the content claims (checked against the relay's directory). `None` to drop.
async fn attribute(
    store: &LocalStore,
    link: &mut Link,
    account: &Account,
    sender: &VerifiedCertificate,
    content: &Content,
) -> Result<Option<Attribution>, Error> {
    let key = sender.account_key();
    if key == account.account_key() {
        // Another device of this account: only transcripts of sent messages, under this
        // account's own handle, are accepted.
        let Body::SentTranscript { to, .. } = &content.body else {
            return Ok(None);
        };
        if content.sender != account.handle {
            return Ok(None);
        }
        let contact = match contacts::load(store, to)? {
            Some(contact) => contact,
            None => contacts::new_contact(to, &contacts::lookup(link, to).await?),
        };
        return Ok(Some(Attribution {
            contact,
            outgoing: true,
            from: account.handle.clone(),
            key_changed: false,
        }));
    }
    if !matches!(content.body, Body::Text { .. }) {
        return Ok(None);
    }
    if let Some(contact) = contacts::find_by_key(store, key)? {
        // The content must claim the handle this key is pinned to: a peer claiming another
        // name is lying about who it is (SPEC.md §13.3 rule 2), even if the message would be
        // filed under its own name.
        if contact.handle != content.sender.as_str() {
            return Ok(None);
        }
        let key_changed = contact.account_key != *key.as_bytes();
        let from = Handle::parse(&contact.handle).map_err(|_| crate::store::StoreError::Corrupt)?;
        return Ok(Some(Attribution {
            contact,
            outgoing: false,
            from,
            key_changed,
        }));
    }
    // A sender this device has not met: the relay's directory must confirm the claimed handle.
    let claimed = &content.sender;
    let directory = match contacts::lookup(link, claimed).await {
        Ok(directory) => directory,
        Err(Error::UnknownHandle { .. } | Error::BadKeys { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    if directory.account_key != *key {
        return Ok(None);
    }
    let (contact, key_changed) = match contacts::load(store, claimed)? {
        None => (contacts::new_contact(claimed, &directory), false),
        Some(mut contact) => {
            contact.pending_key = Some(*key.as_bytes());
            (contact, true)
        }
    };
    Ok(Some(Attribution {
        contact,
        outgoing: false,
        from: claimed.clone(),
        key_changed,
    }))
}

/// The handle of a sender this device already knows (a contact, or this account), for notices
/// about a control message; `None` for a stranger.
fn author_of(
    store: &LocalStore,
    account: &Account,
    sender: &VerifiedCertificate,
) -> Result<Option<Handle>, Error> {
    let key = sender.account_key();
    if key == account.account_key() {
        return Ok(Some(account.handle.clone()));
    }
    Ok(contacts::find_by_key(store, key)?.and_then(|c| Handle::parse(&c.handle).ok()))
}

/// The notice that `missing` earlier messages from `from` have not arrived, if any are missing.
/// The relay may have lost or withheld them, or they are still on their way; if they come
/// later they are shown then (the session kept their keys).
fn gap(from: &Handle, missing: usize) -> Option<Event> {
    (missing > 0).then(|| Event::Gap {
        handle: from.clone(),
        missing,
    })
}

fn dropped(reason: &str) -> Event {
    Event::Dropped {
        reason: reason.to_owned(),
    }
}
