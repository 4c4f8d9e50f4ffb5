//! A relay behind a TLS-terminating proxy (`listen_plaintext_behind_proxy`): devices set up with
//! `kith init --relay-behind-proxy` log in through the proxy and exchange messages, and a device
//! set up for the other kind of relay is refused with an error that names the flag.

use kith_tests::cli::{Home, RelayProcess, Run, TlsProxy};

use crate::exchange;

/// The `kith init` flag under test.
const BEHIND_PROXY: &str = "--relay-behind-proxy";

/// `kith init` through `proxy` (trusting its certificate) with `invite` and `extra` options.
fn init_through(home: &Home, proxy: &TlsProxy, invite: &str, extra: &[&str]) -> Run {
    let url = proxy.url();
    let ca = proxy.ca_path();
    let ca = ca.to_str().expect("a UTF-8 temporary path");
    let mut args = vec!["init", "--relay", &url, "--handle", home.handle()];
    args.extend_from_slice(&["--relay-ca", ca, "--invite", invite]);
    args.extend_from_slice(extra);
    home.kith(args)
}

#[test]
fn devices_set_up_for_a_proxy_exchange_messages_through_it() {
    let relay = RelayProcess::start_behind_proxy();
    let proxy = TlsProxy::start(relay.port());
    let alice = Home::new("alice");
    let bob = Home::new("bob");
    for home in [&alice, &bob] {
        init_through(home, &proxy, &relay.invite(), &[BEHIND_PROXY]).success();
    }

    exchange(&alice, &bob, "hello through the proxy");
    exchange(&bob, &alice, "and back again");

    assert_eq!(relay.stat("accounts"), 2);
    // Two inits, two sends, two receives: every command went through the proxy.
    assert!(proxy.forwarded() >= 6, "{proxy:?}");
}

#[test]
fn a_device_set_up_without_the_flag_is_told_to_use_it() {
    let relay = RelayProcess::start_behind_proxy();
    let proxy = TlsProxy::start(relay.port());
    let carol = Home::new("carol");
    let invite = relay.invite();

    init_through(&carol, &proxy, &invite, &[])
        .failure()
        .stderr_mentions(&[
            "refused this device's login",
            "kith init --relay-behind-proxy",
        ]);
    assert!(
        !carol.path().exists(),
        "a failed init leaves no home behind"
    );
    assert_eq!(relay.stat("accounts"), 0);

    // Doing what the message says works, with the same invite.
    init_through(&carol, &proxy, &invite, &[BEHIND_PROXY]).success();
    assert_eq!(relay.stat("accounts"), 1);
}

#[test]
fn a_device_set_up_for_a_proxy_is_refused_by_a_relay_terminating_tls() {
    let relay = RelayProcess::start();
    let dave = Home::new("dave");
    let ca = relay.ca_path();
    let ca = ca.to_str().expect("a UTF-8 temporary path");
    let invite = relay.invite();
    dave.try_init(
        &relay,
        &["--invite", &invite, "--relay-ca", ca, BEHIND_PROXY],
    )
    .failure()
    .stderr_mentions(&[
        "refused this device's login",
        "without --relay-behind-proxy",
    ]);
    assert_eq!(relay.stat("accounts"), 0);
}
