//! What the chat screen shows, and how keys and the client's events change it. No I/O here.
//! One conversation type serves both kinds of chat: with a person and with a circle.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use kith::{Event, Message};
use kith_protocol::wire::Handle;

use crate::cli::conversation::Conversation;
use crate::cli::format::{gap_notice, group_notice, sanitize, sanitize_name};
use crate::cli::group_format::handle_list;

/// One message on screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    /// The message id, to show each message once.
    pub(super) id: String,
    /// Who wrote it; `None` when this account did (on this or another device).
    pub(super) author: Option<Handle>,
    /// The text, made safe for the terminal.
    pub(super) text: String,
    /// When it was sent (seconds since the Unix epoch).
    pub(super) sent_at: u64,
}

impl Entry {
    fn of(message: &Message) -> Self {
        Self {
            id: message.id.clone(),
            author: (!message.outgoing).then(|| message.from.clone()),
            text: sanitize(&message.text),
            sent_at: message.sent_at,
        }
    }
}

/// The status line: a notice, or an error from the last action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Status {
    /// Something worth knowing (a message in another conversation, …).
    Notice(String),
    /// Something failed.
    Error(String),
}

/// What the event loop should do after a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Action {
    /// Nothing beyond redrawing.
    Redraw,
    /// Send this text to the conversation.
    Send(String),
    /// Leave the chat.
    Quit,
}

/// A message this device sent, to a person or a circle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Delivered {
    /// The message id.
    pub(super) id: String,
    /// When it was sent (seconds since the Unix epoch).
    pub(super) sent_at: u64,
    /// Circle members it was not sent to, because their safety number changed.
    pub(super) skipped: Vec<Handle>,
}

/// The whole screen's state.
#[derive(Debug)]
pub(super) struct ChatState {
    /// Who the conversation is with (a circle by its name, as its messages carry it).
    pub(super) conversation: Conversation,
    /// Whether the user confirmed the person's safety number (one-on-one only).
    pub(super) verified: bool,
    /// Whether the person's key changed and waits for confirmation (one-on-one only).
    pub(super) key_changed: bool,
    /// How many members the circle has, this account included (circles only).
    pub(super) members: usize,
    /// The conversation, oldest first.
    pub(super) entries: Vec<Entry>,
    /// What the user is typing.
    pub(super) input: String,
    /// How many rows the view is scrolled up from the newest message.
    pub(super) scroll: usize,
    /// Rows of the message area at the last draw (a page for PageUp/PageDown).
    pub(super) page: usize,
    /// The status line, if any.
    pub(super) status: Option<Status>,
}

impl ChatState {
    /// The state for `conversation` and its stored history; nothing verified, no members.
    pub(super) fn new(conversation: Conversation, history: &[Message]) -> Self {
        let mut state = Self {
            conversation,
            verified: false,
            key_changed: false,
            members: 0,
            entries: Vec::new(),
            input: String::new(),
            scroll: 0,
            page: 1,
            status: None,
        };
        history.iter().for_each(|m| state.push(Entry::of(m)));
        state
    }

