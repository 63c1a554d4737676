//! Per-plugin counters: calls, refusals, faults, timeouts, and a latency histogram with fixed
//! buckets (the Prometheus shape), from which percentiles are estimated.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Upper bounds of the latency buckets, in microseconds; the last bucket is unbounded.
pub const BUCKETS_US: [u64; 14] =
    [25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000];

/// Counters of one loaded plugin version. Lock-free; read with `Relaxed` loads.
#[derive(Default, Debug)]
pub struct Stats {
    pub calls: AtomicU64,
    /// Typed refusals returned by the plugin (4xx and `internal`).
    pub guest_errors: AtomicU64,
    /// Traps, invalid output, resource limits.
    pub faults: AtomicU64,
    pub timeouts: AtomicU64,
    /// Calls per latency bucket; index `BUCKETS_US.len()` is the overflow bucket.
    pub latency: [AtomicU64; BUCKETS_US.len() + 1],
    pub latency_sum_us: AtomicU64,
    /// Faults since the last call that did not fault.
    pub consecutive_faults: AtomicU64,
    /// While isolated: when the plugin may be tried again (ms since `Stats::epoch`), else 0.
    isolated_until_ms: AtomicU64,
    epoch: std::sync::OnceLock<Instant>,
}

impl Stats {
    fn now_ms(&self) -> u64 {
        let epoch = *self.epoch.get_or_init(Instant::now);
        u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX).max(1)
    }

    /// Record a call's outcome for isolation: after `threshold` consecutive faults the plugin
    /// is isolated for `cool_down`. After the cool-down it is on probation, like a circuit
    /// breaker's half-open state: one more fault isolates it again at once, and only a call
    /// that does not fault gives it back the whole `threshold`.
    pub fn record_outcome(&self, faulted: bool, threshold: u64, cool_down: Duration) {
        if !faulted {
            self.consecutive_faults.store(0, Ordering::Relaxed);
            return;
        }
        if self.consecutive_faults.fetch_add(1, Ordering::Relaxed) + 1 >= threshold {
            let until = self.now_ms() + u64::try_from(cool_down.as_millis()).unwrap_or(u64::MAX);
            self.isolated_until_ms.store(until, Ordering::Relaxed);
            self.consecutive_faults.store(threshold.saturating_sub(1), Ordering::Relaxed);
        }
    }

    /// How long the plugin stays isolated, if it is.
    pub fn isolated_for(&self) -> Option<Duration> {
        let until = self.isolated_until_ms.load(Ordering::Relaxed);
        let now = self.now_ms();
        (until > now).then(|| Duration::from_millis(until - now))
    }

    pub fn record_latency(&self, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let bucket = BUCKETS_US.iter().position(|&bound| us <= bound).unwrap_or(BUCKETS_US.len());
        self.latency[bucket].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// The upper bound (µs) of the bucket holding the `q` quantile (0 < q ≤ 1); `None`
    /// without calls, `u64::MAX` when it falls in the overflow bucket.
    pub fn quantile_us(&self, q: f64) -> Option<u64> {
        let counts: Vec<u64> = self.latency.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, count) in counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(BUCKETS_US.get(i).copied().unwrap_or(u64::MAX));
            }
        }
        Some(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_fault_on_probation_isolates_again() {
        let (stats, cool_down) = (Stats::default(), Duration::from_millis(30));
        // Millisecond clock: wait a little past the cool-down.
        let past_cool_down = cool_down + Duration::from_millis(5);
        for _ in 0..2 {
            stats.record_outcome(true, 3, cool_down);
        }
        assert!(stats.isolated_for().is_none(), "two faults of three");
        stats.record_outcome(true, 3, cool_down);
        assert!(stats.isolated_for().is_some(), "the third fault isolates");

        std::thread::sleep(past_cool_down);
        assert!(stats.isolated_for().is_none(), "tried again after the cool-down");
        stats.record_outcome(true, 3, cool_down);
        assert!(stats.isolated_for().is_some(), "a fault on probation isolates at once");

        std::thread::sleep(past_cool_down);
        stats.record_outcome(false, 3, cool_down);
        for _ in 0..2 {
            stats.record_outcome(true, 3, cool_down);
        }
        assert!(stats.isolated_for().is_none(), "a good call gave back the whole threshold");
    }

    #[test]
    fn quantiles_come_from_the_buckets() {
        let stats = Stats::default();
        assert_eq!(stats.quantile_us(0.5), None);
        for _ in 0..90 {
            stats.record_latency(Duration::from_micros(40));
        }
        for _ in 0..10 {
            stats.record_latency(Duration::from_millis(3));
        }
        assert_eq!(stats.quantile_us(0.5), Some(50));
        assert_eq!(stats.quantile_us(0.9), Some(50));
        assert_eq!(stats.quantile_us(0.99), Some(5_000));
        stats.record_latency(Duration::from_secs(5));
        assert_eq!(stats.quantile_us(1.0), Some(u64::MAX));
    }
}
