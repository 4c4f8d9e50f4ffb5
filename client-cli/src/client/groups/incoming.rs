//! What a member receives: circle states and sender keys (inside 1:1 sessions), and circle
//! envelopes (one shared body per message), with the checks of SPEC.md §14.8.

use kith_protocol::{
    Body, Content, GroupDecryptError, GroupMessage, GroupState, GroupStateError, PeerSenderKey,
    SenderKeyDistribution, SignedGroupState, VerifiedCertificate, VerifiedGroupState, open_group,
};

use super::super::account::Account;
use super::super::records::HistoryRecord;
use super::super::{Event, Message, now};
use super::circle::{Circle, load_peer_key, save_peer_key};
use super::outgoing::append;
use crate::error::Error;
use crate::store::{Batch, LocalStore};

/// Keeps a member device's sender key, if the sender is a member of the circle (or the key is
/// for an epoch this device has not reached yet; it is checked again when a message uses it).
pub(in super::super) fn on_sender_key(
    store: &LocalStore,
    sender: &VerifiedCertificate,
    distribution: &SenderKeyDistribution,
    batch: &mut Batch,
) -> Result<Vec<Event>, Error> {
    let Some(circle) = Circle::load(store, &distribution.group_id())? else {
        return Ok(vec![dropped(
            "a circle key for a circle this device is not in",
        )]);
    };
    let state = circle.state.state();
    let member = state.member(sender.account_key()).is_some();
    if circle.record.left || !(member || distribution.epoch() > state.epoch()) {
        return Ok(vec![dropped(
            "a circle key from someone who is not in the circle",
        )]);
    }
    let key =
        PeerSenderKey::from_distribution(distribution, *sender.account_key(), sender.device_id());
    save_peer_key(batch, &key);
    Ok(Vec::new())
}

/// Applies a circle state received from `sender`: the next state of a known circle (checked
/// against the current one), or an invitation to a new one.
pub(in super::super) fn on_update(
    store: &LocalStore,
    account: &Account,
    sender: &VerifiedCertificate,
    signed: &SignedGroupState,
    batch: &mut Batch,
) -> Result<Vec<Event>, Error> {
    let id = signed.state().group_id();
    let me = account.account_key();
    let known = Circle::load(store, &id)?.filter(|c| !c.record.left);
    let (mut circle, description) = match known {
        Some(mut circle) => match circle.state.verify_successor(signed) {
            Ok(next) => {
                let description = describe(circle.state.state(), next.state());
                circle.advance(next);
                (circle, description)
            }
            // A state this device already has (delivered twice): nothing to do.
            Err(GroupStateError::Replay { .. }) => return Ok(Vec::new()),
            Err(_) => {
                return Ok(vec![dropped(
                    "a change to a circle that its admins did not make (or that does not follow \
                     the change this device knows); it was ignored",
                )]);
            }
        },
        None => match signed.accept_invitation(me, sender.account_key()) {
            Ok(state) => {
                let inviter = state
                    .state()
                    .member(sender.account_key())
                    .map_or_else(|| "an admin".to_owned(), |m| format!("@{}", m.handle));
                let mut circle = Circle::new(state);
                if let Some(old) = Circle::load(store, &id)? {
                    // Added again after leaving: the history continues.
                    circle.record.next_seq = old.record.next_seq;
                    circle.record.last_message_at = old.record.last_message_at;
                }
                (circle, format!("{inviter} added you to this circle"))
            }
            Err(_) => {
                return Ok(vec![dropped(
                    "an invitation to a circle that did not verify",
                )]);
            }
        },
    };
    circle.save(batch, None)?;
    Ok(vec![Event::GroupChanged {
        group: circle.name().to_owned(),
        description,
    }])
}

