//! Rate limiting by key (a client address, a user): GCRA, which is a token bucket kept
//! as one timestamp per key. Keys idle for a while are forgotten, so memory is bounded
//! by the number of active clients, not of all clients ever seen.

use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::config::Rate;

/// A keyed limiter.
pub struct RateLimiter<K: Hash + Eq + Send + Sync + 'static> {
    /// Time between two requests at the steady rate, in nanoseconds.
    interval: u64,
    /// How far ahead of now the theoretical arrival time may run (the burst).
    tolerance: u64,
    epoch: Instant,
    /// Theoretical arrival time of each key, in nanoseconds since `epoch`.
    tat: moka::sync::Cache<K, Arc<AtomicU64>>,
}

impl<K: Hash + Eq + Send + Sync + Clone + 'static> RateLimiter<K> {
    pub fn new(rate: Rate) -> Self {
        let interval = (1e9 / rate.per_second.max(1e-3)) as u64;
        let tolerance = interval.saturating_mul(u64::from(rate.burst.max(1)));
        // A key whose bucket has refilled completely needs no state.
        let idle = Duration::from_nanos(tolerance).max(Duration::from_secs(1));
        Self {
            interval,
            tolerance,
            epoch: Instant::now(),
            tat: moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_idle(idle)
                .build(),
        }
    }

    /// `Ok` if `key` may go ahead now, else how long until it may.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        let now = self.epoch.elapsed().as_nanos() as u64;
        let cell = self
            .tat
            .get_with_by_ref(key, || Arc::new(AtomicU64::new(0)));
        let mut tat = cell.load(Ordering::Relaxed);
        loop {
            let base = tat.max(now);
            let next = base + self.interval;
            if next > now + self.tolerance {
                return Err(Duration::from_nanos(next - now - self.tolerance));
            }
            match cell.compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Ok(()),
                Err(current) => tat = current,
            }
        }
    }
}

/// `Retry-After` in whole seconds, never 0.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let limiter = RateLimiter::new(Rate {
            per_second: 10.0,
            burst: 5,
        });
        let ok = (0..20).filter(|_| limiter.check(&"a").is_ok()).count();
        assert_eq!(ok, 5);
        let wait = limiter.check(&"a").unwrap_err();
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        // Another key has its own bucket.
        assert!(limiter.check(&"b").is_ok());
        std::thread::sleep(Duration::from_millis(120));
        assert!(limiter.check(&"a").is_ok());
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2100)), 3);
    }
}
