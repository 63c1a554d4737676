//! Login throttling: failed sign-ins are counted per account (the e-mail as typed, whether or
//! not it exists, so the answer reveals nothing) and per client address, in a fixed window.
//! Over either limit, sign-in answers 429 until the window ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed sign-ins allowed per account in one window.
pub const PER_ACCOUNT: u32 = 5;
/// Failed sign-ins allowed per client address in one window.
pub const PER_ADDRESS: u32 = 20;
/// The window.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Entries kept before stale ones are swept (bounds memory under a spray of addresses).
const SWEEP_ABOVE: usize = 10_000;

#[derive(Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

/// Counts failed sign-ins. Cheap to share behind an `Arc`.
#[derive(Default)]
pub struct LoginThrottle {
    windows: Mutex<HashMap<String, Window>>,
}

impl LoginThrottle {
    /// `Err(retry_after)` when `email` or `address` is over its limit.
    pub fn check(&self, email: &str, address: Option<IpAddr>) -> Result<(), Duration> {
        let windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let over = |key: String, limit: u32| {
            windows
                .get(&key)
                .filter(|w| now.duration_since(w.started) < WINDOW && w.failures >= limit)
                .map(|w| WINDOW - now.duration_since(w.started))
        };
        let account = over(account_key(email), PER_ACCOUNT);
        let address = address.and_then(|a| over(address_key(a), PER_ADDRESS));
        match account.into_iter().chain(address).max() {
            Some(retry_after) => Err(retry_after),
            None => Ok(()),
        }
    }

    /// Count a failed sign-in.
    pub fn failed(&self, email: &str, address: Option<IpAddr>) {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if windows.len() > SWEEP_ABOVE {
            windows.retain(|_, w| now.duration_since(w.started) < WINDOW);
        }
        for key in std::iter::once(account_key(email)).chain(address.map(address_key)) {
            let w = windows.entry(key).or_insert(Window { started: now, failures: 0 });
            if now.duration_since(w.started) >= WINDOW {
                *w = Window { started: now, failures: 0 };
            }
            w.failures += 1;
        }
    }

    /// A successful sign-in clears the account's count (not the address's).
    pub fn succeeded(&self, email: &str) {
        self.windows.lock().unwrap_or_else(|p| p.into_inner()).remove(&account_key(email));
    }
}

fn account_key(email: &str) -> String {
    format!("account:{}", email.trim().to_lowercase())
}

fn address_key(address: IpAddr) -> String {
    format!("address:{address}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_and_addresses_are_limited_separately() {
        let throttle = LoginThrottle::default();
        let home: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..PER_ACCOUNT {
            assert!(throttle.check("Ada@example.com", Some(home)).is_ok());
            throttle.failed("Ada@example.com", Some(home));
        }
        assert!(throttle.check("ada@example.com", Some(home)).is_err(), "the account is limited, in any case");
        assert!(throttle.check("bob@example.com", Some(home)).is_ok(), "other accounts are not");
        throttle.succeeded("ada@example.com");
        assert!(throttle.check("ada@example.com", Some(home)).is_ok());

        for i in 0..PER_ADDRESS {
            throttle.failed(&format!("user{i}@example.com"), Some(home));
        }
        assert!(throttle.check("new@example.com", Some(home)).is_err(), "the address is limited");
        assert!(throttle.check("new@example.com", Some("10.0.0.1".parse().unwrap())).is_ok());
    }
}
