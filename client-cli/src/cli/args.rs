//! The command line: every subcommand, option and help text, and the parsers that turn option
//! values into the library's types.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use kith::RelayUrl;
use kith_protocol::wire::Handle;

use super::conversation::ConversationArgs;
use super::group_args::GroupArgs;

/// Kith: end-to-end encrypted messages for peer-support communities.
///
/// Your keys live on this device, in a local store locked by your passphrase. The relay only
/// passes sealed envelopes along: it never sees what you write or who sent it.
#[derive(Debug, Parser)]
#[command(name = "kith", version)]
#[command(
    after_help = "The passphrase is read from KITH_PASSPHRASE if it is set, otherwise \
                        asked for on the terminal.\n\nStart with `kith init --help`."
)]
pub(crate) struct Cli {
    /// Options shared by every command.
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options accepted before or after any subcommand.
#[derive(Debug, Args)]
pub(crate) struct GlobalArgs {
    /// Where this device's account and encrypted store live.
    ///
    /// Default: the platform's data directory (~/.local/share/kith on Linux).
    #[arg(long, global = true, env = "KITH_HOME", value_name = "DIR")]
    pub(crate) home: Option<PathBuf>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create your account and this device, and register with a relay.
    #[command(after_help = INIT_EXAMPLES)]
    Init(InitArgs),
    /// Send a message to someone.
    #[command(after_help = SEND_EXAMPLES)]
    Send(SendArgs),
    /// Fetch and print new messages (everything queued, then optionally wait for more).
    #[command(after_help = RECEIVE_EXAMPLES)]
    Receive(ReceiveArgs),
    /// Open an interactive conversation with someone, or with a circle, in the terminal.
    ///
    /// Type and press Enter to send; PageUp/PageDown (or Up/Down) scroll the history; Esc or
    /// Ctrl-C quits. Messages in other conversations, and changes to circles, are announced on
    /// the status line.
    #[command(after_help = CHAT_EXAMPLES)]
    Chat(ConversationArgs),
    /// Print a conversation from this device's store (nothing is fetched).
    ///
    /// Name a person (HANDLE) for a one-on-one conversation, or a circle (--group NAME) for
    /// its messages, each line tagged with the circle's name.
    #[command(after_help = HISTORY_EXAMPLES)]
    History(HistoryArgs),
    /// Circles (groups): create them, send to them, add and remove members.
    ///
    /// Every message to a circle is end-to-end encrypted for each member's devices. A circle has a name, members and admins; its creator is its first admin. Only admins
    /// add and remove members. Whenever the membership changes, everyone moves to fresh keys,
    /// so people who left cannot read what is sent after.
    Group(GroupArgs),
    /// List the people you have exchanged messages with.
    Contacts(JsonArg),
    /// Show the safety number with someone, to compare it with them, and confirm it.
    ///
    /// The safety number is computed from your account key and theirs. If the digits you see
    /// are the digits they see, nobody is impersonating either of you. Compare them in person or
    /// on a call, then run the command again with --confirm.
    #[command(after_help = VERIFY_EXAMPLES)]
    Verify(VerifyArgs),
}

const INIT_EXAMPLES: &str = "\
Examples:
  kith init --relay wss://relay.example.org:7443 --handle alice --invite 7Q2X-91KD
  kith init --relay wss://localhost:7443 --handle alice --relay-ca relay-ca.pem
  kith init --relay wss://10.0.0.5:7443 --handle alice --relay-fingerprint 3a:7f:…(64 hex digits)
  kith init --relay wss://chat.example.org --handle alice --relay-behind-proxy

You choose a passphrase (typed twice, or taken from KITH_PASSPHRASE). It unlocks this device's
keys; there is no way to recover it.";

const SEND_EXAMPLES: &str = "\
Examples:
  kith send bob See you at the meeting tonight
  kith send @bob 'Did you get home safely?'
  echo 'Thank you for listening' | kith send bob -

In scripts, set KITH_PASSPHRASE instead of typing the passphrase.";

const RECEIVE_EXAMPLES: &str = "\
Examples:
  kith receive                 fetch what arrived while this device was offline
  kith receive --wait 60       ...then keep printing new messages for a minute
  kith receive --json          one JSON object per message, for scripts

Messages go to standard output, warnings (a changed safety number, …) to standard error.
In scripts, set KITH_PASSPHRASE instead of typing the passphrase.";

const CHAT_EXAMPLES: &str = "\
Examples:
  kith chat bob                        talk with @bob
  kith chat --group 'Tuesday group'    talk with everyone in a circle";

const HISTORY_EXAMPLES: &str = "\
Examples:
  kith history bob --limit 20
  kith history --group 'Tuesday group'
  kith history --group 3fa9 --json     (a circle by the start of its id)";

const VERIFY_EXAMPLES: &str = "\
Examples:
  kith verify bob              show the safety number and its QR code
  kith verify bob --confirm    after comparing: mark @bob as verified";

/// `kith init`.
#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// The relay's address.
    #[arg(long, value_name = "wss://HOST:PORT", value_parser = parse_relay)]
    pub(crate) relay: RelayUrl,
    /// The handle to register, with or without a leading @.
    ///
    /// 3 to 32 characters: letters a-z, digits 0-9, '.', '_' and '-'.
    #[arg(long, value_name = "NAME", value_parser = parse_handle)]
    pub(crate) handle: Handle,
    /// The invite token, if the relay asks for one.
    #[arg(long, value_name = "TOKEN")]
    pub(crate) invite: Option<String>,
    /// Trust the relay's certificate if a certificate in this PEM file signed it (or is it).
    ///
    /// For relays with a private or self-signed certificate. Without --relay-ca or
    /// --relay-fingerprint, the system's certificate authorities are trusted.
    #[arg(long, value_name = "PEM_FILE", conflicts_with = "relay_fingerprint")]
    pub(crate) relay_ca: Option<PathBuf>,
    /// Trust the relay's certificate if its SHA-256 fingerprint is this, whoever issued it.
    ///
    /// 64 hexadecimal digits, ':' separators allowed. Ask the relay's operator for it.
    #[arg(long, value_name = "SHA256HEX", value_parser = parse_fingerprint)]
    pub(crate) relay_fingerprint: Option<[u8; 32]>,
    /// The relay sits behind a TLS-terminating proxy: log in without binding to TLS.
    ///
    /// Use this only when the relay's operator says so (kith-relay then runs with
    /// listen_plaintext_behind_proxy). This device still connects with wss:// and checks the
    /// proxy's certificate as usual. What it gives up: normally the login signature is bound
    /// to this device's TLS connection, so a machine in the middle that terminates TLS cannot
    /// pass the login on to the relay; here the TLS connection ends at the proxy, so the login
    /// cannot be bound to it, and whoever terminates TLS in between (the proxy, by design)
    /// could pass it on. Messages stay end-to-end encrypted either way.
    ///
    /// The choice is kept for this device: every later command logs in the same way. A relay
    /// that terminates TLS itself refuses such logins.
    #[arg(long)]
    pub(crate) relay_behind_proxy: bool,
}

