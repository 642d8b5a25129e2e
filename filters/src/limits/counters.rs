//! The counters behind budgets and tokens per minute, and the reservation protocol the
//! limits filter speaks to them: [`LimitCounters::reserve`] admits a request against all
//! its limits in one atomic step, adding an estimate of what it will use to each
//! counter's reservations; [`LimitCounters::settle`] gives the estimate back and adds
//! what was metered. A counter admits while spent plus reserved is under its limit, so
//! concurrent requests see each other's estimates, not only what is already spent.
//!
//! [`SpendTracker`] keeps the counters in this process's memory. The shared counters
//! (`tollgate::limits`: Redis, one server-side script per call, check every claim, then
//! add to every one) implement the same trait; `reserve` is async for them, `settle` is
//! queued, and they also count requests per minute ([`LimitCounters::counts_requests`]),
//! so that one call admits a request against all its limits.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, PoisonError};

use crate::context::BudgetPeriod;

use super::period_start;

/// Which counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter<'a> {
    /// A key's spend in nano-dollars over its budget's period.
    KeySpend(&'a str),
    /// A user's spend in nano-dollars (all their keys) over their budget's period.
    UserSpend(i64),
    /// A key's metered tokens in the current minute.
    KeyTokens(&'a str),
    /// A key's requests in the current minute: a claim of 1 that is counted when
    /// admitted and never settled (only from counters that [`LimitCounters::counts_requests`]).
    KeyRequests(&'a str),
}

/// One limit a request is admitted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim<'a> {
    pub counter: Counter<'a>,
    /// Start of the counter's current window (unix seconds): its budget's period, or the
    /// minute. Spend of an older window no longer counts.
    pub window: i64,
    pub limit: u64,
    /// The estimate reserved on admission.
    pub amount: u64,
}

/// What a request that is over gives back and adds to one counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settle<'a> {
    pub counter: Counter<'a>,
    /// The window current now (the metered amount belongs to it).
    pub window: i64,
    /// What was reserved on admission.
    pub reserved: u64,
    /// What was metered.
    pub spent: u64,
}

/// Why a request was not admitted: the first claim over its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// Its index in the claims.
    pub claim: usize,
    /// What its counter had spent in the window, and reserved for requests in flight.
    pub spent: u64,
    pub reserved: u64,
}

/// Where an admitted request's reservation is held, for its settlement to find it:
/// `None` in this process's memory; else the shared counters' mark (the server's minute
/// the reservation was made in).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ticket(pub Option<i64>);

