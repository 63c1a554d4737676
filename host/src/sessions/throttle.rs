//! Login throttling that slows the guesser, not the account's owner (OWASP: a lockout is itself
//! a denial of service). Three rules, all counting the e-mail as typed (trimmed, lower-cased,
//! whether or not the account exists, so no answer reveals which accounts exist):
//!
//! - A client address that fails on one account backs off: after `FREE_ON_ONE_ACCOUNT`
//!   failures it waits `FIRST_WAIT` after each further failure, doubling up to `LONGEST_WAIT`.
//!   Other addresses are not slowed. A successful sign-in clears the address's failures on
//!   that account.
//! - An address that fails across many accounts (spraying) backs off the same way after
//!   `FREE_ACROSS_ACCOUNTS` failures.
//! - An account that fails `ACCOUNT_LIMIT` times in one `ACCOUNT_WINDOW`, from all addresses
//!   together, admits until the window ends only addresses that signed in to it before. One
//!   address backing off cannot get there; only guessing spread over many addresses can.
//!
//! An IPv6 client is its /64. This room decides; `http/auth.rs` asks it and answers 429, and
//! `client_addr.rs` says which address a request comes from.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::cluster::Command;
use crate::db::Db;

/// Failures an address may make on one account before it has to wait.
pub const FREE_ON_ONE_ACCOUNT: u32 = 5;
/// Failures an address may make across all accounts before it has to wait.
pub const FREE_ACROSS_ACCOUNTS: u32 = 20;
/// The wait after the first failure past the free ones; each further failure doubles it.
pub const FIRST_WAIT: Duration = Duration::from_secs(1);
/// The longest wait.
pub const LONGEST_WAIT: Duration = Duration::from_secs(15 * 60);
/// An address's failures are forgotten after this long without one. With the numbers above, one
/// address gets 14 guesses at an account in its first 15 minutes, then 4 an hour at the
/// longest wait, or 14 again after each quiet hour: about 12 an hour at best.
pub const FORGET_AFTER: Duration = Duration::from_secs(60 * 60);
/// Failures on one account, from all addresses together, in one window...
pub const ACCOUNT_LIMIT: u32 = 100;
/// ...this long, counted from the window's first failure.
pub const ACCOUNT_WINDOW: Duration = Duration::from_secs(15 * 60);
/// How long an address that signed in to an account stays exempt from the account limit and
/// from its own failures across accounts (the absolute session lifetime).
pub const REMEMBER_SIGN_IN: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// Entries per table. Past it, stale entries are swept, then the least recent half: a flood of
/// new addresses or e-mails costs memory up to this and no more.
const MAX_ENTRIES: usize = 100_000;

/// The e-mail as typed, normalized, hashed so that a long one costs no more memory.
type Account = [u8; 32];
/// The client's address (an IPv6 client as its /64); `None` when the server runs without
/// connection info, where every client is one.
type Client = Option<IpAddr>;

/// An address's failures (until a quiet `FORGET_AFTER`) and when the last one was answered.
#[derive(Clone, Copy)]
struct Backoff {
    failures: u32,
    last: Instant,
}

impl Backoff {
    fn forgotten(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last) >= FORGET_AFTER
    }

    /// How long to wait before the next attempt, if at all, once `free` failures are spent.
    fn wait(&self, free: u32, now: Instant) -> Option<Duration> {
        if self.forgotten(now) || self.failures < free {
            return None;
        }
        let doublings = (self.failures - free).min(16);
        let wait = (FIRST_WAIT * (1 << doublings)).min(LONGEST_WAIT);
        (self.last + wait).checked_duration_since(now).filter(|left| !left.is_zero())
    }

    fn count(&mut self, now: Instant) {
        if self.forgotten(now) {
            self.failures = 0;
        }
        self.failures = self.failures.saturating_add(1);
        self.last = now;
    }
}

/// One account's failures from all addresses in a fixed window.
#[derive(Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

impl Window {
    fn over(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.started) >= ACCOUNT_WINDOW
    }

    fn wait(&self, now: Instant) -> Option<Duration> {
        (!self.over(now) && self.failures >= ACCOUNT_LIMIT)
            .then(|| (self.started + ACCOUNT_WINDOW).saturating_duration_since(now))
    }
}

#[derive(Default)]
struct Tables {
    /// An address's failures on one account.
    on_account: HashMap<(Client, Account), Backoff>,
    /// An address's failures on any account.
    across_accounts: HashMap<IpAddr, Backoff>,
    /// Each account's failures from everywhere.
    accounts: HashMap<Account, Window>,
    /// When an address last signed in to an account.
    signed_in: HashMap<(IpAddr, Account), Instant>,
}

