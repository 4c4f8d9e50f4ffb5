//! Rate limits, token buckets (GCRA, via `governor`) in memory only (ARCHITECTURE.md:
//! rate-limit counters may be kept, in memory): sends per device, and prekey-bundle fetches
//! per requesting device and target account.
//!
//! The second stops one client from draining another's one-time prekeys: every fetch hands
//! out (deletes) one of each, and once they are gone every new session falls back to the
//! last-resort keys, losing the one-time keys' extra forward secrecy. A client fetches a
//! contact's bundles when it starts a session (and again only when the contact adds a device
//! or changes keys), so a small burst per pair is plenty.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};
use kith_protocol::{AccountPublicKey, DeviceId};

/// Token buckets for `Send`, keyed by the sending device.
#[derive(Debug)]
pub(super) struct SendLimiter {
    limiter: DefaultKeyedRateLimiter<DeviceId>,
}

impl SendLimiter {
    /// `rate_per_second` sustained sends and a burst of `burst` per device (each at least 1).
    pub(super) fn new(rate_per_second: u32, burst: u32) -> Self {
        let rate = NonZeroU32::new(rate_per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: DefaultKeyedRateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
        }
    }

    /// Takes one send from `device`'s bucket, or says how many milliseconds until one is
    /// available (at least 1).
    pub(super) fn check(&self, device: &DeviceId) -> Result<(), u32> {
        self.limiter.check_key(device).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.limiter.clock().now());
            u32::try_from(wait.as_millis()).unwrap_or(u32::MAX).max(1)
        })
    }

    /// Forgets devices whose buckets are full again, so memory follows active senders only.
    pub(super) fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// Token buckets for `FetchBundles`, keyed by (requesting device, target account).
#[derive(Debug)]
pub(super) struct BundleLimiter {
    limiter: DefaultKeyedRateLimiter<(DeviceId, AccountPublicKey)>,
}

impl BundleLimiter {
    /// A burst of `burst` fetches per pair, refilled at `per_hour` an hour (each at least 1).
    pub(super) fn new(per_hour: u32, burst: u32) -> Self {
        let per_hour = per_hour.max(1);
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        let period = Duration::from_secs(3600) / per_hour;
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        Self {
            limiter: DefaultKeyedRateLimiter::keyed(quota),
        }
    }

    /// Takes one fetch of `target`'s bundles by `requester`, or says how many milliseconds
    /// until one is available (at least 1).
    pub(super) fn check(&self, requester: DeviceId, target: AccountPublicKey) -> Result<(), u32> {
        self.limiter
            .check_key(&(requester, target))
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(self.limiter.clock().now());
                u32::try_from(wait.as_millis()).unwrap_or(u32::MAX).max(1)
            })
    }

    /// Forgets pairs whose buckets are full again.
    pub(super) fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_fetches_are_limited_per_requester_and_target() {
        let limiter = BundleLimiter::new(12, 3);
        let mallory = DeviceId::from_bytes([1; 16]);
        let carol = DeviceId::from_bytes([2; 16]);
        let bob = AccountPublicKey::from_bytes([3; 32]);
        let dave = AccountPublicKey::from_bytes([4; 32]);
        for _ in 0..3 {
            assert_eq!(limiter.check(mallory, bob), Ok(()));
        }
        let retry = limiter.check(mallory, bob).unwrap_err();
        // One fetch every 5 minutes refills the bucket.
        assert!((1..=300_000).contains(&retry), "{retry}");
        // Other requesters, and other targets of the same requester, are unaffected.
        assert_eq!(limiter.check(carol, bob), Ok(()));
        assert_eq!(limiter.check(mallory, dave), Ok(()));
        limiter.forget_idle();
        assert!(limiter.check(mallory, bob).is_err());
    }

    #[test]
    fn burst_then_limited_per_device() {
        let limiter = SendLimiter::new(1, 3);
        let a = DeviceId::from_bytes([1; 16]);
        let b = DeviceId::from_bytes([2; 16]);
        for _ in 0..3 {
            assert_eq!(limiter.check(&a), Ok(()));
        }
        let retry = limiter.check(&a).unwrap_err();
        assert!((1..=1000).contains(&retry), "{retry}");
        // Another device has its own bucket.
        assert_eq!(limiter.check(&b), Ok(()));
        limiter.forget_idle();
        assert!(limiter.check(&a).is_err());
    }

    #[test]
    fn zero_settings_still_allow_one() {
        let limiter = SendLimiter::new(0, 0);
        let a = DeviceId::from_bytes([3; 16]);
        assert_eq!(limiter.check(&a), Ok(()));
        assert!(limiter.check(&a).is_err());
    }
}
