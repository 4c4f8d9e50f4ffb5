//! `kith group`: create circles, send to them, change and list their members.

use std::io;

use anyhow::Result;
use kith::{Client, GroupSent};
use kith_protocol::wire::Handle;

use super::format::{plural, sanitize_name};
use super::group_args::{
    GroupArg, GroupChangeArgs, GroupCommand, GroupListArgs, GroupMembersArgs, GroupSendArgs,
};
use super::group_format::{
    changed_line, created_line, group_json, group_line, handle_width, member_json, member_line,
    name_width,
};
use super::messages::message_text;
use super::session::{note, out, out_each};

/// Runs one `kith group` subcommand.
pub(crate) async fn run(client: &mut Client, command: GroupCommand) -> Result<()> {
    match command {
        GroupCommand::Create(args) => {
            let group = client.group_create(&args.name, &args.members).await?;
            Ok(out(&created_line(&group))?)
        }
        GroupCommand::Send(args) => send(client, args).await,
        GroupCommand::Add(args) => change(client, args, Change::Add).await,
        GroupCommand::Remove(args) => change(client, args, Change::Remove).await,
        GroupCommand::Leave(args) => leave(client, args).await,
        GroupCommand::List(args) => list(client, &args),
        GroupCommand::Members(args) => members(client, &args),
    }
}

/// `kith group send`: one upload for every member device; skipped members are warned about.
async fn send(client: &mut Client, args: GroupSendArgs) -> Result<()> {
    let text = message_text(args.message.text, io::stdin())?;
    let sent = client.group_send(&args.group.group, &text).await?;
    out(&sent_line(&sent))?;
    for handle in &sent.skipped {
        note(&skipped_warning(handle));
    }
    Ok(())
}

/// What `kith group send` prints.
fn sent_line(sent: &GroupSent) -> String {
    format!(
        "Sent to circle \"{}\" ({}, one upload of {}).",
        sanitize_name(&sent.group),
        plural(sent.envelopes, "device"),
        plural(sent.body_len, "byte")
    )
}

/// The warning for a member the message was not sent to.
fn skipped_warning(handle: &Handle) -> String {
    format!(
        "warning: @{handle} did not get this message: their safety number has changed. Compare \
         it with them (`kith verify {handle}`) and accept it (`kith verify {handle} --confirm`); \
         later messages will reach them again."
    )
}

/// Adding or removing members.
#[derive(Debug, Clone, Copy)]
enum Change {
    Add,
    Remove,
}

/// `kith group add` and `kith group remove`.
async fn change(client: &mut Client, args: GroupChangeArgs, change: Change) -> Result<()> {
    let group = &args.group.group;
    let (info, verb, preposition) = match change {
        Change::Add => (client.group_add(group, &args.members).await?, "Added", "to"),
        Change::Remove => (
            client.group_remove(group, &args.members).await?,
            "Removed",
            "from",
        ),
    };
    out(&changed_line(verb, preposition, &args.members, &info))?;
    Ok(())
}

/// `kith group leave`: says the circle's name even when it was named by its id.
async fn leave(client: &mut Client, args: GroupArg) -> Result<()> {
    let info = client.group(&args.group)?;
    client.group_leave(&info.id).await?;
    out(&format!("You left \"{}\".", sanitize_name(&info.name)))?;
    Ok(())
}

/// `kith group list`.
fn list(client: &Client, args: &GroupListArgs) -> Result<()> {
    let groups = client.groups()?;
    if groups.is_empty() && !args.json {
        note("You are in no circle yet: start one with `kith group create NAME HANDLE...`.");
    }
    let width = name_width(&groups);
    out_each(&groups, args.json, group_json, |g| group_line(g, width))?;
    Ok(())
}

/// `kith group members`.
fn members(client: &Client, args: &GroupMembersArgs) -> Result<()> {
    let info = client.group(&args.group.group)?;
    let width = handle_width(&info.members);
    out_each(&info.members, args.json, member_json, |m| {
        member_line(m, width)
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sent_line_counts_devices_and_bytes() {
        let sent = GroupSent {
            id: "00".repeat(16),
            group: "Tuesday group".to_owned(),
            envelopes: 5,
            body_len: 312,
            keys_distributed: 2,
            skipped: Vec::new(),
        };
        assert_eq!(
            sent_line(&sent),
            "Sent to circle \"Tuesday group\" (5 devices, one upload of 312 bytes)."
        );
    }

    #[test]
    fn skipped_members_are_told_how_to_verify() {
        let warning = skipped_warning(&Handle::parse("bob").unwrap());
        assert!(warning.starts_with("warning: @bob"));
        assert!(warning.contains("`kith verify bob`"));
    }
}
