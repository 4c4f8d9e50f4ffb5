//! `kith chat`: an interactive conversation on a full-screen terminal.
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
use std::time::Duration;

use anyhow::{Result, bail};
use crossterm::event::{Event as TermEvent, EventStream};
use futures_util::StreamExt;
use kith::{Client, Push};
use kith_protocol::wire::Handle;
use ratatui::DefaultTerminal;
use tokio::time::Instant;

use state::{Action, ChatState};

/// How long to wait before asking the relay again after the connection failed.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Refuses to start when standard input or output is not a terminal.
pub(crate) fn require_terminal() -> Result<()> {
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        bail!("kith chat needs a terminal. In scripts, use kith send and kith receive.");
    }
    Ok(())
}

/// Runs the chat with `peer` until the user quits.
pub(crate) async fn run(client: &mut Client, peer: Handle) -> Result<()> {
    let mut state = initial_state(client, peer)?;
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
                if on_terminal(client, &mut state, &mut terminal, event?).await? {
                    return Ok(());
                }
            }
            Step::Push(Ok(Some(push))) => process(client, &mut state, push).await,
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

/// The conversation so far and whether the peer is verified (all from the local store).
fn initial_state(client: &Client, peer: Handle) -> Result<ChatState> {
    let history = client.history(&peer, Some(200))?;
    let contact = client.contacts()?.into_iter().find(|c| c.handle == peer);
    let (verified, key_changed) = contact.map_or((false, false), |c| (c.verified, c.key_changed));
    Ok(ChatState::new(peer, verified, key_changed, &history))
}

/// Handles a terminal event; returns whether the user quit.
async fn on_terminal(
    client: &mut Client,
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
            let peer = state.peer.clone();
            match client.send_text(&peer, &text).await {
                Ok(sent) => state.on_sent(&text, &sent),
                Err(error) => state.on_send_error(text, &error),
            }
        }
    }
    Ok(false)
}

/// Decrypts and stores one push, then shows what it brought.
async fn process(client: &mut Client, state: &mut ChatState, push: Push) {
    match client.process(push).await {
        Ok(events) => events.iter().for_each(|event| state.on_event(event)),
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
