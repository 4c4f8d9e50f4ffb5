//! The local store: the passphrase guards it, nothing readable is left on disk (on the relay
//! either), and only the owner can read the files.

#[cfg(unix)]
use kith_tests::cli::dirs_under;
use kith_tests::cli::files_under;

use crate::{alice_and_bob, exchange, texts};

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_wrong_passphrase_unlocks_nothing_and_damages_nothing() {
    let (_relay, alice, bob) = alice_and_bob();
    alice.send("bob", "before the wrong passphrase");

    let commands: [&[&str]; 4] = [
        &["contacts"],
        &["history", "bob"],
        &["send", "bob", "never sent"],
        &["receive"],
    ];
    for args in commands {
        alice
            .kith_with_passphrase("not-the-passphrase", args)
            .failure()
            .stderr_mentions(&["passphrase is wrong"]);
    }

    assert_eq!(
        texts(&alice.history_json("bob")),
        ["before the wrong passphrase"]
    );
    assert_eq!(texts(&bob.receive_json()), ["before the wrong passphrase"]);
    exchange(&alice, &bob, "after the wrong passphrase");
    exchange(&bob, &alice, "still fine");
}

#[test]
fn no_message_text_or_passphrase_is_stored_in_the_clear() {
    let (mut relay, alice, bob) = alice_and_bob();
    let markers: Vec<String> = (0..4)
        .map(|i| format!("kith-marker-7f3a-{i}-{}", std::process::id()))
        .collect();
    alice.send("bob", &markers[0]);
    alice.send("bob", &markers[1]);
    assert_eq!(texts(&bob.receive_json()), [&markers[0], &markers[1]]);
    bob.send("alice", &markers[2]);
    // Left queued on the relay: it must be sealed there too.
    bob.send("alice", &markers[3]);
    relay.stop();

    let mut secrets: Vec<&str> = markers.iter().map(String::as_str).collect();
    secrets.extend([alice.passphrase(), bob.passphrase()]);
    for root in [relay.root(), alice.path(), bob.path()] {
        let files = files_under(root);
        assert!(
            !files.is_empty(),
            "nothing written under {}",
            root.display()
        );
        for file in files {
            let bytes = std::fs::read(&file).unwrap();
            for secret in &secrets {
                assert!(
                    !contains(&bytes, secret.as_bytes()),
                    "{secret:?} in the clear in {}",
                    file.display()
                );
            }
        }
    }
}

#[cfg(unix)]
#[test]
fn only_the_owner_can_read_a_home() {
    use std::os::unix::fs::PermissionsExt;

    let (_relay, alice, bob) = alice_and_bob();
    exchange(&alice, &bob, "private");
    let mode = |path: &std::path::Path| {
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    for home in [&alice, &bob] {
        let files = files_under(home.path());
        assert!(!files.is_empty());
        for file in &files {
            assert_eq!(mode(file), 0o600, "{}", file.display());
        }
        for dir in dirs_under(home.path()) {
            assert_eq!(mode(&dir), 0o700, "{}", dir.display());
        }
    }
}
