//! Configuration errors, worded for the operator who has to fix them.

use std::fmt;
use std::path::PathBuf;

use super::key_names;

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error(
        "cannot read config file {}: {source} (check the path; without --config the defaults are used)",
        path.display()
    )]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("config file {} is not valid TOML:\n{message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// Keys are unknown, malformed or inconsistent; every problem found is listed.
    #[error("{}", ProblemList(.0))]
    Invalid(Vec<Problem>),
}

impl ConfigError {
    /// The problems, for [`ConfigError::Invalid`]; empty otherwise.
    pub fn problems(&self) -> &[Problem] {
        match self {
            Self::Invalid(problems) => problems,
            Self::Read { .. } | Self::Syntax { .. } => &[],
        }
    }
}

/// Where a value came from. Ordered file lines first, then variables, then the rest.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Origin {
    /// A line of the config file.
    File {
        /// The file.
        path: PathBuf,
        /// 1-based line of the key.
        line: usize,
    },
    /// An environment variable.
    Env {
        /// Its name.
        var: String,
    },
    /// A command-line flag, the defaults, or several keys together.
    Effective,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File { path, line } => write!(f, "{}:{line}", path.display()),
            Self::Env { var } => write!(f, "environment variable {var}"),
            Self::Effective => f.write_str("configuration"),
        }
    }
}

/// One thing wrong with a configuration: which key, where it was set, what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key concerned (empty for a problem of the whole file).
    pub key: String,
    /// Where the value came from.
    pub origin: Origin,
    /// What is wrong and what to write instead.
    pub message: String,
}

impl Problem {
    /// A problem with one key's value.
    pub(super) fn new(key: &str, origin: Origin, message: impl Into<String>) -> Self {
        Self {
            key: key.to_owned(),
            origin,
            message: message.into(),
        }
    }

    /// A problem found in the effective (merged) values.
    pub(super) fn effective(key: &str, message: impl Into<String>) -> Self {
        Self::new(key, Origin::Effective, message)
    }

    /// A problem not tied to one key.
    pub(super) fn general(message: impl Into<String>) -> Self {
        Self::new("", Origin::Effective, message)
    }

    /// An unknown key or variable, with a suggestion and the valid keys.
    pub(super) fn unknown_key(key: &str, origin: Origin) -> Self {
        let what = match &origin {
            Origin::Env { .. } => "this variable does not match any key",
            _ => "unknown key",
        };
        let hint = key_names()
            .filter(|k| edit_distance(k, key) <= 2)
            .min_by_key(|k| edit_distance(k, key))
            .map(|k| format!(" Did you mean `{k}`?"))
            .unwrap_or_default();
        let valid = key_names().collect::<Vec<_>>().join(", ");
        Self::new(key, origin, format!("{what}.{hint} Valid keys: {valid}"))
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.key.is_empty(), &self.origin) {
            (true, _) => write!(f, "{}", self.message),
            (false, Origin::Effective) => write!(f, "`{}`: {}", self.key, self.message),
            (false, origin) => write!(f, "{origin}: `{}`: {}", self.key, self.message),
        }
    }
}

struct ProblemList<'a>(&'a [Problem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [one] => write!(f, "invalid configuration: {one}"),
            many => {
                write!(f, "invalid configuration ({} problems):", many.len())?;
                for problem in many {
                    write!(f, "\n  - {problem}")?;
                }
                Ok(())
            }
        }
    }
}

/// Levenshtein distance, for "did you mean" (keys are short).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}