/// `kith send`.
#[derive(Debug, Args)]
pub(crate) struct SendArgs {
    /// Who to send to, with or without a leading @.
    #[arg(value_name = "HANDLE", value_parser = parse_handle)]
    pub(crate) handle: Handle,
    /// What to send.
    #[command(flatten)]
    pub(crate) message: TextArg,
}

/// The text of a message, on the command line or from standard input.
#[derive(Debug, Args)]
pub(crate) struct TextArg {
    /// The message (the words are joined with spaces), or `-` to read it from standard input.
    ///
    /// With `-`, one trailing newline is removed. Quote text that starts with '-', or put
    /// `--` before it.
    #[arg(value_name = "TEXT", required = true, num_args = 1..)]
    pub(crate) text: Vec<String>,
}

/// `kith receive`.
#[derive(Debug, Args)]
pub(crate) struct ReceiveArgs {
    /// After fetching what is queued, keep receiving for this many seconds.
    #[arg(long, value_name = "SECONDS")]
    pub(crate) wait: Option<u64>,
    /// Print one JSON object per message and line, for scripts.
    ///
    /// Keys: id, from, to, conversation, text, sent_at, received_at (seconds since the Unix
    /// epoch), group (the circle's name, null for one-on-one messages) and outgoing (true for
    /// messages you sent from another device). For circle messages, `to` is the circle's name.
    ///
    /// Changes to your circles are reported on standard error as `[NAME] what happened`.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `kith history`.
#[derive(Debug, Args)]
pub(crate) struct HistoryArgs {
    /// Whose conversation.
    #[command(flatten)]
    pub(crate) conversation: ConversationArgs,
    /// Only the last N messages.
    #[arg(long, value_name = "N")]
    pub(crate) limit: Option<usize>,
    /// Print one JSON object per message and line (the keys of `kith receive --json`).
    #[arg(long)]
    pub(crate) json: bool,
}

/// A command whose only option is `--json`.
#[derive(Debug, Args)]
pub(crate) struct JsonArg {
    /// Print one JSON object per contact and line.
    ///
    /// Keys: handle, verified, key_changed, devices and last_message_at (seconds since the
    /// Unix epoch, or null).
    #[arg(long)]
    pub(crate) json: bool,
}

/// `kith verify`.
#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// Whose safety number, with or without a leading @.
    #[arg(value_name = "HANDLE", value_parser = parse_handle)]
    pub(crate) handle: Handle,
    /// The digits match: mark this person as verified.
    ///
    /// If their key had changed, this also accepts the new key, so you can send to them again.
    #[arg(long)]
    pub(crate) confirm: bool,
    /// Print handle, safety_number (60 digits), verified and key_changed as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Parses a handle written with or without one leading `@`.
pub(crate) fn parse_handle(input: &str) -> Result<Handle, kith::Error> {
    let bare = input.strip_prefix('@').unwrap_or(input);
    Ok(Handle::parse(bare)?)
}

/// Parses a relay address.
fn parse_relay(input: &str) -> Result<RelayUrl, kith::Error> {
    Ok(RelayUrl::parse(input)?)
}

/// Parses a SHA-256 fingerprint (`--relay-fingerprint`) with the library's parser.
pub(crate) fn parse_fingerprint(input: &str) -> Result<[u8; 32], String> {
    kith::parse_fingerprint(input).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;
    use crate::cli::conversation::Conversation;

    #[test]
    fn handles_with_and_without_at() {
        assert_eq!(parse_handle("@Bob").unwrap().as_str(), "bob");
        assert_eq!(parse_handle("bob").unwrap().as_str(), "bob");
        assert!(parse_handle("@@bob").is_err());
        assert!(parse_handle("@").is_err());
        assert!(parse_handle("b b").is_err());
    }

    #[test]
    fn fingerprints_plain_and_with_colons() {
        let plain = "00".repeat(31) + "ff";
        assert_eq!(parse_fingerprint(&plain).unwrap()[31], 0xff);
        let colons: Vec<String> = (0..32).map(|i| format!("{i:02X}")).collect();
        let parsed = parse_fingerprint(&colons.join(":")).unwrap();
        assert_eq!(parsed[0], 0);
        assert_eq!(parsed[31], 31);
        assert!(parse_fingerprint("abcd").is_err());
        assert!(parse_fingerprint(&"0".repeat(66)).is_err());
        assert!(parse_fingerprint(&"g".repeat(64)).is_err());
    }

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn trust_flags_conflict() {
        let fp = "ab".repeat(32);
        let args = [
            "kith",
            "init",
            "--relay",
            "wss://x:1",
            "--handle",
            "alice",
            "--relay-ca",
            "a.pem",
            "--relay-fingerprint",
            &fp,
        ];
        let err = Cli::try_parse_from(args).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
    }

    #[test]
    fn relay_behind_proxy_is_off_unless_given() {
        let init = |extra: &[&str]| {
            let mut args = vec!["kith", "init", "--relay", "wss://x:1", "--handle", "alice"];
            args.extend_from_slice(extra);
            let Command::Init(init) = Cli::try_parse_from(args).unwrap().command else {
                panic!("not init")
            };
            init.relay_behind_proxy
        };
        assert!(!init(&[]));
        assert!(init(&["--relay-behind-proxy"]));
        let help = Cli::command()
            .find_subcommand_mut("init")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(
            help.contains("--relay-behind-proxy") && help.contains("operator"),
            "{help}"
        );
    }

    #[test]
    fn send_joins_words_and_home_is_global() {
        let cli =
            Cli::try_parse_from(["kith", "send", "@bob", "hi", "there", "--home", "/h"]).unwrap();
        assert_eq!(cli.global.home, Some(PathBuf::from("/h")));
        let Command::Send(send) = cli.command else {
            panic!("not send")
        };
        assert_eq!(send.handle.as_str(), "bob");
        assert_eq!(send.message.text, ["hi", "there"]);
        let dash = Cli::try_parse_from(["kith", "send", "bob", "-"]).unwrap();
        let Command::Send(send) = dash.command else {
            panic!("not send")
        };
        assert_eq!(send.message.text, ["-"]);
    }

    fn conversation(args: &[&str]) -> Result<Conversation, clap::error::ErrorKind> {
        let cli = Cli::try_parse_from(args).map_err(|e| e.kind())?;
        let conversation = match cli.command {
            Command::History(history) => history.conversation,
            Command::Chat(chat) => chat,
            _ => panic!("not history or chat"),
        };
        Ok(conversation.conversation().unwrap())
    }

    #[test]
    fn history_and_chat_take_a_handle_or_a_group() {
        for command in ["history", "chat"] {
            let person = conversation(&["kith", command, "@bob"]).unwrap();
            assert_eq!(person, Conversation::Person(parse_handle("bob").unwrap()));
            let circle = conversation(&["kith", command, "--group", "Tuesday group"]).unwrap();
            assert_eq!(circle, Conversation::Circle("Tuesday group".to_owned()));
            let both = conversation(&["kith", command, "bob", "--group", "tuesday"]);
            assert_eq!(both, Err(clap::error::ErrorKind::ArgumentConflict));
            let neither = conversation(&["kith", command]);
            assert_eq!(
                neither,
                Err(clap::error::ErrorKind::MissingRequiredArgument)
            );
        }
        let cli =
            Cli::try_parse_from(["kith", "history", "--group", "t", "--limit", "5", "--json"]);
        let Command::History(history) = cli.unwrap().command else {
            panic!("not history")
        };
        assert_eq!(history.limit, Some(5));
        assert!(history.json);
    }

    #[test]
    fn every_help_is_written() {
        let mut cli = Cli::command();
        cli.build();
        for sub in cli.get_subcommands_mut() {
            if sub.get_name() == "help" {
                continue;
            }
            assert_help_is_written(sub);
            for nested in sub.get_subcommands_mut() {
                if nested.get_name() != "help" {
                    assert_help_is_written(nested);
                }
            }
        }
        let top = cli.render_long_help().to_string();
        for name in [
            "init", "send", "receive", "chat", "history", "contacts", "verify", "group",
        ] {
            assert!(top.contains(name));
        }
    }

    fn assert_help_is_written(command: &mut clap::Command) {
        let help = command.render_long_help().to_string();
        assert!(help.len() > 120, "{}: {help}", command.get_name());
        assert!(help.contains("--home"), "{}", command.get_name());
    }

    #[test]
    fn group_help_lists_its_commands_and_examples() {
        let mut cli = Cli::command();
        cli.build();
        let group = cli.find_subcommand_mut("group").unwrap();
        let help = group.render_long_help().to_string();
        for name in [
            "create", "send", "add", "remove", "leave", "list", "members",
        ] {
            assert!(help.contains(name), "{help}");
        }
        for (name, example) in [("create", "kith group create"), ("send", "kith group send")] {
            let sub = group.find_subcommand_mut(name).unwrap();
            let help = sub.render_long_help().to_string();
            assert!(
                help.contains("Examples:") && help.contains(example),
                "{help}"
            );
        }
    }
}
