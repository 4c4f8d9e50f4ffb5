//! The chat screen drawn on ratatui's `TestBackend` at 80×24.

use kith::Message;
use kith_protocol::wire::Handle;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;

use super::state::{ChatState, Status};
use super::ui;
use crate::cli::conversation::Conversation;

fn handle(name: &str) -> Handle {
    Handle::parse(name).unwrap()
}

fn message(id: usize, outgoing: bool, text: &str) -> Message {
    Message {
        id: format!("{id:032x}"),
        conversation: handle("bob"),
        from: if outgoing {
            handle("alice")
        } else {
            handle("bob")
        },
        outgoing,
        text: text.to_owned(),
        sent_at: 1_700_000_000 + 60 * u64::try_from(id).unwrap(),
        received_at: 1_700_000_000,
        group: None,
    }
}

/// The chat with @bob, `verified` or not, `key_changed` or not.
fn with_bob(verified: bool, key_changed: bool, history: &[Message]) -> ChatState {
    let mut state = ChatState::new(Conversation::Person(handle("bob")), history);
    state.verified = verified;
    state.key_changed = key_changed;
    state
}

/// Draws `state` at 80×24 and returns the rows as text.
fn screen(state: &mut ChatState) -> Vec<String> {
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
    terminal.draw(|frame| ui::draw(frame, state)).unwrap();
    rows(terminal.backend().buffer())
}

fn rows(buffer: &Buffer) -> Vec<String> {
    let area = buffer.area;
    (0..area.height)
        .map(|y| {
            (0..area.width)
                .map(|x| buffer[(x, y)].symbol())
                .collect::<String>()
        })
        .map(|row| row.trim_end().to_owned())
        .collect()
}

#[test]
fn title_messages_and_input_are_visible() {
    let history = [message(1, false, "hello alice"), message(2, true, "hi bob")];
    let mut state = with_bob(false, false, &history);
    state.input = "typing".to_owned();
    let rows = screen(&mut state);
    assert!(rows[0].contains("Chat with @bob"), "{rows:#?}");
    assert!(rows[0].contains("not verified"));
    assert_eq!(rows[20], "22:14 @bob: hello alice");
    assert_eq!(rows[21], "22:15 you: hi bob");
    assert!(rows[22].contains("Esc"));
    assert_eq!(rows[23], "> typing");
}

#[test]
fn long_messages_wrap() {
    let long = "word ".repeat(40);
    let mut state = with_bob(true, false, &[message(1, false, &long)]);
    let rows = screen(&mut state);
    assert!(rows[0].contains("verified"));
    let body: Vec<&String> = rows[1..22].iter().filter(|r| !r.is_empty()).collect();
    assert_eq!(body.len(), 3, "{rows:#?}");
    assert!(body[0].starts_with("22:14 @bob: word word"));
    assert!(body[1].starts_with("  word"));
    assert!(rows.iter().all(|r| r.chars().count() <= 80));
}

#[test]
fn newest_at_the_bottom_and_page_up_scrolls() {
    let history: Vec<Message> = (0..50)
        .map(|i| message(i, false, &format!("n{i}")))
        .collect();
    let mut state = with_bob(false, false, &history);
    let rows = screen(&mut state);
    assert!(rows[21].ends_with("n49"), "{rows:#?}");
    assert!(rows[1].ends_with("n29"));
    state.on_key(crossterm::event::KeyEvent::from(
        crossterm::event::KeyCode::PageUp,
    ));
    let rows = screen(&mut state);
    assert!(rows[21].ends_with("n29"), "{rows:#?}");
    assert!(rows[22].contains("more rows below"));
    for _ in 0..10 {
        state.on_key(crossterm::event::KeyEvent::from(
            crossterm::event::KeyCode::PageUp,
        ));
    }
    let rows = screen(&mut state);
    assert!(rows[1].ends_with("n0"), "{rows:#?}");
}

#[test]
fn key_change_and_errors_are_shown() {
    let mut state = with_bob(true, true, &[]);
    let error = kith::Error::KeyChanged {
        handle: handle("bob"),
    };
    state.on_send_error("draft".to_owned(), &error);
    let rows = screen(&mut state);
    assert!(rows[0].contains("SAFETY NUMBER CHANGED"), "{rows:#?}");
    assert!(rows.iter().any(|r| r.contains("safety number has changed")));
    assert!(matches!(state.status, Some(Status::Error(_))));
    assert_eq!(rows[23], "> draft");
    assert!(
        rows[1..20]
            .iter()
            .any(|r| r.contains("No messages with @bob yet."))
    );
}

#[test]
fn long_input_shows_its_end() {
    let mut state = with_bob(false, false, &[]);
    state.input = format!("{}END", "x".repeat(200));
    let rows = screen(&mut state);
    assert!(rows[23].starts_with("> x"));
    assert!(rows[23].ends_with("END"));
}

fn circle_message(id: usize, from: &str, text: &str) -> Message {
    Message {
        conversation: handle(from),
        from: handle(from),
        outgoing: from == "alice",
        group: Some("Tuesday group".to_owned()),
        ..message(id, false, text)
    }
}

fn tuesday(history: &[Message]) -> ChatState {
    let mut state = ChatState::new(Conversation::Circle("Tuesday group".to_owned()), history);
    state.members = 4;
    state
}

#[test]
fn a_circle_shows_its_name_members_and_authors() {
    let history = [
        circle_message(1, "bob", "hello all"),
        circle_message(2, "carol", "hi bob"),
        circle_message(3, "alice", "hi both"),
    ];
    let mut state = tuesday(&history);
    let rows = screen(&mut state);
    assert_eq!(rows[0], " Circle Tuesday group (4 members)", "{rows:#?}");
    assert_eq!(rows[19], "22:14 @bob: hello all");
    assert_eq!(rows[20], "22:15 @carol: hi bob");
    assert_eq!(rows[21], "22:16 you: hi both");
    assert!(rows[22].contains("Esc"));
    assert!(rows.iter().all(|r| r.chars().count() <= 80));
}

#[test]
fn an_empty_circle_and_its_changes() {
    let mut state = tuesday(&[]);
    state.on_event(&kith::Event::GroupChanged {
        group: "Tuesday group".to_owned(),
        description: "@dana was added by @alice".to_owned(),
    });
    let rows = screen(&mut state);
    assert!(
        rows[1..22]
            .iter()
            .any(|r| r.contains("No messages in circle \"Tuesday group\" yet.")),
        "{rows:#?}"
    );
    assert_eq!(rows[22], "[Tuesday group] @dana was added by @alice");
    assert_eq!(rows[23], ">");
}

#[test]
fn live_circle_messages_appear_and_others_are_announced() {
    let mut state = tuesday(&[]);
    let live = circle_message(5, "dana", "made it");
    state.on_event(&kith::Event::Message(live));
    state.on_event(&kith::Event::Message(message(6, false, "psst")));
    let rows = screen(&mut state);
    assert_eq!(rows[21], "22:18 @dana: made it", "{rows:#?}");
    assert!(rows[22].contains("New message from @bob"));
}