/// Counts sign-in attempts. Cheap to share behind an `Arc`. Every method takes `now`, so the
/// rules are tested without sleeping.
pub struct LoginThrottle {
    tables: Mutex<Tables>,
    max_entries: usize,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        LoginThrottle::with_max_entries(MAX_ENTRIES)
    }
}

impl LoginThrottle {
    fn with_max_entries(max_entries: usize) -> Self {
        LoginThrottle { tables: Mutex::default(), max_entries }
    }

    /// Admit an attempt by `address` to sign in as `email`, or `Err(wait)` when one of the rules
    /// says it must wait. An admitted attempt counts as a failure until `succeeded` says
    /// otherwise, so attempts sent together cannot all pass while their passwords are checked.
    /// (An attempt the server fails to answer stays counted.)
    pub fn admit(&self, email: &str, address: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        let (client, account) = (client_of(address), account_of(email));
        let mut tables = self.lock();
        let signed_in_before = client
            .and_then(|ip| tables.signed_in.get(&(ip, account)))
            .is_some_and(|&at| now.saturating_duration_since(at) < REMEMBER_SIGN_IN);
        let on_account = tables.on_account.get(&(client, account)).and_then(|b| b.wait(FREE_ON_ONE_ACCOUNT, now));
        let (across_accounts, account_limit) = if signed_in_before {
            (None, None)
        } else {
            let across = client.and_then(|ip| tables.across_accounts.get(&ip));
            (
                across.and_then(|b| b.wait(FREE_ACROSS_ACCOUNTS, now)),
                tables.accounts.get(&account).and_then(|w| w.wait(now)),
            )
        };
        if let Some(wait) = [on_account, across_accounts, account_limit].into_iter().flatten().max() {
            return Err(wait);
        }
        Self::count(&mut tables, self.max_entries, client, account, now);
        Ok(())
    }

    /// Count an attempt (as a failure until it is known to have succeeded).
    fn count(tables: &mut Tables, max: usize, client: Client, account: Account, now: Instant) {
        let fresh = Backoff { failures: 0, last: now };
        bound(&mut tables.on_account, max, |b| b.last, |b| b.forgotten(now));
        tables.on_account.entry((client, account)).or_insert(fresh).count(now);
        if let Some(ip) = client {
            bound(&mut tables.across_accounts, max, |b| b.last, |b| b.forgotten(now));
            tables.across_accounts.entry(ip).or_insert(fresh).count(now);
        }
        bound(&mut tables.accounts, max, |w| w.started, |w| w.over(now));
        let window = tables.accounts.entry(account).or_insert(Window { started: now, failures: 0 });
        if window.over(now) {
            *window = Window { started: now, failures: 0 };
        }
        window.failures = window.failures.saturating_add(1);
    }

    /// The answer to an attempt: `failed` or `succeeded` here, and sent to the other nodes of a
    /// cluster, which count it too ([`LoginThrottle::heard`]), so that the rules hold across
    /// nodes whichever one a client tries.
    pub async fn answered(&self, db: &Db, email: &str, address: Option<IpAddr>, succeeded: bool) {
        let now = Instant::now();
        if succeeded {
            self.succeeded(email, address, now);
        } else {
            self.failed(email, address, now);
        }
        let command = Command::SignIn { email: email.to_owned(), address: address.map(|a| a.to_string()), succeeded };
        command.broadcast(db).await;
    }

    /// An attempt another node admitted and answered, counted as if it had been made here.
    pub fn heard(&self, email: &str, address: Option<IpAddr>, succeeded: bool, now: Instant) {
        let (client, account) = (client_of(address), account_of(email));
        Self::count(&mut self.lock(), self.max_entries, client, account, now);
        if succeeded {
            self.succeeded(email, address, now);
        } else {
            self.failed(email, address, now);
        }
    }

    /// The admitted attempt failed. The address's waits run from now, when it got its answer.
    pub fn failed(&self, email: &str, address: Option<IpAddr>, now: Instant) {
        let (client, account) = (client_of(address), account_of(email));
        let mut tables = self.lock();
        if let Some(backoff) = tables.on_account.get_mut(&(client, account)) {
            backoff.last = now;
        }
        if let Some(backoff) = client.and_then(|ip| tables.across_accounts.get_mut(&ip)) {
            backoff.last = now;
        }
    }

