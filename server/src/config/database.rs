//! Choosing the storage engine, and the PostgreSQL URL, which holds a password.
//!
//! [`DatabaseUrl`] never shows its password: its `Debug` and [`DatabaseUrl::describe`] print
//! only the user-free `host:port/database`, and [`redact_passwords`] masks the password of any
//! URL in a message (the TOML parser quotes the offending line when a file is malformed).

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

/// Which storage engine the relay runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// sled, embedded in the relay: one node, data under `data_dir/sled/` (the default).
    #[default]
    Sled,
    /// PostgreSQL at `database_url`: several relay nodes may share the database.
    Postgres,
}

impl StoreKind {
    /// The config value: `sled` or `postgres`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sled => "sled",
            Self::Postgres => "postgres",
        }
    }
}

/// A PostgreSQL connection string (`postgres://user:password@host:port/database` or the
/// libpq keyword form). Shown only as [`describe`](Self::describe): the password never
/// appears in `Debug`, logs or errors.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// Wraps a connection string (not checked here: see [`check`](Self::check)).
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The full connection string, password included: for connecting only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the string parses as a PostgreSQL connection string; the error names the
    /// problem (the parser's messages name options, never their values).
    pub fn check(&self) -> Result<(), String> {
        tokio_postgres::Config::from_str(&self.0)
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// `host:port/database`, without user or password, for the banner and errors; what
    /// cannot be parsed is described as such rather than shown.
    pub fn describe(&self) -> String {
        let Ok(config) = tokio_postgres::Config::from_str(&self.0) else {
            return "unparsable database_url".to_owned();
        };
        let hosts: Vec<String> = config
            .get_hosts()
            .iter()
            .enumerate()
            .map(|(i, host)| {
                let name = match host {
                    tokio_postgres::config::Host::Tcp(name) => name.clone(),
                    tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
                };
                let port = config
                    .get_ports()
                    .get(i)
                    .or_else(|| config.get_ports().first());
                match port {
                    Some(port) => format!("{name}:{port}"),
                    None => name,
                }
            })
            .collect();
        let hosts = if hosts.is_empty() {
            "localhost".to_owned()
        } else {
            hosts.join(",")
        };
        let database = config.get_dbname().or(config.get_user()).unwrap_or("?");
        format!("{hosts}/{database}")
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DatabaseUrl")
            .field(&format_args!("{}, password hidden", self.describe()))
            .finish()
    }
}

/// `text` with the password of every `scheme://user:password@` URL and every libpq
/// `password=…` replaced by `***`.
pub fn redact_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("://") {
        let (before, after) = rest.split_at(start + 3);
        out.push_str(before);
        let authority_end = after
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace() || c == '"')
            .unwrap_or(after.len());
        let authority = &after[..authority_end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                out.push_str(&authority[..=colon]);
                out.push_str("***");
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &after[authority_end..];
    }
    out.push_str(rest);
    redact_keyword_password(&out)
}

/// Masks the value of libpq's `password=…` (quoted or not).
fn redact_keyword_password(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("password=") {
        let (before, after) = rest.split_at(start + "password=".len());
        out.push_str(before);
        out.push_str("***");
        let end = if let Some(quoted) = after.strip_prefix('\'') {
            quoted.find('\'').map_or(after.len(), |i| i + 2)
        } else {
            after
                .find(|c: char| c.is_whitespace() || c == '"' || c == '&')
                .unwrap_or(after.len())
        };
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_and_debug_hide_the_password() {
        let url = DatabaseUrl::new("postgres://kith:s3cret@db.example.org:5433/relay");
        assert_eq!(url.describe(), "db.example.org:5433/relay");
        let debug = format!("{url:?}");
        assert!(
            !debug.contains("s3cret") && !debug.contains("kith:"),
            "{debug}"
        );
        assert!(debug.contains("password hidden"), "{debug}");
        let keywords = DatabaseUrl::new("host=10.0.0.5 user=kith password=s3cret dbname=relay");
        assert_eq!(keywords.describe(), "10.0.0.5/relay");
        assert_eq!(
            DatabaseUrl::new("postgres://kith:s3cret@[::1").describe(),
            "unparsable database_url"
        );
    }

    #[test]
    fn check_reports_malformed_urls_without_their_values() {
        assert!(DatabaseUrl::new("postgres://u:p@h:5432/db").check().is_ok());
        let err = DatabaseUrl::new("postgres://u:s3cret@h:notaport/db")
            .check()
            .unwrap_err();
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn passwords_are_masked_in_messages() {
        let text = "line 3: database_url = \"postgres://kith:s3cret@db:5432/x\nand \
                    host=db password=s3cret user=kith and password='s 3' end";
        let masked = redact_passwords(text);
        assert!(
            !masked.contains("s3cret") && !masked.contains("s 3"),
            "{masked}"
        );
        assert!(masked.contains("postgres://kith:***@db:5432/x"), "{masked}");
        assert!(masked.contains("password=*** user=kith"), "{masked}");
        assert_eq!(
            redact_passwords("wss://localhost:7443/x"),
            "wss://localhost:7443/x"
        );
    }
}
