//! Pure formatting for `kith group`: circle and member lines, their JSON objects, and the
//! sentences that confirm a change.

use kith::{GroupInfo, GroupMember};
use kith_protocol::wire::Handle;
use serde_json::{Value, json};

use super::format::{plural, sanitize_name};

/// How many hex digits of a circle's id `kith group list` shows.
const ID_PREFIX: usize = 8;

/// A circle as `kith group list` prints it, the name padded to `name_width` characters:
/// `NAME  (N members, you are admin|member)  id PREFIX…`.
pub(crate) fn group_line(group: &GroupInfo, name_width: usize) -> String {
    let name = sanitize_name(&group.name);
    let members = plural(group.members.len(), "member");
    let role = if group.admin { "admin" } else { "member" };
    let id: String = group.id.chars().take(ID_PREFIX).collect();
    format!("{name:name_width$}  ({members}, you are {role})  id {id}…")
}

/// The width of the widest circle name, for [`group_line`].
pub(crate) fn name_width(groups: &[GroupInfo]) -> usize {
    let widths = groups
        .iter()
        .map(|g| sanitize_name(&g.name).chars().count());
    widths.max().unwrap_or(0)
}

/// A circle as one JSON object.
pub(crate) fn group_json(group: &GroupInfo) -> Value {
    json!({
        "id": group.id,
        "name": group.name,
        "epoch": group.epoch,
        "members": group.members.len(),
        "admin": group.admin,
        "last_message_at": group.last_message_at,
    })
}

/// A member as `kith group members` prints it, the handle padded to `handle_width`
/// characters: `@handle  admin|member  (you)`.
pub(crate) fn member_line(member: &GroupMember, handle_width: usize) -> String {
    let handle = format!("@{}", member.handle);
    let role = if member.admin { "admin" } else { "member" };
    if member.you {
        format!("{handle:handle_width$}  {role:6}  (you)")
    } else {
        format!("{handle:handle_width$}  {role}")
    }
}

/// The width of the widest `@handle`, for [`member_line`].
pub(crate) fn handle_width(members: &[GroupMember]) -> usize {
    let widths = members.iter().map(|m| m.handle.as_str().len() + 1);
    widths.max().unwrap_or(0)
}

/// A member as one JSON object.
pub(crate) fn member_json(member: &GroupMember) -> Value {
    json!({
        "handle": member.handle.as_str(),
        "admin": member.admin,
        "you": member.you,
    })
}

/// `@a, @b, @c`.
pub(crate) fn handle_list<'a>(handles: impl IntoIterator<Item = &'a Handle>) -> String {
    let handles: Vec<String> = handles.into_iter().map(|h| format!("@{h}")).collect();
    handles.join(", ")
}

/// What `kith group create` says.
pub(crate) fn created_line(group: &GroupInfo) -> String {
    let others = group.members.iter().filter(|m| !m.you).map(|m| &m.handle);
    format!(
        "Created circle \"{}\" with {} (you are its admin).",
        sanitize_name(&group.name),
        handle_list(others)
    )
}

/// What `kith group add` (`verb` "Added", `preposition` "to") and `kith group remove`
/// ("Removed", "from") say: who changed, and the members now.
pub(crate) fn changed_line(
    verb: &str,
    preposition: &str,
    changed: &[Handle],
    group: &GroupInfo,
) -> String {
    let members: Vec<String> = group.members.iter().map(member_summary).collect();
    format!(
        "{verb} {} {preposition} circle \"{}\". Members now: {}.",
        handle_list(changed),
        sanitize_name(&group.name),
        members.join(", ")
    )
}

/// `@alice (admin, you)`, `@bob`.
fn member_summary(member: &GroupMember) -> String {
    let notes: Vec<&str> = [(member.admin, "admin"), (member.you, "you")]
        .into_iter()
        .filter_map(|(yes, note)| yes.then_some(note))
        .collect();
    if notes.is_empty() {
        format!("@{}", member.handle)
    } else {
        format!("@{} ({})", member.handle, notes.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, admin: bool, you: bool) -> GroupMember {
        GroupMember {
            handle: Handle::parse(name).unwrap(),
            admin,
            you,
        }
    }

    fn circle(admin: bool) -> GroupInfo {
        GroupInfo {
            id: "3fa9c2d17b0e4a5f8c6d2e1f0a9b8c7d".to_owned(),
            name: "Tuesday group".to_owned(),
            epoch: 3,
            members: vec![
                member("alice", true, true),
                member("bob", false, false),
                member("carol", admin, false),
            ],
            admin,
            last_message_at: Some(1_700_000_000),
        }
    }

    #[test]
    fn circles_as_lines() {
        assert_eq!(
            group_line(&circle(true), 15),
            "Tuesday group    (3 members, you are admin)  id 3fa9c2d1…"
        );
        let mut alone = circle(false);
        alone.name = "x\u{1b}y".to_owned();
        alone.members.truncate(1);
        assert_eq!(
            group_line(&alone, 0),
            "x\u{FFFD}y  (1 member, you are member)  id 3fa9c2d1…"
        );
        assert_eq!(name_width(&[circle(true), alone]), 13);
    }

    #[test]
    fn circles_as_json() {
        let value = group_json(&circle(true));
        let mut keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        keys.sort_unstable();
        let expected = ["admin", "epoch", "id", "last_message_at", "members", "name"];
        assert_eq!(keys, expected);
        assert_eq!(value["members"], 3);
        assert_eq!(value["epoch"], 3);
        assert_eq!(value["name"], "Tuesday group");
        assert_eq!(value["last_message_at"], 1_700_000_000);
        assert!(!value.to_string().contains('\n'));
    }

    #[test]
    fn members_as_lines_and_json() {
        let members = circle(true).members;
        let width = handle_width(&members);
        assert_eq!(width, 6);
        let lines: Vec<String> = members.iter().map(|m| member_line(m, width)).collect();
        assert_eq!(
            lines,
            ["@alice  admin   (you)", "@bob    member", "@carol  admin"]
        );
        let value = member_json(&members[1]);
        assert_eq!(
            value,
            json!({"handle": "bob", "admin": false, "you": false})
        );
    }

    #[test]
    fn confirmations_name_the_members() {
        assert_eq!(
            created_line(&circle(false)),
            "Created circle \"Tuesday group\" with @bob, @carol (you are its admin)."
        );
        let carol = [Handle::parse("carol").unwrap()];
        assert_eq!(
            changed_line("Added", "to", &carol, &circle(false)),
            "Added @carol to circle \"Tuesday group\". Members now: @alice (admin, you), @bob, \
             @carol."
        );
    }
}
