//! The admin login's guard against password guessing (README "Admin listener").
//!
//! Failures are counted per source address *and* user name, so that failed logins from
//! elsewhere, or for other names, never hold an admin back. The first few failures of a
//! pair cost nothing; each further one closes the pair for twice as long as the last
//! (1 s, 2 s, 4 s, ... at most 15 minutes), and a successful login clears it. While a
//! pair is closed its attempts are answered 429 without checking the password, the right
//! one included: checking it would tell a guesser when a guess is right (200 rather than
//! 429), which would let guessing go on at full speed and defeat the limit. Besides, an
//! address may fail at most [`ADDRESS_FAILURES`] times a minute whatever the names, so
//! that trying many names cannot spend the host's CPU on argon2 verifications.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Failures of one (address, user name) pair before the back-off starts: enough for a
/// person who mistypes.
pub const FREE_FAILURES: u32 = 5;
/// The longest a pair is closed after a failure.
pub const MAX_BACK_OFF: Duration = Duration::from_secs(15 * 60);
/// A pair's failures are forgotten once it has been this long without one.
const FORGET_AFTER: Duration = Duration::from_secs(60 * 60);
/// Failures one address may have per [`ADDRESS_WINDOW`], whatever the user names.
pub const ADDRESS_FAILURES: u32 = 100;
pub const ADDRESS_WINDOW: Duration = Duration::from_secs(60);
/// Pairs (and addresses) tracked before stale ones are dropped.
const MAX_TRACKED: usize = 10_000;
/// User names longer than this are tracked by their first bytes (names a user can
/// have are far shorter).
const NAME_BYTES: usize = 128;

/// Failures of one (address, user name) pair.
#[derive(Debug, Clone, Copy)]
struct Pair {
    failures: u32,
    last_failure: Instant,
    closed_until: Instant,
}

/// Failures of one address in its current window.
#[derive(Debug, Clone, Copy)]
struct Address {
    window_start: Instant,
    failures: u32,
}

#[derive(Default)]
struct State {
    pairs: HashMap<(IpAddr, String), Pair>,
    addresses: HashMap<IpAddr, Address>,
}

/// Login failures by address and user name.
#[derive(Default)]
pub struct LoginLimiter {
    // std Mutex: held for a map lookup, never across an .await.
    state: Mutex<State>,
}

fn pair_key(ip: IpAddr, name: &str) -> (IpAddr, String) {
    let mut end = name.len().min(NAME_BYTES);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    (ip, name[..end].to_owned())
}

/// Whole seconds until `until`, rounded up: retrying at the advertised second succeeds.
fn seconds_until(until: Instant, now: Instant) -> u64 {
    let left = until.saturating_duration_since(now);
    left.as_secs() + u64::from(left.subsec_nanos() > 0)
}

/// How long a pair is closed after its `failures`-th failure.
fn back_off(failures: u32) -> Duration {
    match failures.checked_sub(FREE_FAILURES) {
        None => Duration::ZERO,
        Some(n) => Duration::from_secs(1u64 << n.min(20)).min(MAX_BACK_OFF),
    }
}

