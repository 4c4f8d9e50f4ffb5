//! Why talking to the relay failed. Every message says what happened and what to do.
//!
//! Messages name the relay's URL and short, fixed descriptions of TLS failures; they never
//! contain keys, signatures, message contents or anything else secret. Text that came from the
//! network (the relay's announced name) is shown escaped.

use std::io;

use kith_protocol::consts::MAX_FRAME_LEN;
use kith_protocol::wire::ErrorKind;

use super::{RelayUrl, TlsTermination};

/// A failure to reach, trust or talk to the relay.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The relay answered a request with an error.
    #[error("{0}")]
    Relay(ErrorKind),
    /// No TCP connection to the relay (name not found, refused, unreachable network).
    #[error(
        "Could not reach the relay at {url}: {source}. Is it running, and is the address right?"
    )]
    Unreachable {
        /// The relay.
        url: RelayUrl,
        /// What the operating system reported.
        source: io::Error,
    },
    /// The relay did not answer in time.
    #[error(
        "The relay at {url} did not answer in time. Check your network and try again; if it \
         keeps happening, the relay may be overloaded or down."
    )]
    Timeout {
        /// The relay.
        url: RelayUrl,
    },
    /// The relay's certificate is not trusted as configured (unknown issuer, wrong name,
    /// expired, or not the pinned fingerprint).
    #[error(
        "The relay at {url} presented a TLS certificate this device does not trust ({detail}). \
         If it is your organisation's relay, run `kith init` with --relay-fingerprint <the \
         SHA-256 fingerprint kith-relay prints at start> or --relay-ca <its certificate PEM>."
    )]
    NotTrusted {
        /// The relay.
        url: RelayUrl,
        /// A short description of the failed check.
        detail: String,
    },
    /// Another TLS failure (no common protocol version, not a TLS server, alert).
    #[error(
        "The secure (TLS) connection to the relay at {url} failed ({detail}). Check that the \
         address and port are the relay's TLS port and that the relay supports TLS 1.3."
    )]
    Tls {
        /// The relay.
        url: RelayUrl,
        /// A short description of the failure.
        detail: String,
    },
    /// The server at the URL did not accept a WebSocket connection.
    #[error(
        "The server at {url} did not accept a Kith connection ({detail}). Check the relay's \
         address, port and path."
    )]
    NotARelay {
        /// The relay.
        url: RelayUrl,
        /// A short description (for example the HTTP status).
        detail: String,
    },
    /// The relay announced a different name from the URL's host. Devices sign the name they
    /// connect to, so the two must match.
    #[error(
        "The relay at {connected} calls itself \"{}\"; connect with {} instead (devices sign \
         the relay's name, so it must match).",
        announced.escape_debug(),
        suggested_url(connected, announced)
    )]
    NameMismatch {
        /// The URL the device connected to.
        connected: RelayUrl,
        /// The name the relay announced in its challenge, as sent.
        announced: String,
    },
    /// The relay refused the device's login signature (`Unauthorized` to `Authenticate` or
    /// `Register`). Besides an unknown device, this is what a device set up for the wrong
    /// [`TlsTermination`] gets, so the message names that setting.
    #[error("{}", login_refused(url, *termination))]
    LoginRefused {
        /// The relay.
        url: RelayUrl,
        /// How this device was set up.
        termination: TlsTermination,
    },
    /// The connection was closed or broke.
    #[error("The connection to the relay was lost. Check your network and try again.")]
    Closed,
    /// The relay sent something this client cannot decode.
    #[error(
        "The relay sent something this version of Kith does not understand. Update Kith or \
         tell the relay's operator."
    )]
    Protocol,
    /// A request too large to send.
    #[error(
        "This request is too large to send to the relay (at most {MAX_FRAME_LEN} bytes). Send \
         something smaller."
    )]
    TooLarge,
    /// No certificate authority could be loaded from the operating system.
    #[error(
        "No trusted certificate authorities could be loaded from this system. Install the \
         system's CA certificates, or run `kith init` with --relay-fingerprint or --relay-ca."
    )]
    NoSystemRoots,
    /// The configured relay certificate is not valid PEM.
    #[error(
        "The relay certificate given with --relay-ca is not a valid PEM certificate. Use the \
         relay's certificate file (it starts with -----BEGIN CERTIFICATE-----)."
    )]
    BadCertificatePem,
    /// TLS could not be configured on this device (the crypto library refused TLS 1.3).
    #[error("TLS 1.3 is not available in this build of Kith. Reinstall Kith.")]
    TlsSetup,
}