/// Opens a circle envelope with the states this device holds, then decrypts and stores the
/// message.
pub(in super::super) fn on_envelope(
    store: &LocalStore,
    account: &Account,
    body: &[u8],
) -> Result<Vec<Event>, Error> {
    for mut circle in Circle::all(store)?.into_iter().filter(|c| !c.record.left) {
        let states = std::iter::once(circle.state.clone()).chain(circle.previous());
        let opened = states
            .filter_map(|state| open_group(&state, body).ok().map(|m| (state, m)))
            .next();
        if let Some((state, message)) = opened {
            return on_message(store, account, &mut circle, &state, &message);
        }
    }
    Ok(vec![dropped(
        "a circle message for no circle this device is in",
    )])
}

fn on_message(
    store: &LocalStore,
    account: &Account,
    circle: &mut Circle,
    state: &VerifiedGroupState,
    message: &GroupMessage,
) -> Result<Vec<Event>, Error> {
    let sender = (message.sender_account(), message.sender_device());
    // A member of the state that opened the envelope, and still one now: someone removed in
    // the last change must not keep posting through the previous epoch.
    let member = state
        .state()
        .member(sender.0)
        .filter(|_| circle.state.state().member(sender.0).is_some());
    let Some(member) = member else {
        return Ok(vec![dropped(
            "a circle message from someone who is not in it",
        )]);
    };
    let from = member.handle.clone();
    if *sender.0 == *account.account_key() && sender.1 == account.device_id() {
        return Ok(Vec::new());
    }
    let Some(mut key) = load_peer_key(store, &circle.id, sender, message.epoch())? else {
        return Ok(vec![dropped(
            "a circle message that arrived without its sender's key (it was sent before this \
             device joined, or the key was lost)",
        )]);
    };
    let plaintext = match key.decrypt(message) {
        Ok(plaintext) => plaintext,
        Err(GroupDecryptError::Duplicate) => return Ok(Vec::new()),
        Err(_) => return Ok(vec![dropped("a circle message that did not decrypt")]),
    };
    let Some(text) = Content::from_bytes(&plaintext)
        .ok()
        .and_then(|c| match c.body {
            Body::Text { text } => Some((c.message_id, c.sent_at, text)),
            _ => None,
        })
    else {
        return Ok(vec![dropped(
            "a circle message in a form this version cannot show",
        )]);
    };
    let (id, sent_at, text) = text;
    let record = HistoryRecord {
        id,
        from: from.as_str().to_owned(),
        outgoing: *sender.0 == *account.account_key(),
        text: text.as_str().to_owned(),
        sent_at,
        received_at: now(),
    };
    let mut batch = Batch::new();
    save_peer_key(&mut batch, &key);
    store.apply(batch)?;
    append(store, circle, &record)?;
    Ok(vec![Event::Message(group_message(
        circle.name(),
        from,
        &record,
    ))])
}

/// The public form of a circle's history record written by `from`.
pub(super) fn group_message(
    name: &str,
    from: kith_protocol::wire::Handle,
    record: &HistoryRecord,
) -> Message {
    Message {
        id: hex::encode(record.id),
        conversation: from.clone(),
        from,
        outgoing: record.outgoing,
        text: record.text.clone(),
        sent_at: record.sent_at,
        received_at: record.received_at,
        group: Some(name.to_owned()),
    }
}

/// What changed between two states, for the user.
fn describe(old: &GroupState, new: &GroupState) -> String {
    let names = |a: &GroupState, b: &GroupState| -> Vec<String> {
        a.members()
            .iter()
            .filter(|m| b.member(&m.account_key).is_none())
            .map(|m| format!("@{}", m.handle))
            .collect()
    };
    let added = names(new, old);
    let removed = names(old, new);
    let mut parts = Vec::new();
    if !added.is_empty() {
        parts.push(format!("{} joined", added.join(", ")));
    }
    if !removed.is_empty() {
        let verb = if removed.len() == 1 { "is" } else { "are" };
        parts.push(format!(
            "{} {verb} no longer in the circle",
            removed.join(", ")
        ));
    }
    if old.name() != new.name() {
        parts.push(format!("renamed from \"{}\"", old.name()));
    }
    if parts.is_empty() {
        parts.push("admins changed".to_owned());
    }
    parts.join("; ")
}

fn dropped(reason: &str) -> Event {
    Event::Dropped {
        reason: reason.to_owned(),
    }
}
