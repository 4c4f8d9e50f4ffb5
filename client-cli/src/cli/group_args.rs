//! The `kith group` subcommands, their options and help texts.

use clap::{Args, Subcommand};
use kith_protocol::wire::Handle;

use super::args::{TextArg, parse_handle};

/// `kith group`.
#[derive(Debug, Args)]
#[command(after_help = GROUP_EXAMPLES)]
pub(crate) struct GroupArgs {
    /// What to do with circles.
    #[command(subcommand)]
    pub(crate) command: GroupCommand,
}

/// The `kith group` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum GroupCommand {
    /// Create a circle with you as its admin, and the people named as its members.
    ///
    /// Every member receives the circle's signed description; they see it appear with the
    /// next `kith receive`.
    #[command(after_help = CREATE_EXAMPLES)]
    Create(GroupCreateArgs),
    /// Send a message to everyone in a circle.
    ///
    /// The message is encrypted once with your key for the circle and uploaded once for all
    /// members' devices. Members whose safety number changed are skipped, with a warning, until
    /// you confirm their new number with `kith verify`.
    #[command(after_help = GROUP_SEND_EXAMPLES)]
    Send(GroupSendArgs),
    /// Add people to a circle (admins only).
    ///
    /// Everyone moves to fresh keys: the new members can read what is sent from now on, not
    /// what was sent before.
    Add(GroupChangeArgs),
    /// Remove people from a circle (admins only).
    ///
    /// The remaining members move to fresh keys, so the people removed cannot read anything
    /// sent after.
    Remove(GroupChangeArgs),
    /// Leave a circle.
    ///
    /// The others move to fresh keys without you; you no longer receive its messages. The last
    /// admin cannot leave while other members remain.
    Leave(GroupArg),
    /// List the circles you belong to.
    List(GroupListArgs),
    /// List the members of a circle and who its admins are.
    Members(GroupMembersArgs),
}

const GROUP_EXAMPLES: &str = "\
Examples:
  kith group create 'Tuesday group' bob carol
  kith group send 'Tuesday group' See you all at seven
  kith group members 'Tuesday group'
  kith group list

A circle is named by its name, or by the start of its id when two circles share a name
(`kith group list` shows both). Read circle messages with `kith receive`, `kith history
--group NAME` or `kith chat --group NAME`.";

const CREATE_EXAMPLES: &str = "\
Examples:
  kith group create 'Tuesday group' bob carol
  kith group create grief-support @dana @eli @fran

You become the circle's admin: only admins add and remove members.";

const GROUP_SEND_EXAMPLES: &str = "\
Examples:
  kith group send 'Tuesday group' See you all at seven
  kith group send 3fa9 'Thank you for tonight'      (a circle by the start of its id)
  echo 'Running late, start without me' | kith group send 'Tuesday group' -

In scripts, set KITH_PASSPHRASE instead of typing the passphrase.";

/// The circle a command is about.
#[derive(Debug, Args)]
pub(crate) struct GroupArg {
    /// The circle: its name, or the start of its id (`kith group list` shows both).
    #[arg(value_name = "NAME")]
    pub(crate) group: String,
}

/// `kith group create`.
#[derive(Debug, Args)]
pub(crate) struct GroupCreateArgs {
    /// The circle's name, as every member will see it.
    #[arg(value_name = "NAME")]
    pub(crate) name: String,
    /// The members besides you, with or without a leading @.
    #[arg(value_name = "HANDLE", value_parser = parse_handle, required = true, num_args = 1..)]
    pub(crate) members: Vec<Handle>,
}

/// `kith group send`.
#[derive(Debug, Args)]
pub(crate) struct GroupSendArgs {
    /// Which circle.
    #[command(flatten)]
    pub(crate) group: GroupArg,
    /// What to send.
    #[command(flatten)]
    pub(crate) message: TextArg,
}

/// `kith group add` and `kith group remove`.
#[derive(Debug, Args)]
pub(crate) struct GroupChangeArgs {
    /// Which circle.
    #[command(flatten)]
    pub(crate) group: GroupArg,
    /// The people, with or without a leading @.
    #[arg(value_name = "HANDLE", value_parser = parse_handle, required = true, num_args = 1..)]
    pub(crate) members: Vec<Handle>,
}

