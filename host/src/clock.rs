//! The host clock: the one source of "now" for requests, stamps and expiry.
//!
//! Plugins never read a clock of their own; they get the request's instant from the host.
//! Tests can pin or shift the clock (see `Clock::set`), which is how time windows are tested.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};

/// A cheaply cloneable clock that is the system clock plus an optional pinned instant.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// Milliseconds since the epoch to report instead of the system time; 0 means "system".
    pinned_ms: Arc<AtomicI64>,
}

impl Clock {
    /// The current instant.
    pub fn now(&self) -> DateTime<Utc> {
        match self.pinned_ms.load(Ordering::Relaxed) {
            0 => Utc::now(),
            ms => Utc.timestamp_millis_opt(ms).single().unwrap_or_else(Utc::now),
        }
    }

    /// Pin the clock to `instant`, or return to the system clock with `None`.
    pub fn set(&self, instant: Option<DateTime<Utc>>) {
        self.pinned_ms.store(instant.map_or(0, |t| t.timestamp_millis()), Ordering::Relaxed);
    }
}

/// Format an instant the way JavaScript's `toISOString` does: `2026-11-27T06:31:27.123Z`.
pub fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}
