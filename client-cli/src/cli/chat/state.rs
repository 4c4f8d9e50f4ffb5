//! What the chat screen shows, and how keys and the client's events change it. No I/O here.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use kith::{Event, Message, Sent};
use kith_protocol::wire::Handle;

use crate::cli::format::sanitize;

/// One message on screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    /// The message id, to show each message once.
    pub(super) id: String,
    /// Whether this account wrote it (on this or another device).
    pub(super) mine: bool,
    /// The text, made safe for the terminal.
    pub(super) text: String,
    /// When it was sent (seconds since the Unix epoch).
    pub(super) sent_at: u64,
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
    /// Send this text to the peer.
    Send(String),
    /// Leave the chat.
    Quit,
}

/// The whole screen's state.
#[derive(Debug)]
pub(super) struct ChatState {
    /// Who the conversation is with.
    pub(super) peer: Handle,
    /// Whether the user confirmed the peer's safety number.
    pub(super) verified: bool,
    /// Whether the peer's key changed and waits for confirmation.
    pub(super) key_changed: bool,
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
    /// The state for a conversation with `peer` and its stored history.
    pub(super) fn new(
        peer: Handle,
        verified: bool,
        key_changed: bool,
        history: &[Message],
    ) -> Self {
        let mut state = Self {
            peer,
            verified,
            key_changed,
            entries: Vec::new(),
            input: String::new(),
            scroll: 0,
            page: 1,
            status: None,
        };
        history
            .iter()
            .for_each(|m| state.push(m.id.clone(), m.outgoing, &m.text, m.sent_at));
        state
    }

    fn push(&mut self, id: String, mine: bool, text: &str, sent_at: u64) {
        if !self.entries.iter().any(|e| e.id == id) {
            self.entries.push(Entry {
                id,
                mine,
                text: sanitize(text),
                sent_at,
            });
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

    /// The message was sent: show it.
    pub(super) fn on_sent(&mut self, text: &str, sent: &Sent) {
        self.push(sent.id.clone(), true, text, sent.sent_at);
        self.status = None;
        self.scroll = 0;
    }

    /// Sending failed: give the text back to the input line and show why.
    pub(super) fn on_send_error(&mut self, text: String, error: &kith::Error) {
        if matches!(error, kith::Error::KeyChanged { .. }) {
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
        match event {
            Event::Message(m) if m.conversation == self.peer => {
                self.push(m.id.clone(), m.outgoing, &m.text, m.sent_at);
            }
            Event::Message(m) if !m.outgoing => {
                let notice = format!("New message from @{} (kith chat {}).", m.from, m.from);
                self.status = Some(Status::Notice(notice));
            }
            Event::KeyChanged { handle } if *handle == self.peer => {
                self.key_changed = true;
                self.verified = false;
                let h = &self.peer;
                let notice = format!(
                    "@{h}'s safety number changed: check it with `kith verify {h}` before sending."
                );
                self.status = Some(Status::Error(notice));
            }
            Event::KeyChanged { handle } => {
                let notice = format!("@{handle}'s safety number changed (kith verify {handle}).");
                self.status = Some(Status::Notice(notice));
            }
            Event::Dropped { reason } => {
                self.status = Some(Status::Notice(format!("A message was dropped: {reason}")));
            }
            _ => {}
        }
    }
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
        let mut state = ChatState::new(handle("bob"), false, false, &[]);
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
        let mut state = ChatState::new(handle("bob"), false, false, &[]);
        assert_eq!(state.on_key(key(KeyCode::Esc)), Action::Quit);
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(state.on_key(ctrl_c), Action::Quit);
    }

    #[test]
    fn messages_for_this_conversation_are_shown_once_others_announced() {
        let mut state = ChatState::new(handle("bob"), true, false, &[]);
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
        let mut state = ChatState::new(handle("bob"), true, false, &[]);
        state.on_event(&Event::KeyChanged {
            handle: handle("bob"),
        });
        assert!(state.key_changed);
        assert!(!state.verified);
        assert!(matches!(state.status, Some(Status::Error(_))));
    }

    #[test]
    fn refused_send_keeps_the_text() {
        let mut state = ChatState::new(handle("bob"), true, false, &[]);
        let error = kith::Error::KeyChanged {
            handle: handle("bob"),
        };
        state.on_send_error("draft".to_owned(), &error);
        assert_eq!(state.input, "draft");
        assert!(state.key_changed);
    }

    #[test]
    fn scrolling_stays_in_range() {
        let mut state = ChatState::new(handle("bob"), false, false, &[]);
        state.fit(5, 10);
        state.on_key(key(KeyCode::PageUp));
        state.fit(5, 10);
        assert_eq!(state.scroll, 5);
        state.on_key(key(KeyCode::PageDown));
        assert_eq!(state.scroll, 0);
    }
}