/// `kith group list`.
#[derive(Debug, Args)]
pub(crate) struct GroupListArgs {
    /// Print one JSON object per circle and line, for scripts.
    ///
    /// Keys: id, name, epoch, members (how many), admin (whether you are one) and
    /// last_message_at (seconds since the Unix epoch, or null).
    #[arg(long)]
    pub(crate) json: bool,
}

/// `kith group members`.
#[derive(Debug, Args)]
pub(crate) struct GroupMembersArgs {
    /// Which circle.
    #[command(flatten)]
    pub(crate) group: GroupArg,
    /// Print one JSON object per member and line, for scripts.
    ///
    /// Keys: handle, admin and you (true for your own account).
    #[arg(long)]
    pub(crate) json: bool,
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use clap::error::ErrorKind;

    use super::*;
    use crate::cli::args::{Cli, Command};

    fn group(args: &[&str]) -> GroupCommand {
        let cli = Cli::try_parse_from(["kith", "group"].iter().chain(args)).unwrap();
        let Command::Group(group) = cli.command else {
            panic!("not group")
        };
        group.command
    }

    fn error(args: &[&str]) -> ErrorKind {
        let parsed = Cli::try_parse_from(["kith", "group"].iter().chain(args));
        parsed.unwrap_err().kind()
    }

    fn names(handles: &[Handle]) -> Vec<&str> {
        handles.iter().map(Handle::as_str).collect()
    }

    #[test]
    fn create_takes_a_name_and_members() {
        let GroupCommand::Create(create) = group(&["create", "Tuesday group", "@bob", "carol"])
        else {
            panic!("not create")
        };
        assert_eq!(create.name, "Tuesday group");
        assert_eq!(names(&create.members), ["bob", "carol"]);
        assert_eq!(
            error(&["create", "lonely"]),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(error(&["create", "x", "b b"]), ErrorKind::ValueValidation);
    }

    #[test]
    fn send_joins_words_or_reads_stdin() {
        let GroupCommand::Send(send) = group(&["send", "tuesday", "see", "you"]) else {
            panic!("not send")
        };
        assert_eq!(send.group.group, "tuesday");
        assert_eq!(send.message.text, ["see", "you"]);
        let GroupCommand::Send(send) = group(&["send", "tuesday", "-"]) else {
            panic!("not send")
        };
        assert_eq!(send.message.text, ["-"]);
        assert_eq!(
            error(&["send", "tuesday"]),
            ErrorKind::MissingRequiredArgument
        );
    }

    #[test]
    fn add_remove_and_leave() {
        let GroupCommand::Add(add) = group(&["add", "tuesday", "dana", "@eli"]) else {
            panic!("not add")
        };
        assert_eq!(add.group.group, "tuesday");
        assert_eq!(names(&add.members), ["dana", "eli"]);
        let GroupCommand::Remove(remove) = group(&["remove", "tuesday", "dana"]) else {
            panic!("not remove")
        };
        assert_eq!(names(&remove.members), ["dana"]);
        assert_eq!(
            error(&["remove", "tuesday"]),
            ErrorKind::MissingRequiredArgument
        );
        let GroupCommand::Leave(leave) = group(&["leave", "tuesday"]) else {
            panic!("not leave")
        };
        assert_eq!(leave.group, "tuesday");
        assert_eq!(error(&["leave"]), ErrorKind::MissingRequiredArgument);
    }

    #[test]
    fn list_and_members_with_json() {
        assert!(matches!(group(&["list"]), GroupCommand::List(l) if !l.json));
        assert!(matches!(group(&["list", "--json"]), GroupCommand::List(l) if l.json));
        let GroupCommand::Members(members) = group(&["members", "tuesday", "--json"]) else {
            panic!("not members")
        };
        assert_eq!(members.group.group, "tuesday");
        assert!(members.json);
        assert_eq!(error(&["members"]), ErrorKind::MissingRequiredArgument);
        assert_eq!(
            error(&[]),
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        );
    }
}