    fn push(&mut self, entry: Entry) {
        if !self.entries.iter().any(|e| e.id == entry.id) {
            self.entries.push(entry);
        }
    }
    /// Handles a key press.
    pub(super) fn on_key(&mut self, key: KeyEvent) -> Action {
        let control = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Esc => return Action::Quit,
            KeyCode::Char('c' | 'd') if control => return Action::Quit,
            KeyCode::Enter => return self.take_input(),
            KeyCode::Char(c) if !control => self.input.push(c),
            KeyCode::Backspace => {
                self.input.pop();
            }
            KeyCode::PageUp => self.scroll += self.page.saturating_sub(1).max(1),
            KeyCode::PageDown => {
                self.scroll = self
                    .scroll
                    .saturating_sub(self.page.saturating_sub(1).max(1))
            }
            KeyCode::Up => self.scroll += 1,
            KeyCode::Down => self.scroll = self.scroll.saturating_sub(1),
            KeyCode::End => self.scroll = 0,
            _ => {}
        }
        Action::Redraw
    }

    fn take_input(&mut self) -> Action {
        if self.input.trim().is_empty() {
            return Action::Redraw;
        }
        self.status = Some(Status::Notice("Sending…".to_owned()));
        Action::Send(std::mem::take(&mut self.input))
    }

    /// Keeps the scroll position within what the message area can show.
    pub(super) fn fit(&mut self, max_scroll: usize, page: usize) {
        self.scroll = self.scroll.min(max_scroll);
        self.page = page.max(1);
    }

    /// The message was sent: show it, and who it skipped.
    pub(super) fn on_sent(&mut self, text: &str, sent: Delivered) {
        self.push(Entry {
            id: sent.id,
            author: None,
            text: sanitize(text),
            sent_at: sent.sent_at,
        });
        self.status = skipped_notice(&sent.skipped).map(Status::Error);
        self.scroll = 0;
    }

    /// Sending failed: give the text back to the input line and show why.
    pub(super) fn on_send_error(&mut self, text: String, error: &kith::Error) {
        if let kith::Error::KeyChanged { handle } = error
            && self.conversation.is_with(handle)
        {
            self.key_changed = true;
        }
        self.input = text;
        self.status = Some(Status::Error(error.to_string()));
    }

    /// Shows an error that is not about a particular message.
    pub(super) fn on_error(&mut self, error: &kith::Error) {
        self.status = Some(Status::Error(error.to_string()));
    }

    /// Applies what the client reported while receiving.
    pub(super) fn on_event(&mut self, event: &Event) {
        let notice = match event {
            Event::Message(m) if self.conversation.includes(m) => {
                self.push(Entry::of(m));
                return;
            }
            Event::Message(m) if !m.outgoing => new_message_notice(m),
            Event::KeyChanged { handle } if self.conversation.is_with(handle) => {
                self.key_changed = true;
                self.verified = false;
                let notice = format!(
                    "@{handle}'s safety number changed: check it with `kith verify {handle}` \
                     before sending."
                );
                self.status = Some(Status::Error(notice));
                return;
            }
            Event::KeyChanged { handle } => {
                format!("@{handle}'s safety number changed (kith verify {handle}).")
            }
            Event::GroupChanged { group, description } => group_notice(group, description),
            Event::Dropped { reason } => format!("A message was dropped: {reason}"),
            Event::Gap { handle, missing } => gap_notice(handle, *missing),
            _ => return,
        };
        self.status = Some(Status::Notice(notice));
    }
}

/// Announces a message that belongs to another conversation.
fn new_message_notice(message: &Message) -> String {
    let from = &message.from;
    match &message.group {
        Some(group) => format!(
            "New message from @{from} in circle \"{}\".",
            sanitize_name(group)
        ),
        None => format!("New message from @{from} (kith chat {from})."),
    }
}

