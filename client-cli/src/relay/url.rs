//! Relay URLs: `wss://HOST[:PORT][/PATH]`.
//!
//! The host is what the device connects to, what TLS checks the certificate against, and the
//! relay name the device signs when it authenticates (SPEC.md §9.2), so it is normalised once
//! here: lower case, IPv6 addresses in their canonical form without brackets.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use kith_protocol::consts::MAX_RELAY_NAME_LEN;
use rustls::pki_types::ServerName;

/// The port of a `wss://` URL without one.
const DEFAULT_PORT: u16 = 443;
/// The longest DNS label.
const MAX_LABEL_LEN: usize = 63;

/// A relay's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayUrl {
    host: String,
    port: u16,
    path: String,
}

/// Why a relay URL was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// Not of the form `wss://HOST:PORT`.
    #[error("a relay address looks like wss://relay.example.org:7443")]
    Malformed,
    /// A `ws://` URL: Kith never talks to a relay without TLS.
    #[error(
        "Kith only connects to relays over TLS: use wss:// instead of ws:// \
         (for example wss://relay.example.org:7443)"
    )]
    NotTls,
    /// Another scheme than `wss://`.
    #[error("a relay address starts with wss:// (for example wss://relay.example.org:7443)")]
    Scheme,
    /// `user@` or `user:password@` before the host.
    #[error("a relay address has no user name or password: remove the part before '@'")]
    UserInfo,
    /// A `?query`.
    #[error("a relay address has no query: remove the part from '?'")]
    Query,
    /// A `#fragment`.
    #[error("a relay address has no fragment: remove the part from '#'")]
    Fragment,
    /// Nothing between `wss://` and the port or path.
    #[error("the relay address has no host name (for example wss://relay.example.org:7443)")]
    EmptyHost,
    /// The host is not a DNS name, an IPv4 address or a bracketed IPv6 address.
    #[error(
        "the relay's host must be a DNS name (relay.example.org), an IPv4 address \
         (192.0.2.7) or an IPv6 address in brackets ([2001:db8::7])"
    )]
    BadHost,
    /// The port is not a number from 1 to 65535.
    #[error("the relay's port must be a number from 1 to 65535")]
    BadPort,
    /// The path has spaces, control or non-ASCII characters.
    #[error("the relay address's path may only contain printable ASCII characters")]
    BadPath,
}

impl RelayUrl {
    /// Parses `wss://HOST[:PORT][/PATH]` (port 443 when omitted).
    pub fn parse(text: &str) -> Result<Self, UrlError> {
        let rest = strip_scheme(text.trim())?;
        if rest.contains('#') {
            return Err(UrlError::Fragment);
        }
        if rest.contains('?') {
            return Err(UrlError::Query);
        }
        let (authority, path) = match rest.find('/') {
            Some(at) => rest.split_at(at),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return Err(UrlError::UserInfo);
        }
        let (host, port) = split_authority(authority)?;
        Ok(Self {
            host,
            port,
            path: parse_path(path)?,
        })
    }

    /// The host name (or IP address) the device connects to and signs for.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The WebSocket path, starting with `/`.
    pub(crate) fn path(&self) -> &str {
        &self.path
    }
}

impl fmt::Display for RelayUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "wss://[{}]:{}{}", self.host, self.port, self.path)
        } else {
            write!(f, "wss://{}:{}{}", self.host, self.port, self.path)
        }
    }
}

/// The part after `wss://` (any case); a clear error for `ws://` and other schemes.
fn strip_scheme(text: &str) -> Result<&str, UrlError> {
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err(UrlError::Malformed);
    };
    if scheme.eq_ignore_ascii_case("wss") {
        Ok(rest)
    } else if scheme.eq_ignore_ascii_case("ws") {
        Err(UrlError::NotTls)
    } else {
        Err(UrlError::Scheme)
    }
}

/// Splits `HOST[:PORT]` and normalises the host.
fn split_authority(authority: &str) -> Result<(String, u16), UrlError> {
    if authority.is_empty() {
        return Err(UrlError::EmptyHost);
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (inside, after) = bracketed.split_once(']').ok_or(UrlError::BadHost)?;
        (parse_ipv6(inside)?, after)
    } else {
        let end = authority.find(':').unwrap_or(authority.len());
        let (host, after) = authority.split_at(end);
        (parse_host(host)?, after)
    };
    let port = match port.strip_prefix(':') {
        Some(digits) => parse_port(digits)?,
        None if port.is_empty() => DEFAULT_PORT,
        None => return Err(UrlError::BadHost),
    };
    Ok((host, port))
}

/// An IPv6 address (from inside brackets), in canonical lower-case form.
fn parse_ipv6(text: &str) -> Result<String, UrlError> {
    if text.is_empty() {
        return Err(UrlError::EmptyHost);
    }
    text.parse::<Ipv6Addr>()
        .map(|ip| ip.to_string())
        .map_err(|_| UrlError::BadHost)
}

/// A DNS name or an IPv4 address, lower-cased.
fn parse_host(text: &str) -> Result<String, UrlError> {
    if text.is_empty() {
        return Err(UrlError::EmptyHost);
    }
    let host = text.to_ascii_lowercase();
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return host
            .parse::<Ipv4Addr>()
            .map(|ip| ip.to_string())
            .map_err(|_| UrlError::BadHost);
    }
    if is_dns_name(&host) && ServerName::try_from(host.as_str()).is_ok() {
        Ok(host)
    } else {
        Err(UrlError::BadHost)
    }
}

/// Whether `host` (lower case) is a DNS name: dot-separated labels of letters, digits and
/// inner hyphens, and short enough to be signed as the relay's name.
fn is_dns_name(host: &str) -> bool {
    host.len() <= MAX_RELAY_NAME_LEN
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= MAX_LABEL_LEN
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// A port from 1 to 65535, digits only.
fn parse_port(digits: &str) -> Result<u16, UrlError> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(UrlError::BadPort);
    }
    match digits.parse::<u16>() {
        Ok(0) | Err(_) => Err(UrlError::BadPort),
        Ok(port) => Ok(port),
    }
}

/// A path of printable ASCII starting with `/`.
fn parse_path(path: &str) -> Result<String, UrlError> {
    if path.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(path.to_owned())
    } else {
        Err(UrlError::BadPath)
    }
}

#[cfg(test)]
#[path = "url_tests.rs"]
mod tests;
