//! Unlocking: which home, which passphrase, opening the client; and writing to the terminal
//! without panicking when a pipe closes.

use std::io::{self, Write};
use std::path::PathBuf;

use anyhow::{Result, anyhow, bail};
use kith::{Client, Home, Passphrase};
use serde_json::Value;
use zeroize::Zeroizing;

/// The environment variable that supplies the passphrase non-interactively.
const PASSPHRASE_VAR: &str = "KITH_PASSPHRASE";

/// The home from `--home`/`KITH_HOME`, else the platform's data directory.
pub(crate) fn resolve_home(flag: Option<PathBuf>) -> Result<Home> {
    let path = flag.or_else(Home::default_location).ok_or_else(|| {
        anyhow!(
            "This system has no standard data directory for Kith. Choose one with --home DIR \
             or the KITH_HOME environment variable."
        )
    })?;
    Ok(Home::new(path))
}

/// The passphrase of an existing account.
pub(crate) fn existing_passphrase() -> Result<Passphrase> {
    if let Some(passphrase) = from_env() {
        return Ok(passphrase);
    }
    let mut typed = prompt("Passphrase: ")?;
    Ok(Passphrase::new(std::mem::take(&mut *typed)))
}

/// A new passphrase: from the environment, or typed twice on the terminal. Never empty.
pub(crate) fn new_passphrase() -> Result<Passphrase> {
    let empty =
        || anyhow!("The passphrase is empty. Choose one that only you know; nothing was created.");
    if let Ok(value) = std::env::var(PASSPHRASE_VAR) {
        if value.is_empty() {
            return Err(empty());
        }
        return Ok(Passphrase::new(value));
    }
    let mut first = prompt("Choose a passphrase for this device: ")?;
    if first.is_empty() {
        return Err(empty());
    }
    let second = prompt("Type it again: ")?;
    if *first != *second {
        bail!("The two passphrases differ; nothing was created. Run the command again.");
    }
    Ok(Passphrase::new(std::mem::take(&mut *first)))
}

fn from_env() -> Option<Passphrase> {
    std::env::var(PASSPHRASE_VAR).ok().map(Passphrase::new)
}

/// Asks on the terminal (not standard input) without echo.
fn prompt(text: &str) -> Result<Zeroizing<String>> {
    rpassword::prompt_password(text)
        .map(Zeroizing::new)
        .map_err(|_| anyhow!("No passphrase: set KITH_PASSPHRASE or run kith in a terminal"))
}

/// Opens the account in `home`, asking for the passphrase only if there is one.
pub(crate) fn open(home: &Home) -> Result<Client> {
    if !home.exists() {
        return Err(kith::Error::NoAccount {
            path: home.path().to_owned(),
        }
        .into());
    }
    let passphrase = existing_passphrase()?;
    Ok(Client::open(home, &passphrase)?)
}

/// Writes one line to standard output and flushes it, so scripts see it at once.
pub(crate) fn out(line: &str) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()
}

/// Writes one line per item to standard output: its JSON object with `json`, else its text.
pub(crate) fn out_each<T>(
    items: &[T],
    json: bool,
    as_json: impl Fn(&T) -> Value,
    as_line: impl Fn(&T) -> String,
) -> io::Result<()> {
    for item in items {
        let line = if json {
            as_json(item).to_string()
        } else {
            as_line(item)
        };
        out(&line)?;
    }
    Ok(())
}

/// Writes one line to standard error; a closed standard error is ignored.
pub(crate) fn note(line: &str) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}
