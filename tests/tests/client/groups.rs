//! Circles through the client library: create, send, add, remove, leave.

use kith::Event;

use crate::{device, handle};

#[tokio::test]
async fn a_circle_from_creation_to_removal() {
    let relay = kith_tests::TestRelay::start().await;
    let mut alice = device(&relay, "alice").await;
    let mut bob = device(&relay, "bob").await;
    let mut carol = device(&relay, "carol").await;

    let info = alice
        .client
        .group_create("circle", &[handle("bob"), handle("carol")])
        .await
        .unwrap();
    assert_eq!(info.members.len(), 3);
    assert!(info.admin);
    for member in [&mut bob, &mut carol] {
        let events = member.receive().await;
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::GroupChanged { group, .. } if group == "circle")),
            "{events:?}"
        );
        assert_eq!(member.client.groups().unwrap().len(), 1);
    }

    let sent = alice.client.group_send("circle", "first").await.unwrap();
    assert_eq!(sent.envelopes, 2);
    assert_eq!(sent.keys_distributed, 2);
    for member in [&mut bob, &mut carol] {
        let messages = member.messages().await;
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert_eq!(messages[0].text, "first");
        assert_eq!(messages[0].from, handle("alice"));
        assert_eq!(messages[0].group.as_deref(), Some("circle"));
        assert!(member.messages().await.is_empty(), "received once");
    }

    bob.client
        .group_send("circle", "hi from bob")
        .await
        .unwrap();
    assert_eq!(alice.messages().await[0].text, "hi from bob");
    assert_eq!(carol.messages().await[0].text, "hi from bob");

    // A non-admin cannot change the membership.
    assert!(matches!(
        bob.client.group_remove("circle", &[handle("carol")]).await,
        Err(kith::Error::NotGroupAdmin { .. })
    ));

    alice
        .client
        .group_remove("circle", &[handle("carol")])
        .await
        .unwrap();
    let events = bob.receive().await;
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::GroupChanged { .. })),
        "{events:?}"
    );
    alice
        .client
        .group_send("circle", "after carol")
        .await
        .unwrap();
    assert_eq!(bob.messages().await[0].text, "after carol");
    bob.client
        .group_send("circle", "bob after carol")
        .await
        .unwrap();
    assert_eq!(alice.messages().await[0].text, "bob after carol");
    let to_carol = carol.receive().await;
    assert_eq!(to_carol, [Event::QueueDrained], "carol gets nothing new");
    assert_eq!(
        carol
            .client
            .group_history("circle", None)
            .unwrap()
            .iter()
            .map(|m| m.text.as_str())
            .collect::<Vec<_>>(),
        ["first", "hi from bob"]
    );

    // Carol's client still holds the old state; what she sends now is dropped by the others,
    // though the previous epoch's envelope key still opens it.
    carol
        .client
        .group_send("circle", "still here?")
        .await
        .unwrap();
    for member in [&mut alice, &mut bob] {
        let events = member.receive().await;
        assert!(
            events.iter().all(|e| !matches!(e, Event::Message(_))),
            "{events:?}"
        );
        assert!(
            events.iter().any(|e| matches!(e, Event::Dropped { .. })),
            "{events:?}"
        );
    }
}
