//! Budgets and rate limits, checked before a request goes upstream.
//!
//! - Budgets (per key and per user, USD over a day, a month or all time) are checked
//!   against spend kept in memory and updated as each request's cost is metered, so
//!   concurrent requests can overrun a budget by at most the requests already in flight.
//! - Requests per minute and metered tokens per minute per key use `pingora-limits`
//!   estimators over one-minute windows; a refusal carries `retry-after`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora_http::RequestHeader;
use pingora_limits::rate::Rate;

use crate::auth::Clock;
use crate::clock::civil_from_days;
use crate::context::{Budget, BudgetPeriod, RequestCtx};
use crate::error::GatewayError;
use crate::Filter;

const WINDOW: Duration = Duration::from_secs(60);

/// Unix seconds at which the period containing `now` started (UTC).
pub fn period_start(period: BudgetPeriod, now: i64) -> i64 {
    match period {
        BudgetPeriod::Total => 0,
        BudgetPeriod::Day => now - now.rem_euclid(86_400),
        BudgetPeriod::Month => {
            // back from today to the 1st of this month
            let days = now.div_euclid(86_400);
            let (_, _, day_of_month) = civil_from_days(days);
            (days - (day_of_month - 1)) * 86_400
        }
    }
}

/// Unix seconds at which the period containing `now` ends (`None` for all time).
pub fn period_end(period: BudgetPeriod, now: i64) -> Option<i64> {
    match period {
        BudgetPeriod::Total => None,
        BudgetPeriod::Day => Some(period_start(period, now) + 86_400),
        // the 1st of the next month: 32 days after this month's 1st is always in it
        BudgetPeriod::Month => Some(period_start(
            period,
            period_start(period, now) + 32 * 86_400,
        )),
    }
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: i64,
    spent: u64,
}

/// Spend per key and per user in their budget's current period.
#[derive(Debug, Default)]
pub struct SpendTracker {
    // std Mutex: short, never held across an .await.
    keys: Mutex<HashMap<String, Window>>,
    users: Mutex<HashMap<i64, Window>>,
}

fn spent_in<K: std::hash::Hash + Eq>(map: &Mutex<HashMap<K, Window>>, k: &K, start: i64) -> u64 {
    map.lock()
        .ok()
        .and_then(|m| m.get(k).copied())
        .filter(|w| w.start == start)
        .map(|w| w.spent)
        .unwrap_or(0)
}

fn add_to<K: std::hash::Hash + Eq>(map: &Mutex<HashMap<K, Window>>, k: K, start: i64, nanos: u64) {
    if let Ok(mut m) = map.lock() {
        let w = m.entry(k).or_insert(Window { start, spent: 0 });
        if w.start != start {
            *w = Window { start, spent: 0 };
        }
        w.spent = w.spent.saturating_add(nanos);
    }
}

impl SpendTracker {
    /// Sets what a key already spent in the period starting at `start` (from the store).
    pub fn seed_key(&self, key_id: &str, start: i64, nanos: u64) {
        add_to(&self.keys, key_id.to_owned(), start, nanos);
    }

    /// Sets what a user already spent in the period starting at `start`.
    pub fn seed_user(&self, user_id: i64, start: i64, nanos: u64) {
        add_to(&self.users, user_id, start, nanos);
    }

    pub fn key_spent(&self, key_id: &str, period: BudgetPeriod, now: i64) -> u64 {
        spent_in(&self.keys, &key_id.to_owned(), period_start(period, now))
    }

    pub fn user_spent(&self, user_id: i64, period: BudgetPeriod, now: i64) -> u64 {
        spent_in(&self.users, &user_id, period_start(period, now))
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
            add_to(&self.keys, key_id.to_owned(), period_start(p, now), nanos);
        }
        if let Some(p) = user_period {
            add_to(&self.users, user_id, period_start(p, now), nanos);
        }
    }
}

