//! The relay URL policy, stated case by case.

use super::{RelayUrl, UrlError};

/// Parses `text` and returns `(host, port, path, display)`.
#[allow(clippy::unwrap_used)]
fn parts(text: &str) -> (String, u16, String, String) {
    let url = RelayUrl::parse(text).unwrap();
    (
        url.host().to_owned(),
        url.port(),
        url.path().to_owned(),
        url.to_string(),
    )
}

#[test]
fn accepts_dns_names_with_defaults() {
    let (host, port, path, shown) = parts("wss://relay.example.org");
    assert_eq!(
        (host.as_str(), port, path.as_str()),
        ("relay.example.org", 443, "/")
    );
    assert_eq!(shown, "wss://relay.example.org:443/");
}

#[test]
fn accepts_port_and_path() {
    let (host, port, path, shown) = parts("wss://relay.example.org:7443/kith/ws");
    assert_eq!(
        (host.as_str(), port, path.as_str()),
        ("relay.example.org", 7443, "/kith/ws")
    );
    assert_eq!(shown, "wss://relay.example.org:7443/kith/ws");
}

#[test]
fn lower_cases_scheme_and_host_but_not_path() {
    let (host, _, path, shown) = parts("WSS://Relay.Example.ORG:8443/Path");
    assert_eq!(host, "relay.example.org");
    assert_eq!(path, "/Path");
    assert_eq!(shown, "wss://relay.example.org:8443/Path");
}

#[test]
fn accepts_ip_addresses() {
    let (host, port, _, shown) = parts("wss://127.0.0.1:7443");
    assert_eq!((host.as_str(), port), ("127.0.0.1", 7443));
    assert_eq!(shown, "wss://127.0.0.1:7443/");
    let (host, port, _, shown) = parts("wss://[::1]:7443/");
    assert_eq!((host.as_str(), port), ("::1", 7443));
    assert_eq!(shown, "wss://[::1]:7443/");
    let (host, _, _, shown) = parts("wss://[2001:DB8:0:0::7]");
    assert_eq!(host, "2001:db8::7");
    assert_eq!(shown, "wss://[2001:db8::7]:443/");
}

#[test]
fn display_parses_back_to_the_same_url() {
    for text in [
        "wss://relay.example.org",
        "wss://a-b.example:1/x/y",
        "wss://[fe80::1]:65535/z",
        "wss://10.0.0.1",
    ] {
        let url = RelayUrl::parse(text).unwrap();
        assert_eq!(RelayUrl::parse(&url.to_string()).unwrap(), url);
    }
}

#[test]
fn ws_gets_its_own_explanation() {
    assert_eq!(
        RelayUrl::parse("ws://relay.example.org"),
        Err(UrlError::NotTls)
    );
    assert_eq!(
        RelayUrl::parse("WS://relay.example.org:80/"),
        Err(UrlError::NotTls)
    );
    assert!(UrlError::NotTls.to_string().contains("wss://"));
}

#[test]
fn rejects_other_schemes_and_junk() {
    for text in [
        "https://relay.example.org",
        "relay.example.org",
        "",
        "wss:/relay",
        "wss//x",
    ] {
        assert!(
            matches!(
                RelayUrl::parse(text),
                Err(UrlError::Scheme | UrlError::Malformed)
            ),
            "{text}"
        );
    }
}

#[test]
fn rejects_userinfo_query_fragment() {
    assert_eq!(
        RelayUrl::parse("wss://me@relay.example.org"),
        Err(UrlError::UserInfo)
    );
    assert_eq!(
        RelayUrl::parse("wss://me:pw@relay.example.org:1/"),
        Err(UrlError::UserInfo)
    );
    assert_eq!(
        RelayUrl::parse("wss://relay.example.org/?a=b"),
        Err(UrlError::Query)
    );
    assert_eq!(
        RelayUrl::parse("wss://relay.example.org?a"),
        Err(UrlError::Query)
    );
    assert_eq!(
        RelayUrl::parse("wss://relay.example.org/#top"),
        Err(UrlError::Fragment)
    );
}

#[test]
fn rejects_empty_and_bad_hosts() {
    for text in ["wss://", "wss://:443", "wss:///path", "wss://[]:443"] {
        assert_eq!(RelayUrl::parse(text), Err(UrlError::EmptyHost), "{text}");
    }
    let long = format!("wss://{}.example", vec!["a".repeat(60); 5].join("."));
    let bad = [
        "wss://relay_1.example",
        "wss://-relay.example",
        "wss://relay-.example",
        "wss://relay..example",
        "wss://relay.example.",
        "wss://rélay.example",
        "wss://[::1",
        "wss://[relay]:1",
        "wss://[::1]x",
        "wss://1.2.3",
        "wss://256.1.1.1",
        &long,
    ];
    for text in bad {
        assert_eq!(RelayUrl::parse(text), Err(UrlError::BadHost), "{text}");
    }
}

#[test]
fn rejects_bad_ports() {
    for text in [
        "wss://relay.example:0",
        "wss://relay.example:65536",
        "wss://relay.example:",
        "wss://relay.example:+1",
        "wss://relay.example:12a",
        "wss://[::1]:",
    ] {
        assert_eq!(RelayUrl::parse(text), Err(UrlError::BadPort), "{text}");
    }
}

#[test]
fn rejects_unprintable_paths() {
    assert_eq!(
        RelayUrl::parse("wss://relay.example/a b"),
        Err(UrlError::BadPath)
    );
    assert_eq!(
        RelayUrl::parse("wss://relay.example/é"),
        Err(UrlError::BadPath)
    );
}
