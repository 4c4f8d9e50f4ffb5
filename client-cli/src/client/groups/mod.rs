//! Circles (groups): member-held, admin-signed state, sender keys over the 1:1 sessions, and
//! one upload per message for every member device (SPEC.md §14).

mod circle;
mod incoming;
mod outgoing;

pub(super) use incoming::{on_envelope, on_sender_key, on_update};

use kith_protocol::consts::MAX_GROUP_NAME_LEN;
use kith_protocol::wire::Handle;
use kith_protocol::{BoundedString, GroupChange, GroupState, GroupStateError, Member};

use self::circle::Circle;
use super::records::HistoryRecord;
use super::{Client, GroupInfo, GroupSent, Message, contacts, history};
use crate::error::Error;
use crate::store::Batch;

impl Client {
    /// Creates the circle `name` with this account as admin and `members`, and sends the
    /// signed state to every member.
    pub async fn group_create(
        &mut self,
        name: &str,
        members: &[Handle],
    ) -> Result<GroupInfo, Error> {
        let name = BoundedString::<MAX_GROUP_NAME_LEN>::new(name)
            .filter(|n| !n.as_str().trim().is_empty())
            .ok_or_else(|| refused(name, "a circle's name has 1 to 64 characters"))?;
        let others = self.members_for(members).await?;
        let (store, account, link, rng) = self.parts().await?;
        let signed = GroupState::genesis(
            name.clone(),
            &account.keys,
            account.handle.clone(),
            others,
            rng,
        )
        .map_err(|e| group_error(name.as_str(), e))?;
        let state = signed
            .verify_genesis()
            .map_err(|e| group_error(name.as_str(), e))?;
        let mut circle = Circle::new(state);
        save(store, &mut circle)?;
        outgoing::broadcast_state(store, link, account, &circle.state, rng).await?;
        Ok(circle.info(account.account_key()))
    }

    /// Sends `text` to the circle `group` (its name, or a prefix of its id).
    pub async fn group_send(&mut self, group: &str, text: &str) -> Result<GroupSent, Error> {
        let result = self.group_send_inner(group, text).await;
        self.check(result)
    }

    async fn group_send_inner(&mut self, group: &str, text: &str) -> Result<GroupSent, Error> {
        let (store, account, link, rng) = self.parts().await?;
        let mut circle = Circle::resolve(store, group)?;
        outgoing::send_text(store, link, account, &mut circle, text, rng).await
    }

    /// Adds `members` to the circle (admins only). Every member then uses a fresh sender key.
    pub async fn group_add(&mut self, group: &str, members: &[Handle]) -> Result<GroupInfo, Error> {
        let added = self.members_for(members).await?;
        self.change(group, GroupChange::AddMembers(added)).await
    }

    /// Removes `members` from the circle (admins only): the remaining members move to a new
    /// epoch with fresh keys, so the removed ones can read nothing sent after.
    pub async fn group_remove(
        &mut self,
        group: &str,
        members: &[Handle],
    ) -> Result<GroupInfo, Error> {
        let circle = Circle::resolve(&self.store, group)?;
        let state = circle.state.state();
        let removed = members
            .iter()
            .map(|handle| {
                state
                    .members()
                    .iter()
                    .find(|m| m.handle == *handle)
                    .map(|m| m.account_key)
                    .ok_or_else(|| refused(state.name(), &format!("@{handle} is not in it")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.change(group, GroupChange::RemoveMembers(removed))
            .await
    }

    /// Leaves the circle: the others move to a new epoch without this account.
    pub async fn group_leave(&mut self, group: &str) -> Result<(), Error> {
        self.change(group, GroupChange::Leave).await.map(drop)
    }

    /// Makes `change` as this account, sends the new state to its members and keeps it.
    async fn change(&mut self, group: &str, change: GroupChange) -> Result<GroupInfo, Error> {
        let leaving = matches!(change, GroupChange::Leave);
        let (store, account, link, rng) = self.parts().await?;
        let mut circle = Circle::resolve(store, group)?;
        let name = circle.name().to_owned();
        let me = account.account_key();
        if !leaving && !circle.state.state().is_admin(me) {
            return Err(Error::NotGroupAdmin { group: name });
        }
        let signed = circle
            .state
            .successor(change, &account.keys, rng)
            .map_err(|e| group_error(&name, e))?;
        let next = circle
            .state
            .verify_successor(&signed)
            .map_err(|e| group_error(&name, e))?;
        circle.advance(next);
        circle.record.left = leaving;
        save(store, &mut circle)?;
        outgoing::broadcast_state(store, link, account, &circle.state, rng).await?;
        Ok(circle.info(me))
    }

    /// Looks `handles` up and pins them as contacts (refusing changed keys), as circle members.
    async fn members_for(&mut self, handles: &[Handle]) -> Result<Vec<Member>, Error> {
        let (store, account, link, _) = self.parts().await?;
        let mut members = Vec::with_capacity(handles.len());
        for handle in handles {
            if *handle == account.handle || members.iter().any(|m: &Member| m.handle == *handle) {
                continue;
            }
            let directory = contacts::lookup(link, handle).await?;
            contacts::pin(store, handle, &directory)?;
            members.push(Member {
                account_key: directory.account_key,
                handle: handle.clone(),
                admin: false,
            });
        }
        Ok(members)
    }

    /// Every circle this account belongs to, sorted by name.
    pub fn groups(&self) -> Result<Vec<GroupInfo>, Error> {
        let me = self.account.account_key();
        let mut list: Vec<GroupInfo> = Circle::all(&self.store)?
            .iter()
            .filter(|c| !c.record.left)
            .map(|c| c.info(me))
            .collect();
        list.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
        Ok(list)
    }

    /// One circle, by name or id prefix.
    pub fn group(&self, group: &str) -> Result<GroupInfo, Error> {
        Ok(Circle::resolve(&self.store, group)?.info(self.account.account_key()))
    }

    /// The last `limit` messages of the circle (all without a limit), oldest first.
    pub fn group_history(&self, group: &str, limit: Option<usize>) -> Result<Vec<Message>, Error> {
        let circle = Circle::resolve(&self.store, group)?;
        let key = history::group_key(circle.id.as_bytes());
        Ok(history::records(&self.store, &key, limit)?
            .iter()
            .filter_map(|record: &HistoryRecord| {
                let from = Handle::parse(&record.from).ok()?;
                Some(incoming::group_message(circle.name(), from, record))
            })
            .collect())
    }
}

/// Saves `circle` on its own.
fn save(store: &crate::store::LocalStore, circle: &mut Circle) -> Result<(), Error> {
    let mut batch = Batch::new();
    circle.save(&mut batch, None)?;
    store.apply(batch)?;
    Ok(())
}

fn refused(group: &str, reason: &str) -> Error {
    Error::GroupChangeRefused {
        group: group.to_owned(),
        reason: reason.to_owned(),
    }
}

/// The user-facing form of a refused state change.
fn group_error(group: &str, error: GroupStateError) -> Error {
    match error {
        GroupStateError::NotAdmin => Error::NotGroupAdmin {
            group: group.to_owned(),
        },
        other => refused(group, &other.to_string()),
    }
}
