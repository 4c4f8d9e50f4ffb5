//! Membership of a circle: an added member reads only what is sent after, a removed or departed
//! one reads nothing new, and only an admin can change who belongs.

use kith_tests::cli::Home;

use crate::groups::{
    CIRCLE, assert_members, circle_history, circle_of, everyone_gets, learn_circle, receive_circle,
};

/// `kith receive` on each of `homes` prints no message (a membership notice may come on
/// standard error).
#[track_caller]
fn nothing_for(homes: &[&Home]) {
    for home in homes {
        let out = home.kith(["receive"]).success();
        assert!(out.lines().is_empty(), "no message expected: {out:?}");
    }
}

#[test]
fn an_added_member_reads_only_what_follows() {
    let (relay, [alice, bob, carol]) = circle_of(["alice", "bob", "carol"]);
    everyone_gets(&alice, "before dave", &[&bob, &carol]);
    everyone_gets(&bob, "also before dave", &[&alice, &carol]);
    let dave = Home::new("dave");
    dave.init(&relay);

    alice.group(&["add", CIRCLE, "dave"]).success();
    learn_circle(&dave);
    nothing_for(&[&bob, &carol]);
    assert_members(
        &[&alice, &bob, &carol, &dave],
        &["alice", "bob", "carol", "dave"],
    );
    assert!(circle_history(&dave).is_empty(), "dave reads the past");

    everyone_gets(&alice, "welcome dave", &[&bob, &carol, &dave]);
    everyone_gets(&dave, "thanks", &[&alice, &bob, &carol]);
    everyone_gets(&carol, "hi dave", &[&alice, &bob, &dave]);
    assert_eq!(circle_history(&dave), ["welcome dave", "thanks", "hi dave"]);
}

#[test]
fn a_removed_member_reads_nothing_new() {
    let (relay, [alice, bob, carol]) = circle_of(["alice", "bob", "carol"]);
    everyone_gets(&alice, "before the removal", &[&bob, &carol]);

    alice.group(&["remove", CIRCLE, "carol"]).success();
    nothing_for(&[&bob]);
    assert_members(&[&alice, &bob], &["alice", "bob"]);
    everyone_gets(&alice, "carol is gone", &[&bob]);
    everyone_gets(&bob, "just us", &[&alice]);

    // Carol was not told: her client still sends, with keys the others no longer accept.
    carol.group_send(CIRCLE, "am I still here?");
    let history = circle_history(&carol);
    assert_eq!(history, ["before the removal", "am I still here?"]);
    nothing_for(&[&alice, &bob]);
    for home in [&alice, &bob] {
        assert_eq!(
            circle_history(home),
            ["before the removal", "carol is gone", "just us"]
        );
    }

    // Alice and bob have received everything: whatever is still queued is carol's.
    eprintln!(
        "queued for the removed member: {} entries",
        relay.stat("queued_envelopes")
    );
    nothing_for(&[&carol]);
    assert_eq!(
        relay.stat("queued_envelopes"),
        0,
        "carol's mailbox is empty after her receive"
    );
    assert_eq!(circle_history(&carol), history);
}

#[test]
fn only_an_admin_changes_the_members() {
    let (relay, [alice, bob, carol]) = circle_of(["alice", "bob", "carol"]);
    let erin = Home::new("erin");
    erin.init(&relay);
    let refusal = format!("Only an admin of \"{CIRCLE}\" can add or remove members");

    bob.group(&["add", CIRCLE, "erin"])
        .failure()
        .stderr_mentions(&[&refusal]);
    bob.group(&["remove", CIRCLE, "alice"])
        .failure()
        .stderr_mentions(&[&refusal]);

    nothing_for(&[&alice, &carol, &erin]);
    assert!(erin.group_list_json().is_empty(), "erin was added");
    assert_members(&[&alice, &bob, &carol], &["alice", "bob", "carol"]);
    everyone_gets(&alice, "still the three of us", &[&bob, &carol]);
    assert!(erin.receive_json().is_empty());
}

#[test]
fn a_member_who_leaves_reads_nothing_new() {
    let (_relay, [alice, bob, carol]) = circle_of(["alice", "bob", "carol"]);
    everyone_gets(&bob, "goodbye", &[&alice, &carol]);

    bob.group(&["leave", CIRCLE]).success();
    nothing_for(&[&alice, &carol]);
    assert_members(&[&alice, &carol], &["alice", "carol"]);
    everyone_gets(&alice, "bob left", &[&carol]);
    everyone_gets(&carol, "we go on", &[&alice]);

    assert!(
        receive_circle(&bob).is_empty(),
        "bob still reads the circle"
    );
    let still_listed: Vec<_> = bob
        .group_list_json()
        .into_iter()
        .filter(|circle| circle["name"] == CIRCLE && circle["left"] != true)
        .collect();
    assert!(
        still_listed.is_empty(),
        "bob still belongs: {still_listed:?}"
    );
}