/// What to check when the relay at `url` refused a login signed as `termination` requires.
fn login_refused(url: &RelayUrl, termination: TlsTermination) -> String {
    match termination {
        TlsTermination::Relay => format!(
            "The relay at {url} refused this device's login. If the relay sits behind a \
             TLS-terminating proxy (kith-relay runs with listen_plaintext_behind_proxy; its \
             operator knows), devices must be set up with `kith init --relay-behind-proxy`. If \
             it does not, ask its operator why it refuses this device."
        ),
        TlsTermination::Proxy => format!(
            "The relay at {url} refused this device's login. This device was set up with \
             --relay-behind-proxy, for a relay behind a TLS-terminating proxy, and a relay that \
             terminates TLS itself refuses such logins. If this one does (its operator knows), \
             set the device up without --relay-behind-proxy; if not, ask its operator why it \
             refuses this device."
        ),
    }
}

/// The URL to suggest when the relay calls itself `announced`: the connected URL with the
/// announced host, or a plain description when the name is not a valid host.
fn suggested_url(connected: &RelayUrl, announced: &str) -> String {
    let host = if announced.contains(':') {
        format!("[{announced}]")
    } else {
        announced.to_owned()
    };
    let text = format!("wss://{host}:{}{}", connected.port(), connected.path());
    match RelayUrl::parse(&text) {
        Ok(url) => url.to_string(),
        Err(_) => "the relay's own name (ask its operator)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::unwrap_used)]
    fn url(text: &str) -> RelayUrl {
        RelayUrl::parse(text).unwrap()
    }

    #[test]
    fn name_mismatch_suggests_the_announced_name() {
        let error = LinkError::NameMismatch {
            connected: url("wss://192.0.2.7:7443"),
            announced: "Relay.Example.org".to_owned(),
        };
        assert_eq!(
            error.to_string(),
            "The relay at wss://192.0.2.7:7443/ calls itself \"Relay.Example.org\"; connect with \
             wss://relay.example.org:7443/ instead (devices sign the relay's name, so it must \
             match)."
        );
    }

    #[test]
    fn name_mismatch_escapes_what_the_relay_sent() {
        let error = LinkError::NameMismatch {
            connected: url("wss://relay.example:7443/kith"),
            announced: "evil\u{1b}[2J\nname".to_owned(),
        };
        let text = error.to_string();
        assert!(!text.contains('\u{1b}') && !text.contains('\n'), "{text}");
        assert!(text.contains("the relay's own name"), "{text}");
    }

    #[test]
    fn a_refused_login_names_the_proxy_setting_to_check() {
        let relay = url("wss://relay.example");
        let bound = LinkError::LoginRefused {
            url: relay.clone(),
            termination: TlsTermination::Relay,
        }
        .to_string();
        assert!(bound.contains("wss://relay.example:443/"), "{bound}");
        assert!(
            bound.contains("set up with `kith init --relay-behind-proxy`"),
            "{bound}"
        );
        let unbound = LinkError::LoginRefused {
            url: relay,
            termination: TlsTermination::Proxy,
        }
        .to_string();
        assert!(
            unbound.contains("without --relay-behind-proxy"),
            "{unbound}"
        );
    }

    #[test]
    fn relay_errors_show_the_kinds_text() {
        let kind = ErrorKind::HandleTaken;
        assert_eq!(LinkError::Relay(kind).to_string(), kind.to_string());
    }

    #[test]
    fn not_trusted_says_what_to_do() {
        let error = LinkError::NotTrusted {
            url: url("wss://relay.example"),
            detail: "unknown issuer".to_owned(),
        };
        let text = error.to_string();
        assert!(text.contains("wss://relay.example:443/"), "{text}");
        assert!(text.contains("(unknown issuer)"), "{text}");
        assert!(
            text.contains("--relay-fingerprint") && text.contains("--relay-ca"),
            "{text}"
        );
    }
}
