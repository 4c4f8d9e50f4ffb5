//! Which conversation a command is about: one person, or a circle. `kith history` and
//! `kith chat` serve both through this one type.

use anyhow::{Result, bail};
use clap::Args;
use kith::{Client, Message};
use kith_protocol::wire::Handle;

use super::args::parse_handle;
use super::format::sanitize_name;

/// One conversation: a person (HANDLE) or a circle (--group NAME), exactly one of them.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub(crate) struct ConversationArgs {
    /// The person, with or without a leading @.
    #[arg(value_name = "HANDLE", value_parser = parse_handle)]
    handle: Option<Handle>,
    /// A circle instead of a person: its name, or the start of its id (`kith group list`).
    #[arg(long, value_name = "NAME")]
    group: Option<String>,
}

impl ConversationArgs {
    /// The conversation named on the command line.
    pub(crate) fn conversation(self) -> Result<Conversation> {
        match (self.handle, self.group) {
            (Some(handle), None) => Ok(Conversation::Person(handle)),
            (None, Some(group)) => Ok(Conversation::Circle(group)),
            _ => bail!("Name a person (HANDLE) or a circle (--group NAME), not both."),
        }
    }
}

/// A one-on-one conversation or a circle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Conversation {
    /// The conversation with this person.
    Person(Handle),
    /// A circle: its name, or (as typed, or to address it unambiguously) a prefix of its id.
    Circle(String),
}

impl Conversation {
    /// The stored messages, oldest first (the last `limit` of them, if given).
    pub(crate) fn history(
        &self,
        client: &Client,
        limit: Option<usize>,
    ) -> Result<Vec<Message>, kith::Error> {
        match self {
            Self::Person(handle) => client.history(handle, limit),
            Self::Circle(group) => client.group_history(group, limit),
        }
    }

    /// Whether `message` belongs here (a circle named by its name, as messages carry it).
    pub(crate) fn includes(&self, message: &Message) -> bool {
        match self {
            Self::Person(handle) => message.group.is_none() && message.conversation == *handle,
            Self::Circle(name) => message.group.as_deref() == Some(name.as_str()),
        }
    }

    /// Whether this is the one-on-one conversation with `handle`.
    pub(crate) fn is_with(&self, handle: &Handle) -> bool {
        matches!(self, Self::Person(person) if person == handle)
    }

    /// "with @bob" or "in circle "NAME"", to finish a sentence such as "No messages …".
    pub(crate) fn with_whom(&self) -> String {
        match self {
            Self::Person(handle) => format!("with @{handle}"),
            Self::Circle(name) => format!("in circle \"{}\"", sanitize_name(name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle(name: &str) -> Handle {
        Handle::parse(name).unwrap()
    }

    fn message(from: &str, group: Option<&str>) -> Message {
        Message {
            id: "00".repeat(16),
            conversation: handle(from),
            from: handle(from),
            outgoing: false,
            text: "hi".to_owned(),
            sent_at: 0,
            received_at: 0,
            group: group.map(str::to_owned),
        }
    }

    #[test]
    fn circle_messages_are_not_part_of_the_authors_conversation() {
        let bob = Conversation::Person(handle("bob"));
        let circle = Conversation::Circle("tuesday".to_owned());
        assert!(bob.includes(&message("bob", None)));
        assert!(!bob.includes(&message("bob", Some("tuesday"))));
        assert!(!bob.includes(&message("carol", None)));
        assert!(circle.includes(&message("bob", Some("tuesday"))));
        assert!(!circle.includes(&message("bob", Some("friday"))));
        assert!(!circle.includes(&message("bob", None)));
        assert!(bob.is_with(&handle("bob")));
        assert!(!circle.is_with(&handle("bob")));
    }

    #[test]
    fn sentences_name_the_person_or_the_circle() {
        assert_eq!(Conversation::Person(handle("bob")).with_whom(), "with @bob");
        let circle = Conversation::Circle("a\nb".to_owned());
        assert_eq!(circle.with_whom(), "in circle \"a\u{FFFD}b\"");
    }
}
