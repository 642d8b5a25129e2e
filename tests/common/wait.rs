//! The one way a test waits for something the gateway does in its own time (a cache
//! refresh, a usage write, an expiry, a health check): [`eventually`] asks again and
//! again until the answer is yes, and fails the test with what it waited for and what it
//! last saw once its bound has passed. Never a bare sleep: a sleep is either too short on
//! a busy machine or wasted on an idle one.

use std::fmt::Display;
use std::time::{Duration, Instant};

/// The longest pause between two checks; the first pauses are shorter, so that what is
/// ready at once is seen at once.
const MAX_PAUSE: Duration = Duration::from_millis(100);

/// What one check of [`eventually`] found: done (with a value), or not yet (and why).
pub trait Check {
    type Value;
    /// `Err` holds what was seen instead, for the failure message.
    fn done(self) -> Result<Self::Value, String>;
}

impl Check for bool {
    type Value = ();
    fn done(self) -> Result<(), String> {
        if self {
            Ok(())
        } else {
            Err("false".to_owned())
        }
    }
}

impl<T> Check for Option<T> {
    type Value = T;
    fn done(self) -> Result<T, String> {
        self.ok_or_else(|| "None".to_owned())
    }
}

impl<T, E: Display> Check for Result<T, E> {
    type Value = T;
    fn done(self) -> Result<T, String> {
        self.map_err(|e| e.to_string())
    }
}

/// Runs `check` until it is done and returns its value; panics once `limit` has passed
/// with `what` (phrased as what was awaited: "the revocation to reach the proxy") and
/// the last thing seen. The check may assert on what it sees on the way (a status that
/// must be one of two). It gives up only after a check that ended past the bound, never
/// in the middle of one.
pub async fn eventually<C: Check>(
    what: &str,
    limit: Duration,
    mut check: impl AsyncFnMut() -> C,
) -> C::Value {
    let started = Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        let seen = match check().await.done() {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        if started.elapsed() >= limit {
            panic!("waited {limit:?} for {what}; last seen: {seen}");
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// Seconds since the Unix epoch by this machine's clock: the clock a gateway counting
/// alone keys its per-minute windows by.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Fails the test when `now` (Unix seconds) is past `minute`, one a test asserted the
/// window of.
pub fn still_in(minute: i64, now: i64) {
    assert_eq!(now - now % 60, minute, "the test outlived its minute");
}

/// The start of the current minute of the clock `now` reads (Unix seconds), once at
/// least ten seconds of it are left: a test that asserts what one minute's window holds
/// takes a second or two, and must not straddle two windows.
pub async fn a_fresh_minute(mut now: impl AsyncFnMut() -> i64) -> i64 {
    eventually(
        "a minute with ten seconds left",
        std::time::Duration::from_secs(15),
        async || {
            let t = now().await;
            (t % 60 < 50).then_some(t - t % 60)
        },
    )
    .await
}
