//! Drawing the chat screen: a title row, the conversation (newest at the bottom), a status row
//! and the input row. Works from 80×24 down to a few columns.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use kith_protocol::wire::Handle;

use super::state::{ChatState, Entry, Status};
use super::wrap::{width, wrap};
use crate::cli::conversation::Conversation;
use crate::cli::format::{plural, sanitize_name, utc_time};

/// The status row when there is nothing to report.
const HINT: &str = "Enter: send · PgUp/PgDn: scroll · Esc: quit";
/// Rows the status may take before it is cut.
const STATUS_MAX_ROWS: usize = 6;
/// Indentation of a message's continuation rows.
const INDENT: &str = "  ";
/// What the input row starts with.
const PROMPT: &str = "> ";

/// Draws the whole screen; keeps the state's scroll position within range.
pub(super) fn draw(frame: &mut Frame, state: &mut ChatState) {
    let area = frame.area();
    let status = status_lines(state, usize::from(area.width));
    let status_rows = u16::try_from(status.len()).unwrap_or(1);
    let [title, messages, status_area, input] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(status_rows),
        Constraint::Length(1),
    ])
    .areas(area);
    frame.render_widget(Paragraph::new(title_line(state)), title);
    render_messages(frame, state, messages);
    frame.render_widget(Paragraph::new(status), status_area);
    render_input(frame, state, input);
}

fn title_line(state: &ChatState) -> Line<'static> {
    let bar = Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD);
    match &state.conversation {
        Conversation::Person(peer) => Line::from(vec![
            Span::styled(format!(" Chat with @{peer} "), bar),
            Span::raw(" "),
            trust_label(state, peer),
        ]),
        Conversation::Circle(name) => {
            let members = plural(state.members, "member");
            let title = format!(" Circle {} ({members}) ", sanitize_name(name));
            Line::from(Span::styled(title, bar))
        }
    }
}

/// Whether the person's safety number is verified, or changed.
fn trust_label(state: &ChatState, peer: &Handle) -> Span<'static> {
    if state.key_changed {
        let label = format!(" SAFETY NUMBER CHANGED: kith verify {peer} ");
        let style = Style::new()
            .fg(Color::White)
            .bg(Color::Red)
            .add_modifier(Modifier::BOLD);
        Span::styled(label, style)
    } else if state.verified {
        Span::styled(" verified ", Style::new().fg(Color::Black).bg(Color::Green))
    } else {
        let style = Style::new().fg(Color::Black).bg(Color::Yellow);
        Span::styled(" not verified ", style)
    }
}

/// Every row of the conversation at `columns` wide.
pub(super) fn conversation_lines(state: &ChatState, columns: usize) -> Vec<Line<'static>> {
    if state.entries.is_empty() {
        let text = format!("No messages {} yet.", state.conversation.with_whom());
        return vec![Line::styled(text, Style::new().add_modifier(Modifier::DIM))];
    }
    state
        .entries
        .iter()
        .flat_map(|entry| entry_lines(entry, columns))
        .collect()
}

fn entry_lines(entry: &Entry, columns: usize) -> Vec<Line<'static>> {
    let time = utc_time(entry.sent_at);
    let (author, colour) = match &entry.author {
        None => ("you".to_owned(), Color::Cyan),
        Some(handle) => (format!("@{handle}"), Color::Yellow),
    };
    let prefix = width(&time) + 1 + width(&author) + 2;
    let rows = wrap(
        &entry.text,
        columns.saturating_sub(prefix),
        columns.saturating_sub(INDENT.len()),
    );
    let mut rows = rows.into_iter();
    let first = Line::from(vec![
        Span::styled(time, Style::new().add_modifier(Modifier::DIM)),
        Span::raw(" "),
        Span::styled(author, Style::new().fg(colour).add_modifier(Modifier::BOLD)),
        Span::raw(": "),
        Span::raw(rows.next().unwrap_or_default()),
    ]);
    let rest = rows.map(|row| Line::from(vec![Span::raw(INDENT), Span::raw(row)]));
    std::iter::once(first).chain(rest).collect()
}

/// The rows that fit, the newest at the bottom edge, `state.scroll` rows up.
fn render_messages(frame: &mut Frame, state: &mut ChatState, area: Rect) {
    let lines = conversation_lines(state, usize::from(area.width));
    let height = usize::from(area.height);
    state.fit(lines.len().saturating_sub(height), height);
    let end = lines.len() - state.scroll.min(lines.len());
    let start = end.saturating_sub(height);
    let visible: Vec<Line<'static>> = lines.into_iter().skip(start).take(end - start).collect();
    let shown = u16::try_from(visible.len())
        .unwrap_or(area.height)
        .min(area.height);
    let rect = Rect {
        y: area.y + area.height - shown,
        height: shown,
        ..area
    };
    frame.render_widget(Paragraph::new(visible), rect);
}

fn status_lines(state: &ChatState, columns: usize) -> Vec<Line<'static>> {
    let (text, style) = match &state.status {
        Some(Status::Error(text)) => (text.clone(), Style::new().fg(Color::Red)),
        Some(Status::Notice(text)) => (text.clone(), Style::new().fg(Color::Yellow)),
        None if state.scroll > 0 => {
            let text = format!("↓ {} more rows below (PgDn, End) · Esc: quit", state.scroll);
            (text, Style::new().add_modifier(Modifier::DIM))
        }
        None => (HINT.to_owned(), Style::new().add_modifier(Modifier::DIM)),
    };
    let mut rows = wrap(&text, columns, columns);
    if rows.len() > STATUS_MAX_ROWS {
        rows.truncate(STATUS_MAX_ROWS);
        if let Some(last) = rows.last_mut() {
            last.pop();
            last.push('…');
        }
    }
    rows.into_iter()
        .map(|row| Line::styled(row, style))
        .collect()
}

/// The input row, showing the end of the text when it is wider than the screen.
fn render_input(frame: &mut Frame, state: &ChatState, area: Rect) {
    let room = usize::from(area.width).saturating_sub(PROMPT.len() + 1);
    let visible = tail(&state.input, room);
    let cursor = u16::try_from(PROMPT.len() + width(visible)).unwrap_or(area.width);
    let line = Line::from(vec![
        Span::styled(PROMPT, Style::new().add_modifier(Modifier::BOLD)),
        Span::raw(visible),
    ]);
    frame.render_widget(Paragraph::new(line), area);
    frame.set_cursor_position((area.x + cursor.min(area.width.saturating_sub(1)), area.y));
}

/// The longest end of `text` at most `columns` wide.
fn tail(text: &str, columns: usize) -> &str {
    let mut used = 0;
    for (start, c) in text.char_indices().rev() {
        used += width(&text[start..start + c.len_utf8()]);
        if used > columns {
            return &text[start + c.len_utf8()..];
        }
    }
    text
}