/// Why a circle message did not reach some members, if it did not.
fn skipped_notice(skipped: &[Handle]) -> Option<String> {
    let first = skipped.first()?;
    Some(format!(
        "Not sent to {}: their safety number changed (kith verify {first}).",
        handle_list(skipped)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle(name: &str) -> Handle {
        Handle::parse(name).unwrap()
    }

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn person(name: &str) -> ChatState {
        ChatState::new(Conversation::Person(handle(name)), &[])
    }

    fn message(id: &str, from: &str, with: &str, text: &str) -> Message {
        Message {
            id: id.to_owned(),
            conversation: handle(with),
            from: handle(from),
            outgoing: from == "alice",
            text: text.to_owned(),
            sent_at: 1_700_000_000,
            received_at: 1_700_000_001,
            group: None,
        }
    }

    #[test]
    fn typing_and_enter_send_the_input() {
        let mut state = person("bob");
        for c in "hi".chars() {
            assert_eq!(state.on_key(key(KeyCode::Char(c))), Action::Redraw);
        }
        state.on_key(key(KeyCode::Char('!')));
        state.on_key(key(KeyCode::Backspace));
        assert_eq!(
            state.on_key(key(KeyCode::Enter)),
            Action::Send("hi".to_owned())
        );
        assert!(state.input.is_empty());
        assert_eq!(state.on_key(key(KeyCode::Enter)), Action::Redraw);
    }

    #[test]
    fn escape_and_control_c_quit() {
        let mut state = person("bob");
        assert_eq!(state.on_key(key(KeyCode::Esc)), Action::Quit);
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(state.on_key(ctrl_c), Action::Quit);
    }

    #[test]
    fn messages_for_this_conversation_are_shown_once_others_announced() {
        let mut state = person("bob");
        let from_bob = message("01", "bob", "bob", "hello");
        state.on_event(&Event::Message(from_bob.clone()));
        state.on_event(&Event::Message(from_bob));
        assert_eq!(state.entries.len(), 1);
        state.on_event(&Event::Message(message("02", "carol", "carol", "hey")));
        assert_eq!(state.entries.len(), 1);
        let Some(Status::Notice(notice)) = &state.status else {
            panic!("no notice")
        };
        assert!(notice.contains("@carol"));
    }

    #[test]
    fn key_change_is_flagged() {
        let mut state = person("bob");
        state.verified = true;
        state.on_event(&Event::KeyChanged {
            handle: handle("bob"),
        });
        assert!(state.key_changed);
        assert!(!state.verified);
        assert!(matches!(state.status, Some(Status::Error(_))));
    }

    #[test]
    fn refused_send_keeps_the_text() {
        let mut state = person("bob");
        let error = kith::Error::KeyChanged {
            handle: handle("bob"),
        };
        state.on_send_error("draft".to_owned(), &error);
        assert_eq!(state.input, "draft");
        assert!(state.key_changed);
    }

    #[test]
    fn scrolling_stays_in_range() {
        let mut state = person("bob");
        state.fit(5, 10);
        state.on_key(key(KeyCode::PageUp));
        state.fit(5, 10);
        assert_eq!(state.scroll, 5);
        state.on_key(key(KeyCode::PageDown));
        assert_eq!(state.scroll, 0);
    }

    fn circle_message(id: &str, from: &str, group: &str) -> Message {
        Message {
            group: Some(group.to_owned()),
            ..message(id, from, from, "hello circle")
        }
    }

    #[test]
    fn a_circle_shows_its_messages_and_announces_the_rest() {
        let mut state = ChatState::new(Conversation::Circle("tuesday".to_owned()), &[]);
        state.on_event(&Event::Message(circle_message("01", "bob", "tuesday")));
        state.on_event(&Event::Message(circle_message("02", "alice", "tuesday")));
        assert_eq!(state.entries.len(), 2);
        assert_eq!(state.entries[0].author, Some(handle("bob")));
        assert_eq!(state.entries[1].author, None);
        state.on_event(&Event::Message(message("03", "bob", "bob", "just you")));
        state.on_event(&Event::Message(circle_message("04", "bob", "friday")));
        assert_eq!(state.entries.len(), 2);
        let Some(Status::Notice(notice)) = &state.status else {
            panic!("no notice")
        };
        assert!(notice.contains("circle \"friday\""), "{notice}");
        state.on_event(&Event::GroupChanged {
            group: "tuesday".to_owned(),
            description: "@dana joined".to_owned(),
        });
        assert_eq!(
            state.status,
            Some(Status::Notice("[tuesday] @dana joined".to_owned()))
        );
    }

    #[test]
    fn a_one_on_one_chat_ignores_circle_messages_of_the_same_person() {
        let mut state = person("bob");
        state.on_event(&Event::Message(circle_message("01", "bob", "tuesday")));
        assert!(state.entries.is_empty());
        assert!(matches!(state.status, Some(Status::Notice(_))));
    }

    #[test]
    fn sent_messages_show_and_skipped_members_are_named() {
        let mut state = ChatState::new(Conversation::Circle("tuesday".to_owned()), &[]);
        let sent = Delivered {
            id: "01".to_owned(),
            sent_at: 1_700_000_000,
            skipped: vec![handle("bob"), handle("carol")],
        };
        state.on_sent("hi all", sent);
        assert_eq!(state.entries[0].author, None);
        assert_eq!(state.entries[0].text, "hi all");
        let Some(Status::Error(error)) = &state.status else {
            panic!("no error")
        };
        assert!(error.contains("@bob, @carol") && error.contains("kith verify bob"));
        let key_changed = kith::Error::KeyChanged {
            handle: handle("bob"),
        };
        state.on_send_error("again".to_owned(), &key_changed);
        assert!(!state.key_changed);
        assert_eq!(state.input, "again");
    }
}
