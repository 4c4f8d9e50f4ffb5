//! What a member sends: circle states and sender keys over the 1:1 sessions, and circle
//! messages as one upload for every member device.

use kith_protocol::rand_core::CryptoRng;
use kith_protocol::wire::Handle;
use kith_protocol::{
    Body, Content, DeviceId, GroupState, OwnSenderKey, VerifiedGroupState, seal_group,
};

use super::super::account::Account;
use super::super::contacts::{self, Directory};
use super::super::history::{self, Conversation};
use super::super::records::HistoryRecord;
use super::super::send::{self, deliver, send_content};
use super::super::{GroupSent, now};
use super::circle::{Circle, device_tag};
use crate::error::Error;
use crate::relay::Link;
use crate::store::{Batch, LocalStore};

/// Who receives a circle's traffic.
pub(super) struct Audience {
    /// Each other member whose directory entry still has the circle's account key.
    members: Vec<(Handle, Directory)>,
    /// This account's other devices.
    own: Option<(Handle, Directory)>,
    /// Members left out because the directory's key for them differs (or they are gone).
    pub(super) skipped: Vec<Handle>,
}

impl Audience {
    /// Looks every other member of `state` up at the relay.
    pub(super) async fn of(
        link: &mut Link,
        account: &Account,
        state: &GroupState,
    ) -> Result<Self, Error> {
        let mut audience = Self {
            members: Vec::new(),
            own: None,
            skipped: Vec::new(),
        };
        for member in state.members() {
            if member.account_key == *account.account_key() {
                continue;
            }
            match contacts::lookup(link, &member.handle).await {
                Ok(directory) if directory.account_key == member.account_key => {
                    audience.members.push((member.handle.clone(), directory));
                }
                Ok(_) | Err(Error::UnknownHandle { .. } | Error::BadKeys { .. }) => {
                    audience.skipped.push(member.handle.clone());
                }
                Err(e) => return Err(e),
            }
        }
        audience.own = send::own_other_devices(link, account)
            .await?
            .map(|own| (account.handle.clone(), own));
        Ok(audience)
    }

    fn all(&self) -> impl Iterator<Item = &(Handle, Directory)> {
        self.members.iter().chain(self.own.iter())
    }

    fn devices(&self) -> Vec<DeviceId> {
        self.all()
            .flat_map(|(_, d)| d.devices.iter().map(|c| c.device_id()))
            .collect()
    }
}

/// A content from this account, with a fresh message id.
fn content<R: CryptoRng + ?Sized>(account: &Account, body: Body, rng: &mut R) -> Content {
    let mut message_id = [0u8; 16];
    rng.fill_bytes(&mut message_id);
    Content {
        message_id,
        sent_at: now(),
        sender: account.handle.clone(),
        body,
    }
}

/// Sends the circle's current signed state to every member device and this account's other
/// devices, over the 1:1 sessions. Returns the members skipped.
pub(super) async fn broadcast_state<R: CryptoRng + ?Sized>(
    store: &LocalStore,
    link: &mut Link,
    account: &Account,
    state: &VerifiedGroupState,
    rng: &mut R,
) -> Result<Vec<Handle>, Error> {
    let audience = Audience::of(link, account, state.state()).await?;
    let update = content(account, Body::GroupUpdate(state.signed().clone()), rng);
    for (handle, directory) in audience.all() {
        send_content(store, link, account, (handle, directory), &update, rng).await?;
    }
    Ok(audience.skipped)
}

/// Sends `text` to the circle: sender key first to devices that lack it, then one upload.
pub(super) async fn send_text<R: CryptoRng + ?Sized>(
    store: &LocalStore,
    link: &mut Link,
    account: &Account,
    circle: &mut Circle,
    text: &str,
    rng: &mut R,
) -> Result<GroupSent, Error> {
    let text = send::checked_text(text)?;
    let audience = Audience::of(link, account, circle.state.state()).await?;
    let mut key = circle.own_key(rng)?;
    // The sender key is durable before its chain key leaves this device.
    save(store, circle, &key)?;
    let keys_distributed = distribute(store, link, account, circle, &key, &audience, rng).await?;

    let message = content(account, Body::Text { text: text.clone() }, rng);
    let sealed = key
        .encrypt(
            (account.account_key(), account.device_id()),
            &message.to_bytes(),
        )
        .map_err(|_| Error::SessionBroken)
        .and_then(|m| seal_group(&circle.state, &m, rng).map_err(|_| Error::SessionBroken))?;
    // The advanced chain is durable before the message leaves: no message key twice.
    save(store, circle, &key)?;
    let devices = audience.devices();
    if !devices.is_empty() {
        deliver(link, &sealed, &devices, rng).await?;
    }

    let record = HistoryRecord {
        id: message.message_id,
        from: account.handle.as_str().to_owned(),
        outgoing: true,
        text: text.as_str().to_owned(),
        sent_at: message.sent_at,
        received_at: now(),
    };
    append(store, circle, &record)?;
    Ok(GroupSent {
        id: hex::encode(message.message_id),
        group: circle.name().to_owned(),
        envelopes: devices.len(),
        body_len: sealed.len(),
        keys_distributed,
        skipped: audience.skipped,
    })
}

/// Sends this device's sender key over the 1:1 sessions to every audience device that does
/// not hold it yet, and records who does.
async fn distribute<R: CryptoRng + ?Sized>(
    store: &LocalStore,
    link: &mut Link,
    account: &Account,
    circle: &mut Circle,
    key: &OwnSenderKey,
    audience: &Audience,
    rng: &mut R,
) -> Result<usize, Error> {
    let distribution = content(account, Body::SenderKey(key.distribution()), rng);
    let mut sent = 0;
    for (handle, directory) in audience.all() {
        let missing: Vec<_> = directory
            .devices
            .iter()
            .filter(|c| {
                let tag = device_tag(c.account_key(), c.device_id());
                !circle.record.distributed.contains(&tag)
            })
            .cloned()
            .collect();
        if missing.is_empty() {
            continue;
        }
        let tags: Vec<_> = missing
            .iter()
            .map(|c| device_tag(c.account_key(), c.device_id()))
            .collect();
        let partial = Directory {
            account_key: directory.account_key,
            devices: missing,
        };
        sent += send_content(store, link, account, (handle, &partial), &distribution, rng).await?;
        circle.record.distributed.extend(tags);
    }
    save(store, circle, key)?;
    Ok(sent)
}

/// Saves the circle with `key` as this device's sender key.
fn save(store: &LocalStore, circle: &mut Circle, key: &OwnSenderKey) -> Result<(), Error> {
    let mut batch = Batch::new();
    circle.save(&mut batch, Some(key))?;
    store.apply(batch)?;
    Ok(())
}

/// Stores `record` in the circle's history.
pub(super) fn append(
    store: &LocalStore,
    circle: &mut Circle,
    record: &HistoryRecord,
) -> Result<(), Error> {
    let mut batch = Batch::new();
    let conversation = Conversation {
        key: history::group_key(circle.id.as_bytes()),
        next_seq: &mut circle.record.next_seq,
        last_message_at: &mut circle.record.last_message_at,
    };
    history::append(&mut batch, conversation, record)?;
    circle.save(&mut batch, None)?;
    store.apply(batch)?;
    Ok(())
}
