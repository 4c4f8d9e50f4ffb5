//! Where the device's TLS connection ends: at the relay itself, or at a TLS-terminating proxy
//! in front of it. This decides whether the login signature carries the TLS channel binding
//! (SPEC.md §9.2).

/// Where the TLS connection to the relay ends, chosen when the device is set up
/// (`kith init --relay-behind-proxy`).
///
/// The device always speaks TLS and always verifies the certificate it is shown, whoever
/// presents it; only the login signature differs. Nothing on the wire says which case applies,
/// so the device must be told.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TlsTermination {
    /// The relay terminates TLS itself: the login is bound to the TLS connection, so a machine
    /// in the middle that terminates TLS cannot forward it. The default, and the only choice
    /// before the setting existed.
    #[default]
    Relay,
    /// A proxy terminates TLS and forwards plain WebSocket to the relay, which has no TLS
    /// session with the device to bind to: the login carries no channel binding, and whoever
    /// terminates TLS in between (the proxy, by design) could forward it to the relay.
    Proxy,
}

impl TlsTermination {
    /// Whether the login signature includes the TLS channel binding.
    pub(crate) fn binds_login(self) -> bool {
        self == Self::Relay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_relay_that_terminates_tls_gets_a_bound_login() {
        assert!(TlsTermination::default().binds_login());
        assert!(TlsTermination::Relay.binds_login());
        assert!(!TlsTermination::Proxy.binds_login());
    }
}