/// Nano-dollars as dollars: from one dollar up in cents ("$1.50", truncated), below it
/// exactly, with as many decimals as the amount has (at least two), so that small
/// budgets and what was spent of them are never shown as "$0.00" ("$0.00001").
fn usd(nanos: u64) -> String {
    let (whole, nanos) = (nanos / 1_000_000_000, nanos % 1_000_000_000);
    if whole > 0 {
        return format!("${whole}.{:02}", nanos / 10_000_000);
    }
    let frac = format!("{nanos:09}");
    format!("$0.{:0<2}", frac.trim_end_matches('0'))
}

/// The budget and rate-limit filter. Must run after authentication and routing, and (for
/// `on_done`) after metering, which writes the request's cost and tokens.
pub struct LimitsFilter {
    spend: std::sync::Arc<SpendTracker>,
    rpm: Rate,
    tpm: Rate,
    started: Instant,
    clock: Clock,
}

impl LimitsFilter {
    pub fn new(spend: std::sync::Arc<SpendTracker>, clock: Clock) -> Self {
        LimitsFilter {
            spend,
            rpm: Rate::new(WINDOW),
            tpm: Rate::new(WINDOW),
            started: Instant::now(),
            clock,
        }
    }

    /// Seconds until the current one-minute window is over (windows start with the filter).
    fn retry_after(&self) -> u64 {
        let into = self.started.elapsed().as_secs() % WINDOW.as_secs();
        (WINDOW.as_secs() - into).max(1)
    }

    fn check_budget(
        &self,
        what: &str,
        budget: Budget,
        spent: u64,
        now: i64,
    ) -> Result<(), GatewayError> {
        if spent < budget.limit_nanos {
            return Ok(());
        }
        let per = match budget.period {
            BudgetPeriod::Total => "in total".to_owned(),
            p => format!("per {}", p.as_str()),
        };
        let until = period_end(budget.period, now)
            .map(|end| format!("; it resets in {} s", end - now))
            .unwrap_or_default();
        Err(GatewayError::BudgetExceeded(format!(
            "the budget of {} {per} for {what} is used up (spent {}){until}",
            usd(budget.limit_nanos),
            usd(spent)
        )))
    }
}

#[async_trait]
impl Filter for LimitsFilter {
    fn name(&self) -> &'static str {
        "limits"
    }

    fn async_phases(&self) -> crate::AsyncPhases {
        crate::AsyncPhases::REQUEST
    }

    async fn on_request(
        &self,
        _req: &RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<(), GatewayError> {
        let Some(p) = &ctx.principal else {
            return Ok(());
        };
        let now = (self.clock)();
        if let Some(b) = p.budget {
            self.check_budget(
                &format!("key {}", p.key_id),
                b,
                self.spend.key_spent(&p.key_id, b.period, now),
                now,
            )?;
        }
        if let Some(b) = p.user_budget {
            self.check_budget(
                &format!("user {}", p.user),
                b,
                self.spend.user_spent(p.user_id, b.period, now),
                now,
            )?;
        }
        if let Some(tpm) = p.tpm {
            let used = self.tpm.observe(&p.key_id, 0).max(0) as u64;
            if used >= tpm {
                return Err(GatewayError::RateLimited {
                    message: format!("key {} used its {tpm} tokens per minute", p.key_id),
                    retry_after: Some(self.retry_after()),
                });
            }
        }
        if let Some(rpm) = p.rpm {
            let n = self.rpm.observe(&p.key_id, 1).max(0) as u64;
            if n > u64::from(rpm) {
                return Err(GatewayError::RateLimited {
                    message: format!("key {} is limited to {rpm} requests per minute", p.key_id),
                    retry_after: Some(self.retry_after()),
                });
            }
        }
        Ok(())
    }

    fn on_done(&self, ctx: &mut RequestCtx) {
        let Some(p) = &ctx.principal else { return };
        if ctx.metered_tokens > 0 && p.tpm.is_some() {
            self.tpm.observe(
                &p.key_id,
                ctx.metered_tokens.min(isize::MAX as u64) as isize,
            );
        }
        if ctx.metered_cost_nanos > 0 {
            let now = (self.clock)();
            self.spend.record(
                &p.key_id,
                p.budget.map(|b| b.period),
                p.user_id,
                p.user_budget.map(|b| b.period),
                ctx.metered_cost_nanos,
                now,
            );
        }
    }
}

#[cfg(test)]
mod tests;
