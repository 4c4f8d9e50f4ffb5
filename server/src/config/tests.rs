use std::io::Write;

use super::*;

fn load_text(text: &str, env: &[(&str, &str)]) -> (Config, Vec<Problem>) {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
    let Loaded {
        config,
        mut problems,
        ..
    } = Config::load_partial(Some(file.path()), env).unwrap();
    problems.extend(config.problems());
    (config, problems)
}

#[test]
fn example_is_the_defaults_and_valid() {
    let (config, problems) = load_text(EXAMPLE, &[]);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(config, Config::default());
}

#[test]
fn every_key_is_in_the_example() {
    for key in key_names() {
        assert!(
            EXAMPLE.contains(&format!("\n{key} = ")) || EXAMPLE.contains(&format!("# {key} = ")),
            "{key}"
        );
    }
}

#[test]
fn defaults_map_onto_relay_settings() {
    let settings = Config::default().relay_settings();
    let defaults = RelaySettings::default();
    assert_eq!(settings.envelope_ttl, defaults.envelope_ttl);
    assert_eq!(settings.mailbox_limits, defaults.mailbox_limits);
    assert_eq!(settings.registration, defaults.registration);
}

#[test]
fn every_problem_is_reported_with_its_line() {
    let text = "listn = \"0.0.0.0:7443\"\nenvelope_ttl = \"3 fortnights\"\nadmin_listen = \"0.0.0.0:7444\"\n";
    let (_, problems) = load_text(text, &[]);
    assert_eq!(problems.len(), 3, "{problems:?}");
    let all = ConfigError::Invalid(problems).to_string();
    assert!(
        all.contains(":1: `listn`: unknown key. Did you mean `listen`?"),
        "{all}"
    );
    assert!(
        all.contains(":2: `envelope_ttl`: `3 fortnights` is not a duration"),
        "{all}"
    );
    assert!(
        all.contains("`admin_listen`: 0.0.0.0:7444 is not a loopback address"),
        "{all}"
    );
}

#[test]
fn env_overrides_the_file_and_names_the_variable() {
    let (config, problems) = load_text(
        "send_burst = 5\n",
        &[
            ("KITH_RELAY_SEND_BURST", "7"),
            ("KITH_RELAY_REGISTRATION", "open"),
            ("KITH_RELAY_LOG_CLIENT_IPS", "yes"),
            ("KITH_RELAY_LISTN", "x"),
            ("KITH_RELAY_CONFIG", "ignored"),
        ],
    );
    assert_eq!(config.send_burst, 7);
    assert_eq!(config.registration, Registration::Open);
    let all = ConfigError::Invalid(problems).to_string();
    assert!(
        all.contains("environment variable KITH_RELAY_LOG_CLIENT_IPS"),
        "{all}"
    );
    assert!(
        all.contains("environment variable KITH_RELAY_LISTN"),
        "{all}"
    );
    assert!(!all.contains("KITH_RELAY_CONFIG"), "{all}");
}

#[test]
fn syntax_errors_give_a_line() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(b"listen = \"127.0.0.1:1\"\nbroken = \n")
        .unwrap();
    let Err(err) = Config::load_partial(Some(file.path()), std::iter::empty()) else {
        panic!("accepted a syntax error");
    };
    let text = err.to_string();
    assert!(text.contains("line 2"), "{text}");
}

#[test]
fn inconsistent_values_are_explained() {
    let config = Config {
        tls_cert: Some("cert.pem".into()),
        idempotency_window: Duration::from_secs(90 * 24 * 3600),
        max_unauthenticated: 20_000,
        log_level: "info,=[".to_owned(),
        ..Config::default()
    };
    let problems = config.problems();
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "tls_key",
            "max_unauthenticated",
            "idempotency_window",
            "log_level"
        ],
        "{problems:?}"
    );
}