/// Where limits are counted (see the module doc).
pub trait LimitCounters: Send + Sync {
    /// Admits a request against every claim at once, or against none: when each claim's
    /// counter has spent plus reserved under its limit, adds each claim's amount to its
    /// counter's reservations (a [`Counter::KeyRequests`] claim: to its count).
    fn reserve(&self, claims: &[Claim<'_>])
        -> impl Future<Output = Result<Ticket, Refused>> + Send;

    /// The request is over: each counter gets its reservation back and the metered
    /// amount added to its current window. Called once per admitted request.
    fn settle(&self, settles: &[Settle<'_>]);

    /// [`Self::settle`] for a reservation held where `ticket` says.
    fn settle_held(&self, ticket: Ticket, settles: &[Settle<'_>]) {
        let _ = ticket;
        self.settle(settles);
    }

    /// Whether requests per minute are counted here, as [`Counter::KeyRequests`] claims
    /// (otherwise the limits filter counts them itself, in this process).
    fn counts_requests(&self) -> bool {
        false
    }
}

/// One counter: the spend of its current window, and the reservations of requests in
/// flight (which outlive a window's turn: their requests are still running).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    start: i64,
    spent: u64,
    reserved: u64,
}

impl Default for Entry {
    /// Before every window, so that the first one used is newer.
    fn default() -> Self {
        Entry {
            start: i64::MIN,
            spent: 0,
            reserved: 0,
        }
    }
}

impl Entry {
    /// The spend of `window`: a newer window starts from nothing.
    fn roll(&mut self, window: i64) {
        if window > self.start {
            self.start = window;
            self.spent = 0;
        }
    }

    fn spent_in(&self, window: i64) -> u64 {
        if self.start == window {
            self.spent
        } else {
            0
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    keys: HashMap<String, Entry>,
    users: HashMap<i64, Entry>,
    tokens: HashMap<String, Entry>,
    requests: HashMap<String, Entry>,
}

impl Counters {
    fn get(&self, c: Counter<'_>) -> Option<&Entry> {
        match c {
            Counter::KeySpend(k) => self.keys.get(k),
            Counter::UserSpend(u) => self.users.get(&u),
            Counter::KeyTokens(k) => self.tokens.get(k),
            Counter::KeyRequests(k) => self.requests.get(k),
        }
    }

    fn entry(&mut self, c: Counter<'_>) -> &mut Entry {
        // The owned key is built only for a counter seen for the first time.
        fn at<'m>(map: &'m mut HashMap<String, Entry>, k: &str) -> &'m mut Entry {
            if !map.contains_key(k) {
                map.insert(k.to_owned(), Entry::default());
            }
            map.get_mut(k)
                .unwrap_or_else(|| unreachable!("inserted above"))
        }
        match c {
            Counter::KeySpend(k) => at(&mut self.keys, k),
            Counter::UserSpend(u) => self.users.entry(u).or_default(),
            Counter::KeyTokens(k) => at(&mut self.tokens, k),
            Counter::KeyRequests(k) => at(&mut self.requests, k),
        }
    }
}

/// The counters in this process's memory, seeded from the store at start.
#[derive(Debug, Default)]
pub struct SpendTracker {
    // std Mutex: a few map operations per request, never held across an .await.
    counters: Mutex<Counters>,
}

impl SpendTracker {
    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn add(&self, c: Counter<'_>, start: i64, nanos: u64) {
        let mut counters = self.lock();
        let e = counters.entry(c);
        e.roll(start);
        if e.start == start {
            e.spent = e.spent.saturating_add(nanos);
        }
    }

    /// Sets what a key already spent in the period starting at `start` (from the store).
    pub fn seed_key(&self, key_id: &str, start: i64, nanos: u64) {
        self.add(Counter::KeySpend(key_id), start, nanos);
    }

    /// Sets what a user already spent in the period starting at `start`.
    pub fn seed_user(&self, user_id: i64, start: i64, nanos: u64) {
        self.add(Counter::UserSpend(user_id), start, nanos);
    }

    pub fn key_spent(&self, key_id: &str, period: BudgetPeriod, now: i64) -> u64 {
        self.spent(Counter::KeySpend(key_id), period_start(period, now))
    }

    pub fn user_spent(&self, user_id: i64, period: BudgetPeriod, now: i64) -> u64 {
        self.spent(Counter::UserSpend(user_id), period_start(period, now))
    }

    /// What `counter` spent in `window`.
    pub fn spent(&self, counter: Counter<'_>, window: i64) -> u64 {
        self.lock()
            .get(counter)
            .map(|e| e.spent_in(window))
            .unwrap_or(0)
    }

    /// What is reserved on `counter` for requests in flight.
    pub fn reserved(&self, counter: Counter<'_>) -> u64 {
        self.lock().get(counter).map(|e| e.reserved).unwrap_or(0)
    }

    /// Adds a metered cost to the key's and the user's current periods.
    pub fn record(
        &self,
        key_id: &str,
        key_period: Option<BudgetPeriod>,
        user_id: i64,
        user_period: Option<BudgetPeriod>,
        nanos: u64,
        now: i64,
    ) {
        if let Some(p) = key_period {
            self.add(Counter::KeySpend(key_id), period_start(p, now), nanos);
        }
        if let Some(p) = user_period {
            self.add(Counter::UserSpend(user_id), period_start(p, now), nanos);
        }
    }

    /// [`LimitCounters::reserve`], at once.
    pub fn reserve_now(&self, claims: &[Claim<'_>]) -> Result<(), Refused> {
        let mut counters = self.lock();
        for (i, claim) in claims.iter().enumerate() {
            let (spent, reserved) = counters
                .get(claim.counter)
                .map(|e| (e.spent_in(claim.window), e.reserved))
                .unwrap_or((0, 0));
            if spent.saturating_add(reserved) >= claim.limit {
                return Err(Refused {
                    claim: i,
                    spent,
                    reserved,
                });
            }
        }
        for claim in claims {
            let e = counters.entry(claim.counter);
            e.roll(claim.window);
            match claim.counter {
                // a request is counted once admitted, never given back
                Counter::KeyRequests(_) if e.start == claim.window => {
                    e.spent = e.spent.saturating_add(claim.amount);
                }
                Counter::KeyRequests(_) => {}
                _ => e.reserved = e.reserved.saturating_add(claim.amount),
            }
        }
        Ok(())
    }
}

impl LimitCounters for SpendTracker {
    fn reserve(
        &self,
        claims: &[Claim<'_>],
    ) -> impl Future<Output = Result<Ticket, Refused>> + Send {
        std::future::ready(self.reserve_now(claims).map(|()| Ticket::default()))
    }

    fn settle(&self, settles: &[Settle<'_>]) {
        let mut counters = self.lock();
        for s in settles {
            let e = counters.entry(s.counter);
            e.reserved = e.reserved.saturating_sub(s.reserved);
            e.roll(s.window);
            if e.start == s.window {
                e.spent = e.spent.saturating_add(s.spent);
            }
        }
    }
}
