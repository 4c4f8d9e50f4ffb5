//! Per-device send rate limits: a token bucket per device (GCRA, via `governor`), in memory
//! only (ARCHITECTURE.md: rate-limit counters may be kept, in memory).

use std::num::NonZeroU32;

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};
use kith_protocol::DeviceId;

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

#[cfg(test)]
mod tests {
    use super::*;

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
