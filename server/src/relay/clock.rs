//! The relay's wall clock. The store has no clock: every time it sees comes from here.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// Stand-in for "never" when a configured span does not fit in an [`Instant`].
const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

/// Now, in whole seconds since the Unix epoch (0 if the system clock is before 1970).
pub(super) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `now + span`, in seconds, saturating instead of overflowing.
pub(super) fn after(now: u64, span: Duration) -> u64 {
    now.saturating_add(span.as_secs())
}

/// `start + span`, without the panic of `Instant + Duration` on overflow: a span too large
/// to represent means "in about 30 years".
pub(super) fn deadline(start: Instant, span: Duration) -> Instant {
    start
        .checked_add(span)
        .or_else(|| start.checked_add(FAR_FUTURE))
        .unwrap_or(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_saturates() {
        assert_eq!(after(10, Duration::from_secs(5)), 15);
        assert_eq!(after(u64::MAX - 1, Duration::from_secs(5)), u64::MAX);
        assert!(now() > 1_700_000_000);
        let start = Instant::now();
        assert_eq!(
            deadline(start, Duration::from_secs(1)),
            start + Duration::from_secs(1)
        );
        assert!(deadline(start, Duration::MAX) > start);
    }
}
