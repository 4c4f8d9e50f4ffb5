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

#[test]
fn postgres_needs_a_database_url_and_hides_its_password() {
    let (config, problems) = load_text("store = \"postgres\"\n", &[]);
    assert_eq!(config.store, StoreKind::Postgres);
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["database_url"], "{problems:?}");
    assert!(
        problems[0].message.contains("KITH_RELAY_DATABASE_URL"),
        "{problems:?}"
    );

    let url = "postgres://kith:s3cret@db.example.org:5432/kith";
    let (config, problems) = load_text(
        "store = \"postgres\"\ndatabase_pool_size = 4\n",
        &[("KITH_RELAY_DATABASE_URL", url)],
    );
    assert!(problems.is_empty(), "{problems:?}");
    let options = config.postgres_options().unwrap();
    assert_eq!((options.url.as_str(), options.pool_size), (url, 4));
    let debug = format!("{config:?}");
    assert!(!debug.contains("s3cret"), "{debug}");
    assert!(debug.contains("db.example.org:5432/kith"), "{debug}");
}

#[test]
fn store_settings_are_checked() {
    let (_, problems) = load_text(
        "store = \"mysql\"\ndatabase_pool_size = 0\n",
        &[("KITH_RELAY_DATABASE_URL", "postgres://a:b@h/db")],
    );
    let all = ConfigError::Invalid(problems).to_string();
    assert!(
        all.contains(":1: `store`: unknown variant `mysql`"),
        "{all}"
    );
    assert!(all.contains("`database_pool_size`: is 0"), "{all}");
    assert!(
        all.contains("`database_url`: is set but store is \"sled\""),
        "{all}"
    );
    assert!(!all.contains("postgres://a:b@"), "{all}");
    let config = Config {
        store: StoreKind::Postgres,
        database_url: Some(DatabaseUrl::new("postgres://u:s3cret@h:port/db")),
        ..Config::default()
    };
    let problems = config.problems();
    let all = ConfigError::Invalid(problems).to_string();
    assert!(
        all.contains("is not a PostgreSQL connection string"),
        "{all}"
    );
    assert!(!all.contains("s3cret"), "{all}");
    assert!(Config::default().postgres_options().is_none());
}

#[test]
fn syntax_errors_do_not_quote_a_password() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(b"database_url = \"postgres://kith:s3cret@db/kith\n")
        .unwrap();
    let Err(err) = Config::load_partial(Some(file.path()), std::iter::empty()) else {
        panic!("accepted a syntax error");
    };
    let text = err.to_string();
    assert!(!text.contains("s3cret"), "{text}");
}
