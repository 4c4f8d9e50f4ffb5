//! The `kith` command line: argument parsing, one function per command, the interactive chat.

mod account;
mod args;
mod chat;
mod conversation;
mod format;
mod group_args;
mod group_format;
mod groups;
mod messages;
mod session;

use anyhow::Result;
use kith::Client;

pub(crate) use args::Cli;
use args::Command;

/// Runs one command to completion.
pub(crate) async fn run(cli: Cli) -> Result<()> {
    let home = session::resolve_home(cli.global.home)?;
    if let Command::Init(args) = cli.command {
        return account::init(&home, args).await;
    }
    if let Command::Chat(_) = &cli.command {
        chat::require_terminal()?;
    }
    let mut client = session::open(&home)?;
    let result = dispatch(&mut client, cli.command).await;
    client.close().await;
    result
}

async fn dispatch(client: &mut Client, command: Command) -> Result<()> {
    match command {
        Command::Init(_) => Ok(()),
        Command::Send(args) => messages::send(client, args).await,
        Command::Receive(args) => messages::receive(client, args).await,
        Command::Chat(args) => chat::run(client, args.conversation()?).await,
        Command::History(args) => messages::history(client, args),
        Command::Contacts(args) => account::contacts(client, args),
        Command::Verify(args) => account::verify(client, args).await,
        Command::Group(args) => groups::run(client, args.command).await,
    }
}