impl LoginLimiter {
    pub fn new() -> Self {
        LoginLimiter::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `name` may be tried from `ip` at `now`; `Err(seconds to wait)` when not.
    pub fn check(&self, ip: IpAddr, name: &str, now: Instant) -> Result<(), u64> {
        let state = self.lock();
        if let Some(a) = state.addresses.get(&ip) {
            let end = a.window_start + ADDRESS_WINDOW;
            if a.failures >= ADDRESS_FAILURES && now < end {
                return Err(seconds_until(end, now));
            }
        }
        match state.pairs.get(&pair_key(ip, name)) {
            Some(p) if now < p.closed_until => Err(seconds_until(p.closed_until, now)),
            _ => Ok(()),
        }
    }

    /// Counts a failed login of `name` from `ip` at `now`.
    pub fn failed(&self, ip: IpAddr, name: &str, now: Instant) {
        let mut state = self.lock();
        if state.pairs.len() >= MAX_TRACKED || state.addresses.len() >= MAX_TRACKED {
            state.pairs.retain(|_, p| {
                now.saturating_duration_since(p.last_failure) < FORGET_AFTER || p.closed_until > now
            });
            state
                .addresses
                .retain(|_, a| now.saturating_duration_since(a.window_start) < ADDRESS_WINDOW);
        }
        let a = state.addresses.entry(ip).or_insert(Address {
            window_start: now,
            failures: 0,
        });
        if now.saturating_duration_since(a.window_start) >= ADDRESS_WINDOW {
            *a = Address {
                window_start: now,
                failures: 0,
            };
        }
        a.failures = a.failures.saturating_add(1);
        let p = state.pairs.entry(pair_key(ip, name)).or_insert(Pair {
            failures: 0,
            last_failure: now,
            closed_until: now,
        });
        if now.saturating_duration_since(p.last_failure) >= FORGET_AFTER {
            p.failures = 0;
        }
        p.failures = p.failures.saturating_add(1);
        p.last_failure = now;
        p.closed_until = now + back_off(p.failures);
    }

    /// A successful login of `name` from `ip`: that pair starts afresh.
    pub fn succeeded(&self, ip: IpAddr, name: &str) {
        self.lock().pairs.remove(&pair_key(ip, name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn failures_back_off_per_address_and_name() {
        let l = LoginLimiter::new();
        let (a, b) = (ip("10.0.0.1"), ip("10.0.0.2"));
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        for _ in 0..FREE_FAILURES - 1 {
            assert_eq!(l.check(a, "root", t0), Ok(()));
            l.failed(a, "root", t0);
        }
        assert_eq!(l.check(a, "root", t0), Ok(()));
        l.failed(a, "root", t0);
        // The fifth failure closes the pair for 1 s, the next for 2 s, then 4 s.
        assert_eq!(l.check(a, "root", at(500)), Err(1));
        assert_eq!(l.check(a, "ops", at(500)), Ok(()), "another name");
        assert_eq!(l.check(b, "root", at(500)), Ok(()), "another address");
        assert_eq!(l.check(a, "root", at(1000)), Ok(()));
        l.failed(a, "root", at(1000));
        assert_eq!(l.check(a, "root", at(2999)), Err(1));
        assert_eq!(l.check(a, "root", at(3000)), Ok(()));
        l.failed(a, "root", at(3000));
        assert_eq!(l.check(a, "root", at(3000)), Err(4));
        // A success clears the pair.
        l.succeeded(a, "root");
        assert_eq!(l.check(a, "root", at(3000)), Ok(()));
        l.failed(a, "root", at(3000));
        assert_eq!(l.check(a, "root", at(3000)), Ok(()));
    }

    #[test]
    fn the_back_off_doubles_up_to_its_cap_and_is_forgotten() {
        assert_eq!(back_off(FREE_FAILURES - 1), Duration::ZERO);
        assert_eq!(back_off(FREE_FAILURES), Duration::from_secs(1));
        assert_eq!(back_off(FREE_FAILURES + 3), Duration::from_secs(8));
        assert_eq!(back_off(FREE_FAILURES + 40), MAX_BACK_OFF);
        assert_eq!(back_off(u32::MAX), MAX_BACK_OFF);
        let l = LoginLimiter::new();
        let a = ip("10.0.0.1");
        let t0 = Instant::now();
        for _ in 0..FREE_FAILURES {
            l.failed(a, "root", t0);
        }
        let later = t0 + FORGET_AFTER;
        assert_eq!(l.check(a, "root", later), Ok(()));
        l.failed(a, "root", later);
        assert_eq!(l.check(a, "root", later), Ok(()), "counting starts afresh");
    }

    #[test]
    fn an_address_trying_many_names_is_held_back() {
        let l = LoginLimiter::new();
        let (a, b) = (ip("10.0.0.1"), ip("10.0.0.2"));
        let t0 = Instant::now();
        for i in 0..ADDRESS_FAILURES {
            assert_eq!(l.check(a, &format!("user{i}"), t0), Ok(()));
            l.failed(a, &format!("user{i}"), t0);
        }
        let wait = ADDRESS_WINDOW.as_secs();
        assert_eq!(l.check(a, "someone-else", t0), Err(wait));
        assert_eq!(l.check(b, "someone-else", t0), Ok(()));
        assert_eq!(l.check(a, "someone-else", t0 + ADDRESS_WINDOW), Ok(()));
        // Long names are tracked by their first bytes, on a character boundary.
        let long = "é".repeat(NAME_BYTES);
        l.failed(b, &long, t0);
        assert_eq!(pair_key(b, &long).1.len(), NAME_BYTES);
    }
}
