//! `kith --help` runs and names every command. Its real purpose is to make `cargo test
//! --workspace` build the `kith` executable, which the end-to-end tests in `tests/tests/cli/`
//! run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

#[test]
fn help_lists_every_command() {
    let output = Command::new(env!("CARGO_BIN_EXE_kith"))
        .arg("--help")
        .output()
        .expect("run kith --help");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "kith --help failed: {output:?}");
    for command in [
        "init", "send", "receive", "chat", "history", "contacts", "verify",
    ] {
        assert!(
            stdout
                .lines()
                .any(|line| line.trim_start().starts_with(command)),
            "`{command}` missing from kith --help:\n{stdout}"
        );
    }
}
