//! A circuit breaker, one per key of each upstream: after [`FAILURES_TO_OPEN`]
//! consecutive failures the key is skipped for [`COOL_DOWN`] (the upstream too, by
//! routing, when all of its keys are); then one request probes it (half-open): success
//! closes the circuit, failure opens it again.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Consecutive failures (connect errors, timeouts before the header, 429, 5xx) that open
/// the circuit.
pub const FAILURES_TO_OPEN: u32 = 5;
/// How long an open circuit keeps its key out of rotation before a probe, unless the
/// upstream sets `circuit_cool_down_s`.
pub const COOL_DOWN: Duration = Duration::from_secs(30);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Lock-free breaker state, shared by every request to the upstream.
#[derive(Debug)]
pub struct Circuit {
    /// How long an open circuit stays open before a probe, in ms.
    cool_ms: u64,
    failures: AtomicU32,
    /// Unix ms when the circuit opened; 0 while closed.
    opened_at: AtomicU64,
    /// Unix ms when a half-open probe was let through; 0 when none is out. A probe that
    /// never reports (its request refused before it was sent, say) expires after a
    /// cool-down, so the circuit cannot stay half-open forever.
    probe_at: AtomicU64,
}

/// What a circuit looks like from outside (metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

impl Default for Circuit {
    fn default() -> Self {
        Circuit::with_cool_down(COOL_DOWN)
    }
}

impl Circuit {
    pub fn with_cool_down(cool_down: Duration) -> Self {
        Circuit {
            cool_ms: u64::try_from(cool_down.as_millis()).unwrap_or(u64::MAX),
            failures: AtomicU32::new(0),
            opened_at: AtomicU64::new(0),
            probe_at: AtomicU64::new(0),
        }
    }

    /// How long an open circuit keeps its key out of rotation.
    pub fn cool_down(&self) -> Duration {
        Duration::from_millis(self.cool_ms)
    }

    /// Whether a request may go to this upstream now. In the half-open state only one
    /// request (the probe) is let through.
    pub fn allow(&self) -> bool {
        // A closed circuit, the usual case, needs no clock read.
        if self.opened_at.load(Ordering::Acquire) == 0 {
            return true;
        }
        self.allow_at(now_ms())
    }

