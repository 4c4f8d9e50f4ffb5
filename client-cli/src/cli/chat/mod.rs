//! `kith chat`: an interactive conversation with a person or a circle on a full-screen
//! terminal.
//!
//! The passphrase is read and the client opened before this module runs, so the prompt works
//! normally. [`run`] then enters raw mode and the alternate screen behind a [`TerminalGuard`]
//! that restores the terminal however the chat ends, and loops: draw, wait for a key or a push
//! from the relay, apply it. [`Client::process`] is not cancel-safe, so it runs after the
//! `select!` has finished, never inside it.

mod state;
mod ui;
mod wrap;

#[cfg(test)]
mod tests;

use std::io::IsTerminal;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use crossterm::event::{Event as TermEvent, EventStream};
use futures_util::StreamExt;
use kith::{Client, Event, Push};
use ratatui::DefaultTerminal;
use tokio::time::Instant;

use super::conversation::Conversation;
use state::{Action, ChatState, Delivered};

/// How many stored messages the chat starts with.
const HISTORY: usize = 200;

/// How long to wait before asking the relay again after the connection failed.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Refuses to start when standard input or output is not a terminal.
pub(crate) fn require_terminal() -> Result<()> {
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        bail!("kith chat needs a terminal. In scripts, use kith send and kith receive.");
    }
    Ok(())
}

/// Runs the chat until the user quits.
pub(crate) async fn run(client: &mut Client, conversation: Conversation) -> Result<()> {
    let (target, mut state) = initial_state(client, conversation)?;
    let (_guard, mut terminal) = TerminalGuard::enter()?;
    let mut events = EventStream::new();
    let mut retry_at: Option<Instant> = None;
    loop {
        terminal.draw(|frame| ui::draw(frame, &mut state))?;
        let step = tokio::select! {
            event = events.next() => Step::Terminal(event),
            push = client.next_push(None), if retry_at.is_none() => Step::Push(push),
            () = sleep_until(retry_at), if retry_at.is_some() => Step::Retry,
        };
        match step {
            Step::Terminal(None) => return Ok(()),
            Step::Terminal(Some(event)) => {
                if on_terminal(client, &target, &mut state, &mut terminal, event?).await? {
                    return Ok(());
                }
            }
            Step::Push(Ok(Some(push))) => process(client, &target, &mut state, push).await,
            Step::Push(Ok(None)) => {}
            Step::Push(Err(error)) => {
                state.on_error(&error);
                retry_at = Some(Instant::now() + RETRY_AFTER);
            }
            Step::Retry => retry_at = None,
        }
    }
}

/// What woke the event loop.
enum Step {
    Terminal(Option<std::io::Result<TermEvent>>),
    Push(Result<Option<Push>, kith::Error>),
    Retry,
}

async fn sleep_until(deadline: Option<Instant>) {
    if let Some(deadline) = deadline {
        tokio::time::sleep_until(deadline).await;
    }
}

/// The conversation so far and what the title shows (all from the local store).
///
/// Returns the conversation twice: `target` names it for the library (a circle by its id,
/// which no other circle shares), the state names it for display and for matching incoming
/// messages (a circle by its name, as its messages carry it).
fn initial_state(client: &Client, conversation: Conversation) -> Result<(Conversation, ChatState)> {
    let (target, shown) = match conversation {
        Conversation::Circle(group) => {
            let info = client.group(&group)?;
            (
                Conversation::Circle(info.id),
                Conversation::Circle(info.name),
            )
        }
        person => (person.clone(), person),
    };
    let history = target.history(client, Some(HISTORY))?;
    let mut state = ChatState::new(shown, &history);
    refresh(client, &target, &mut state)?;
    Ok((target, state))
}

/// Reads what the title shows: the person's verification, or the circle's member count.
fn refresh(
    client: &Client,
    target: &Conversation,
    state: &mut ChatState,
) -> Result<(), kith::Error> {
    match target {
        Conversation::Person(peer) => {
            let contact = client.contacts()?.into_iter().find(|c| c.handle == *peer);
            (state.verified, state.key_changed) =
                contact.map_or((false, false), |c| (c.verified, c.key_changed));
        }
        Conversation::Circle(id) => state.members = client.group(id)?.members.len(),
    }
    Ok(())
}

/// Handles a terminal event; returns whether the user quit.
async fn on_terminal(
    client: &mut Client,
    target: &Conversation,
    state: &mut ChatState,
    terminal: &mut DefaultTerminal,
    event: TermEvent,
) -> Result<bool> {
    let TermEvent::Key(key) = event else {
        return Ok(false);
    };
    if !key.is_press() {
        return Ok(false);
    }
    match state.on_key(key) {
        Action::Quit => return Ok(true),
        Action::Redraw => {}
        Action::Send(text) => {
            terminal.draw(|frame| ui::draw(frame, state))?;
            match send(client, target, &text).await {
                Ok(sent) => state.on_sent(&text, sent),
                Err(error) => state.on_send_error(text, &error),
            }
        }
    }
    Ok(false)
}

/// Sends `text` to the person or the circle.
async fn send(
    client: &mut Client,
    target: &Conversation,
    text: &str,
) -> Result<Delivered, kith::Error> {
    Ok(match target {
        Conversation::Person(peer) => {
            let sent = client.send_text(peer, text).await?;
            Delivered {
                id: sent.id,
                sent_at: sent.sent_at,
                skipped: Vec::new(),
            }
        }
        Conversation::Circle(group) => {
            let sent = client.group_send(group, text).await?;
            let now = SystemTime::now().duration_since(UNIX_EPOCH);
            Delivered {
                id: sent.id,
                sent_at: now.map_or(0, |d| d.as_secs()),
                skipped: sent.skipped,
            }
        }
    })
}

/// Decrypts and stores one push, then shows what it brought; a change to a circle updates
/// the title.
async fn process(client: &mut Client, target: &Conversation, state: &mut ChatState, push: Push) {
    match client.process(push).await {
        Ok(events) => {
            events.iter().for_each(|event| state.on_event(event));
            let changed = |e: &Event| matches!(e, Event::GroupChanged { .. });
            if events.iter().any(changed) {
                // After leaving or being removed the circle is gone: keep the last count.
                let _ = refresh(client, target, state);
            }
        }
        Err(error) => state.on_error(&error),
    }
}

/// Raw mode and the alternate screen, undone on drop (any return, error or panic).
struct TerminalGuard;

impl TerminalGuard {
    fn enter() -> Result<(Self, DefaultTerminal)> {
        // The guard exists before the terminal changes, so a half-done setup is undone too.
        let guard = Self;
        let terminal = ratatui::try_init()?;
        Ok((guard, terminal))
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        ratatui::restore();
    }
}
