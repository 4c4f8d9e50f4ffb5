//! `kith send`, `kith receive` and `kith history`.

use std::io::{self, Read};
use std::time::Duration;

use anyhow::{Result, bail};
use kith::{Client, Event};
use kith_protocol::wire::Handle;

use super::args::{HistoryArgs, ReceiveArgs, SendArgs};
use super::format::{gap_notice, group_notice, history_line, message_json, plural, received_line};
use super::session::{note, out, out_each};

/// `kith send`: encrypts the text for every device of the recipient and of this account.
pub(crate) async fn send(client: &mut Client, args: SendArgs) -> Result<()> {
    let text = message_text(args.message.text, io::stdin())?;
    let sent = client.send_text(&args.handle, &text).await?;
    let devices = plural(sent.envelopes, "device");
    out(&format!("Sent to @{} ({devices}).", sent.to))?;
    Ok(())
}

/// The text of `kith send` and `kith group send`: the words joined with spaces, or standard
/// input for `-`.
pub(crate) fn message_text(words: Vec<String>, mut stdin: impl Read) -> Result<String> {
    let text = if matches!(words.as_slice(), [only] if only == "-") {
        let mut text = String::new();
        if stdin.read_to_string(&mut text).is_err() {
            bail!("Could not read the message from standard input (is it UTF-8 text?).");
        }
        let trimmed = text.strip_suffix('\n').unwrap_or(&text);
        trimmed.strip_suffix('\r').unwrap_or(trimmed).to_owned()
    } else {
        words.join(" ")
    };
    if text.trim().is_empty() {
        bail!("The message is empty; nothing was sent.");
    }
    Ok(text)
}

/// `kith receive`: prints messages as they are decrypted, warnings on standard error.
pub(crate) async fn receive(client: &mut Client, args: ReceiveArgs) -> Result<()> {
    let me = client.handle().clone();
    let mut printer = Printer {
        me,
        json: args.json,
        messages: 0,
        failed: None,
    };
    let wait = args.wait.map(Duration::from_secs);
    client.receive(wait, |event| printer.show(event)).await?;
    if let Some(error) = printer.failed {
        return Err(error.into());
    }
    if printer.messages == 0 && !args.json {
        note("No new messages.");
    }
    Ok(())
}

/// Prints receive events; remembers the first write error (the callback cannot return one).
struct Printer {
    me: Handle,
    json: bool,
    messages: usize,
    failed: Option<io::Error>,
}

impl Printer {
    fn show(&mut self, event: &Event) {
        match event {
            Event::Message(message) => {
                self.messages += 1;
                let line = if self.json {
                    message_json(message, &self.me).to_string()
                } else {
                    received_line(message)
                };
                if let Err(error) = out(&line) {
                    self.failed.get_or_insert(error);
                }
            }
            Event::KeyChanged { handle } => note(&key_changed_warning(handle)),
            Event::GroupChanged { group, description } => note(&group_notice(group, description)),
            Event::Gap { handle, missing } => {
                note(&format!("warning: {}", gap_notice(handle, *missing)))
            }
            Event::Dropped { reason } => {
                note(&format!(
                    "warning: a message could not be read and was dropped: {reason}"
                ));
            }
            _ => {}
        }
    }
}

/// What `kith receive` says when a contact's key changes.
pub(crate) fn key_changed_warning(handle: &Handle) -> String {
    format!(
        "warning: @{h}'s safety number has changed. This happens when they reinstall Kith, but \
         it is also what an impostor would look like. Their messages are still shown; sending to \
         them is paused until you compare the new number with them in person or on a call \
         (`kith verify {h}`) and accept it (`kith verify {h} --confirm`).",
        h = handle
    )
}

/// `kith history`: the stored conversation or circle, oldest first.
pub(crate) fn history(client: &Client, args: HistoryArgs) -> Result<()> {
    let me = client.handle().clone();
    let conversation = args.conversation.conversation()?;
    let messages = conversation.history(client, args.limit)?;
    if messages.is_empty() && !args.json {
        let whom = conversation.with_whom();
        note(&format!("No messages {whom} on this device."));
    }
    out_each(&messages, args.json, |m| message_json(m, &me), history_line)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn words_are_joined() {
        let text = message_text(words(&["see", "you", "soon"]), io::empty()).unwrap();
        assert_eq!(text, "see you soon");
    }

    #[test]
    fn dash_reads_stdin_without_the_trailing_newline() {
        let text = message_text(words(&["-"]), &b"line one\nline two\n"[..]).unwrap();
        assert_eq!(text, "line one\nline two");
    }

    #[test]
    fn empty_text_is_refused() {
        assert!(message_text(words(&["-"]), &b"\n"[..]).is_err());
        assert!(message_text(words(&[" "]), io::empty()).is_err());
    }

    #[test]
    fn key_change_warning_says_what_to_do() {
        let warning = key_changed_warning(&Handle::parse("bob").unwrap());
        assert!(warning.contains("`kith verify bob`"));
        assert!(warning.contains("`kith verify bob --confirm`"));
    }
}