    fn allow_at(&self, now: u64) -> bool {
        let opened = self.opened_at.load(Ordering::Acquire);
        if opened == 0 {
            return true;
        }
        let cool = self.cool_ms;
        if now.saturating_sub(opened) < cool {
            return false;
        }
        let probe = self.probe_at.load(Ordering::Acquire);
        if probe != 0 && now.saturating_sub(probe) < cool {
            return false;
        }
        self.probe_at
            .compare_exchange(probe, now.max(1), Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Whether [`Circuit::allow`] could let a request through, without taking the probe.
    pub fn would_allow(&self) -> bool {
        let opened = self.opened_at.load(Ordering::Acquire);
        if opened == 0 {
            return true;
        }
        let (now, cool) = (now_ms(), self.cool_ms);
        let probe = self.probe_at.load(Ordering::Acquire);
        now.saturating_sub(opened) >= cool && (probe == 0 || now.saturating_sub(probe) >= cool)
    }

    pub fn state(&self) -> CircuitState {
        match (
            self.opened_at.load(Ordering::Acquire),
            self.probe_at.load(Ordering::Acquire),
        ) {
            (0, _) => CircuitState::Closed,
            (_, 0) => CircuitState::Open,
            _ => CircuitState::HalfOpen,
        }
    }

    pub fn on_success(&self) {
        self.failures.store(0, Ordering::Release);
        self.opened_at.store(0, Ordering::Release);
        self.probe_at.store(0, Ordering::Release);
    }

    /// Records a failure; true when this failure opened (or re-opened) the circuit.
    pub fn on_failure(&self) -> bool {
        self.on_failure_at(now_ms())
    }

    fn on_failure_at(&self, now: u64) -> bool {
        if self.probe_at.swap(0, Ordering::AcqRel) != 0 {
            self.opened_at.store(now.max(1), Ordering::Release);
            return true;
        }
        let n = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        if n >= FAILURES_TO_OPEN && self.opened_at.load(Ordering::Acquire) == 0 {
            self.opened_at.store(now.max(1), Ordering::Release);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_failures_probes_after_cool_down_and_closes_on_success() {
        let c = Circuit::default();
        let t = 1_000_000;
        for _ in 0..FAILURES_TO_OPEN - 1 {
            assert!(!c.on_failure_at(t));
        }
        assert!(c.allow_at(t));
        assert!(c.on_failure_at(t));
        assert_eq!(c.state(), CircuitState::Open);
        assert!(!c.allow_at(t + 1000));
        let later = t + COOL_DOWN.as_millis() as u64;
        assert!(c.allow_at(later), "one probe");
        assert!(!c.allow_at(later), "only one");
        let stale = Circuit::default();
        stale.opened_at.store(t, Ordering::Release);
        assert!(stale.allow_at(later), "a probe");
        assert!(
            stale.allow_at(later + COOL_DOWN.as_millis() as u64),
            "a probe that never reported expires"
        );
        assert!(c.on_failure_at(later), "a failed probe re-opens");
        assert!(!c.allow_at(later + 1));
        let again = later + COOL_DOWN.as_millis() as u64;
        assert!(c.allow_at(again));
        c.on_success();
        assert_eq!(c.state(), CircuitState::Closed);
        assert!(c.allow_at(again));
    }

    #[test]
    fn the_cool_down_is_kept_and_reported() {
        assert_eq!(Circuit::default().cool_down(), COOL_DOWN);
        let c = Circuit::with_cool_down(Duration::from_millis(1500));
        assert_eq!(c.cool_down(), Duration::from_millis(1500));
        assert_eq!(
            Circuit::with_cool_down(Duration::MAX).cool_down(),
            Duration::from_millis(u64::MAX)
        );
    }

    #[test]
    fn state_follows_failures_probes_and_success_to_the_millisecond() {
        let c = Circuit::with_cool_down(Duration::from_secs(10));
        let t = 1_000_000;
        assert_eq!(c.state(), CircuitState::Closed);
        for _ in 0..FAILURES_TO_OPEN - 1 {
            assert!(!c.on_failure_at(t));
            assert_eq!(c.state(), CircuitState::Closed);
        }
        assert!(c.on_failure_at(t), "the fifth failure opens");
        assert_eq!(c.state(), CircuitState::Open);
        assert!(!c.on_failure_at(t + 1), "already open: not opened again");
        assert!(!c.allow_at(t + 9_999));
        assert_eq!(c.state(), CircuitState::Open);
        assert!(
            c.allow_at(t + 10_000),
            "the probe, once the cool-down is over"
        );
        assert_eq!(c.state(), CircuitState::HalfOpen);
        assert!(!c.allow_at(t + 19_999), "one probe at a time");
        assert!(
            c.allow_at(t + 20_000),
            "a probe that never reported expires"
        );
        assert!(c.on_failure_at(t + 20_001), "a failed probe re-opens");
        assert_eq!(c.state(), CircuitState::Open);
        assert!(!c.allow_at(t + 30_000));
        assert!(c.allow_at(t + 30_001));
        c.on_success();
        assert_eq!(c.state(), CircuitState::Closed);
        assert!(c.allow_at(t + 30_001));
        for _ in 0..FAILURES_TO_OPEN - 1 {
            assert!(!c.on_failure_at(t + 40_000), "success forgot the failures");
        }
        // At time 0 an open circuit is still open (0 would mean closed).
        let z = Circuit::default();
        for _ in 0..FAILURES_TO_OPEN {
            z.on_failure_at(0);
        }
        assert_eq!(z.state(), CircuitState::Open);
        assert!(!z.allow_at(0));
    }

    #[test]
    fn in_real_time_a_short_cool_down_lets_one_probe_through() {
        // Waits (at most 5 s) until `ready` says yes.
        let until = |ready: &dyn Fn() -> bool, what: &str| {
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while !ready() {
                assert!(std::time::Instant::now() < deadline, "{what}");
                std::thread::sleep(Duration::from_millis(2));
            }
        };
        // Long enough that a busy machine pausing this thread between two of the
        // asserts below does not end a cool-down they expect to be running.
        let c = Circuit::with_cool_down(Duration::from_millis(400));
        assert!(c.would_allow() && c.allow());
        let opened = (0..FAILURES_TO_OPEN).map(|_| c.on_failure()).last();
        assert_eq!(opened, Some(true));
        assert!(!c.would_allow());
        assert!(!c.allow());
        until(&|| c.would_allow(), "the cool-down never ended");
        assert!(c.allow(), "the probe");
        assert!(!c.would_allow(), "the probe is out");
        assert!(!c.allow());
        // A probe that never answers: a cool-down later another may go.
        until(&|| c.would_allow(), "the lost probe held the circuit");
        assert!(c.allow(), "the next probe");
        assert!(c.on_failure(), "the probe failed");
        assert!(!c.would_allow());
        until(&|| c.allow(), "no second probe");
        c.on_success();
        assert!(c.would_allow() && c.allow());
        assert_eq!(c.state(), CircuitState::Closed);
    }
}