    /// The admitted attempt signed in: the address's failures on this account are cleared, the
    /// attempt is no longer counted, and the address is remembered as one that signs in to this
    /// account. Its failures on other accounts are not cleared: signing in to an account of
    /// one's own must not buy more guesses at others.
    pub fn succeeded(&self, email: &str, address: Option<IpAddr>, now: Instant) {
        let (client, account) = (client_of(address), account_of(email));
        let mut tables = self.lock();
        tables.on_account.remove(&(client, account));
        if let Some(window) = tables.accounts.get_mut(&account) {
            window.failures = window.failures.saturating_sub(1);
        }
        if let Some(ip) = client {
            if let Some(backoff) = tables.across_accounts.get_mut(&ip) {
                backoff.failures = backoff.failures.saturating_sub(1);
            }
            let max = self.max_entries;
            bound(&mut tables.signed_in, max, |&at| at, |&at| now.saturating_duration_since(at) >= REMEMBER_SIGN_IN);
            tables.signed_in.insert((ip, account), now);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Make room for one more entry in `table`: at `max` entries, sweep the stale ones, and if
/// more than half remain, keep only the most recent half (each sweep then buys `max / 2`
/// insertions, so the cost stays constant per attempt).
fn bound<K: Eq + Hash, V>(
    table: &mut HashMap<K, V>,
    max: usize,
    recency: impl Fn(&V) -> Instant,
    stale: impl Fn(&V) -> bool,
) {
    if table.len() < max {
        return;
    }
    table.retain(|_, v| !stale(v));
    let keep = max / 2;
    if table.len() > keep {
        let mut times: Vec<Instant> = table.values().map(&recency).collect();
        let cut = times.len() - keep;
        let (_, &mut oldest_kept, newer) = times.select_nth_unstable(cut);
        // Ties at the boundary are kept only as far as there is room, so equal instants
        // cannot defeat the bound.
        let mut room_at_boundary = keep - newer.iter().filter(|&&at| at > oldest_kept).count();
        table.retain(|_, v| {
            let at = recency(v);
            let kept = at > oldest_kept || (at == oldest_kept && room_at_boundary > 0);
            if at == oldest_kept && kept {
                room_at_boundary -= 1;
            }
            kept
        });
    }
}

fn account_of(email: &str) -> Account {
    Sha256::digest(email.trim().to_lowercase().as_bytes()).into()
}

/// An IPv6 client is its /64, one subscriber's network: rotating addresses inside it gains
/// nothing.
fn client_of(address: Option<IpAddr>) -> Client {
    address.map(|address| match address.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        v4 => v4,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADA: &str = "ada@example.com";

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    /// `n` attempts that fail, each answered at `now`.
    fn fail(throttle: &LoginThrottle, email: &str, address: Option<IpAddr>, now: Instant, n: u32) {
        for _ in 0..n {
            throttle.admit(email, address, now).expect("admitted");
            throttle.failed(email, address, now);
        }
    }

    #[test]
    fn a_failing_address_waits_twice_as_long_after_each_further_failure() {
        let (throttle, attacker, mut now) = (LoginThrottle::default(), ip("203.0.113.7"), Instant::now());
        fail(&throttle, ADA, attacker, now, FREE_ON_ONE_ACCOUNT);
        let mut wait = FIRST_WAIT;
        for _ in 0..12 {
            assert_eq!(throttle.admit(ADA, attacker, now), Err(wait));
            assert_eq!(throttle.admit(ADA, attacker, now + wait / 2), Err(wait / 2), "counts down");
            now += wait;
            fail(&throttle, ADA, attacker, now, 1);
            wait = (wait * 2).min(LONGEST_WAIT);
        }
        assert_eq!(wait, LONGEST_WAIT, "capped");
        assert_eq!(throttle.admit(ADA, attacker, now), Err(LONGEST_WAIT));
    }

    #[test]
    fn another_address_signs_in_while_one_hammers_the_account() {
        let (throttle, now) = (LoginThrottle::default(), Instant::now());
        let (attacker, owner) = (ip("203.0.113.7"), ip("198.51.100.20"));
        fail(&throttle, ADA, attacker, now, FREE_ON_ONE_ACCOUNT);
        assert!(throttle.admit(ADA, attacker, now).is_err());
        assert_eq!(throttle.admit(ADA, owner, now), Ok(()), "the owner is not slowed");
        throttle.succeeded(ADA, owner, now);
        assert!(throttle.admit("bob@example.com", attacker, now).is_ok(), "nor the attacker's other accounts");
    }

    #[test]
    fn signing_in_clears_the_addresss_failures_on_that_account() {
        let (throttle, owner, now) = (LoginThrottle::default(), ip("198.51.100.20"), Instant::now());
        fail(&throttle, ADA, owner, now, FREE_ON_ONE_ACCOUNT);
        let later = now + FIRST_WAIT;
        throttle.admit(ADA, owner, later).unwrap();
        throttle.succeeded(ADA, owner, later);
        fail(&throttle, ADA, owner, later, FREE_ON_ONE_ACCOUNT);
    }

    #[test]
    fn the_account_is_the_email_as_typed_normalized() {
        let (throttle, attacker, now) = (LoginThrottle::default(), ip("203.0.113.7"), Instant::now());
        fail(&throttle, " Ada@Example.COM ", attacker, now, FREE_ON_ONE_ACCOUNT);
        assert!(throttle.admit(ADA, attacker, now).is_err());
    }

    #[test]
    fn attempts_count_when_admitted_so_concurrent_ones_cannot_slip_past() {
        let (throttle, attacker, now) = (LoginThrottle::default(), ip("203.0.113.7"), Instant::now());
        for _ in 0..FREE_ON_ONE_ACCOUNT {
            throttle.admit(ADA, attacker, now).unwrap();
        }
        assert!(throttle.admit(ADA, attacker, now).is_err(), "five are still being checked");
    }

    #[test]
    fn an_address_spraying_many_accounts_backs_off_except_where_it_signed_in_before() {
        let (throttle, now) = (LoginThrottle::default(), Instant::now());
        let (sprayer, other) = (ip("203.0.113.7"), ip("198.51.100.20"));
        throttle.admit(ADA, sprayer, now).unwrap();
        throttle.succeeded(ADA, sprayer, now);
        for i in 0..FREE_ACROSS_ACCOUNTS {
            fail(&throttle, &format!("user{i}@example.com"), sprayer, now, 1);
        }
        assert_eq!(throttle.admit("new@example.com", sprayer, now), Err(FIRST_WAIT));
        assert!(throttle.admit("new@example.com", other, now).is_ok(), "other addresses are not slowed");
        assert!(throttle.admit(ADA, sprayer, now).is_ok(), "its own account still signs in");
    }

    #[test]
    fn distributed_guessing_is_bounded_per_account_but_addresses_that_signed_in_get_through() {
        let (throttle, now) = (LoginThrottle::default(), Instant::now());
        let owner = ip("198.51.100.20");
        throttle.admit(ADA, owner, now).unwrap();
        throttle.succeeded(ADA, owner, now);
        let bots = ACCOUNT_LIMIT / FREE_ON_ONE_ACCOUNT;
        for bot in 0..bots {
            fail(&throttle, ADA, ip(&format!("10.0.{bot}.1")), now, FREE_ON_ONE_ACCOUNT);
        }
        let newcomer = ip("192.0.2.1");
        assert_eq!(throttle.admit(ADA, newcomer, now + FIRST_WAIT), Err(ACCOUNT_WINDOW - FIRST_WAIT));
        assert_eq!(throttle.admit("nobody@example.com", newcomer, now), Ok(()), "other accounts are not");
        assert_eq!(throttle.admit(ADA, owner, now), Ok(()), "an address that signed in before gets through");
        throttle.succeeded(ADA, owner, now);
        assert_eq!(throttle.admit(ADA, newcomer, now + ACCOUNT_WINDOW), Ok(()), "until the window ends");
    }

    #[test]
    fn failures_are_forgotten_after_a_quiet_hour() {
        let (throttle, attacker, now) = (LoginThrottle::default(), ip("203.0.113.7"), Instant::now());
        fail(&throttle, ADA, attacker, now, FREE_ON_ONE_ACCOUNT);
        let later = now + FORGET_AFTER;
        // Still counted, the second of these would wait 2 s.
        fail(&throttle, ADA, attacker, later, FREE_ON_ONE_ACCOUNT);
        assert_eq!(throttle.admit(ADA, attacker, later), Err(FIRST_WAIT), "counted afresh");
    }

    #[test]
    fn an_ipv6_client_is_its_64() {
        let (throttle, now) = (LoginThrottle::default(), Instant::now());
        fail(&throttle, ADA, ip("2001:db8::1"), now, FREE_ON_ONE_ACCOUNT);
        assert!(throttle.admit(ADA, ip("2001:db8::ffff:2"), now).is_err(), "same /64");
        assert!(throttle.admit(ADA, ip("2001:db8:0:1::1"), now).is_ok(), "another /64");
        fail(&throttle, ADA, ip("::ffff:192.0.2.1"), now, FREE_ON_ONE_ACCOUNT);
        assert!(throttle.admit(ADA, ip("192.0.2.1"), now).is_err(), "an IPv4-mapped address is its IPv4");
    }

    #[test]
    fn memory_stays_bounded_under_a_spray_of_addresses_and_emails() {
        let (throttle, now) = (LoginThrottle::with_max_entries(64), Instant::now());
        for i in 0..1_000u32 {
            let address = Some(IpAddr::from(i.to_be_bytes()));
            fail(&throttle, &format!("user{i}@example.com"), address, now, 1);
            throttle.admit("owner@example.com", address, now).unwrap();
            throttle.succeeded("owner@example.com", address, now);
        }
        let tables = throttle.lock();
        assert!(tables.on_account.len() <= 64 && tables.across_accounts.len() <= 64);
        assert!(tables.accounts.len() <= 64 && tables.signed_in.len() <= 64);
    }
}
