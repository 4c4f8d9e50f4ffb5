//! `kith-relay backup` and `restore` driven as an operator would: a backup of a running relay
//! with queued messages, restored into a new data directory, delivers those messages from a
//! relay started on it; damaged, truncated and foreign files are refused before anything is
//! created, and so is a data directory that already holds a relay's data.

use std::path::Path;
use std::process::Command;

use kith_tests::cli::{COMMAND_TIMEOUT, Run, relay_bin, run};

use crate::{alice_and_bob, assert_received, exchange, texts};

/// `kith-relay ARGS` with no `KITH_*` variables of the caller.
fn kith_relay(args: &[&str]) -> Run {
    let mut command = Command::new(relay_bin());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("KITH_") {
            command.env_remove(name);
        }
    }
    command.args(args);
    run(command, None, COMMAND_TIMEOUT)
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

#[test]
fn a_backup_of_a_running_relay_restores_with_its_queued_messages() {
    let (mut relay, alice, bob) = alice_and_bob();
    alice.send("bob", "queued before the backup");
    alice.send("bob", "also queued");
    let backups = tempfile::tempdir().expect("temporary directory");
    let file = backups.path().join("kith.kbak");

    let made = kith_relay(&[
        "backup",
        "--to",
        path(&file),
        "--data",
        path(&relay.data_dir()),
    ])
    .success();
    assert!(made.stdout.contains("from the running relay"), "{made:?}");
    assert!(
        made.stdout
            .contains("2 accounts, 2 devices, 2 queued envelopes"),
        "{made:?}"
    );
    let contents = std::fs::read(&file).expect("the backup file");
    let head = String::from_utf8_lossy(&contents[..contents.len().min(4096)]).into_owned();
    let mut lines = head.lines();
    assert_eq!(lines.next(), Some("KITH-RELAY-BACKUP 1"));
    assert!(
        lines
            .next()
            .is_some_and(|l| l.contains("no message contents")),
        "{head}"
    );
    let again = kith_relay(&[
        "backup",
        "--to",
        path(&file),
        "--data",
        path(&relay.data_dir()),
    ])
    .failure()
    .stderr_mentions(&["exists already", "--force"]);
    drop(again);
    assert_eq!(
        relay.stat("queued_envelopes"),
        2,
        "the backup took nothing away"
    );
    relay.stop();

    kith_relay(&[
        "restore",
        "--from",
        path(&file),
        "--data",
        path(&relay.data_dir()),
    ])
    .failure()
    .stderr_mentions(&["already holds a relay's data", "--force"]);

    let mut restored = relay.copy_stopped();
    std::fs::remove_dir_all(restored.data_dir()).expect("empty the copy");
    let done = kith_relay(&[
        "restore",
        "--from",
        path(&file),
        "--data",
        path(&restored.data_dir()),
    ])
    .success();
    assert!(done.stdout.contains("Restored"), "{done:?}");
    assert!(done.stdout.contains("kith-relay serve --data"), "{done:?}");

    restored.start_again();
    assert_eq!(
        restored.fingerprint(),
        relay.fingerprint(),
        "same certificate"
    );
    let received = bob.receive_json();
    assert_eq!(
        texts(&received),
        ["queued before the backup", "also queued"],
        "{received:?}"
    );
    assert_received(&received[0], "alice", "queued before the backup");
    exchange(&bob, &alice, "after the restore");
    exchange(&alice, &bob, "and on we go");
}

#[test]
fn damaged_truncated_and_foreign_backups_are_refused() {
    let (mut relay, alice, _bob) = alice_and_bob();
    alice.send("bob", "something to back up");
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("good.kbak");
    relay.stop();
    // The relay is stopped: the backup reads its store directly.
    let made = kith_relay(&[
        "backup",
        "--to",
        path(&file),
        "--data",
        path(&relay.data_dir()),
    ])
    .success();
    assert!(made.stdout.contains("stopped relay's store"), "{made:?}");
    let good = std::fs::read(&file).expect("the backup");

    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x01;
    let truncated = good[..good.len() - 100].to_vec();
    let cases: [(&str, Vec<u8>, &[&str]); 4] = [
        (
            "flipped.kbak",
            flipped,
            &["is damaged", "checksum", "Nothing was restored"],
        ),
        ("truncated.kbak", truncated, &["is damaged", "truncated"]),
        ("empty.kbak", Vec::new(), &["is not a kith-relay backup"]),
        (
            "newer.kbak",
            b"KITH-RELAY-BACKUP 9\n{}\n".to_vec(),
            &["format 9", "reads format 1"],
        ),
    ];
    for (name, bytes, expected) in cases {
        let bad = dir.path().join(name);
        std::fs::write(&bad, bytes).expect("write a bad backup");
        let target = dir.path().join(format!("data-{name}"));
        kith_relay(&["restore", "--from", path(&bad), "--data", path(&target)])
            .failure()
            .stderr_mentions(expected);
        assert!(!target.exists(), "{name}: nothing may be created");
    }
}
