//! Budgets and rate limits, checked before a request goes upstream.
//!
//! - Budgets (per key and per user, USD over a day, a month or all time) and metered
//!   tokens per minute per key are admitted by reservation ([`counters`]): an admitted
//!   request reserves an estimate of its cost and tokens ([`estimate`]); when it is over
//!   (`on_done`, whatever ended it: served, refused, an upstream error, a client gone, the
//!   shutdown) the estimate is given back and the metered figures added. A request is
//!   admitted while spend plus reservations is under each limit, so requests in flight
//!   count for each other: under any concurrency, what gets through is what would one
//!   after another, give or take the estimation error (README "Limits").
//! - Requests per minute per key use a `pingora-limits` estimator over one-minute
//!   windows; a rate refusal carries `retry-after`. Counters that count requests
//!   themselves (the shared ones, [`LimitCounters::counts_requests`]) get them as one
//!   more claim instead, in the same call.

mod counters;
pub mod estimate;

pub use counters::{Claim, Counter, LimitCounters, Refused, Settle, SpendTracker, Ticket};

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora_http::RequestHeader;
use pingora_limits::rate::Rate;

use crate::auth::Clock;
use crate::clock::civil_from_days;
use crate::context::{Budget, BudgetPeriod, Principal, RequestCtx, Reservation};
use crate::error::GatewayError;
use crate::live::Live;
use crate::usage::PriceTable;
use crate::Filter;
use estimate::Estimate;

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

/// The start of the minute containing `now` (unix seconds): the window of tokens per
/// minute, the same on every gateway.
fn minute_start(now: i64) -> i64 {
    now - now.rem_euclid(60)
}

/// The budget and rate-limit filter. Must run after authentication and routing, and (for
/// `on_done`) after metering, which writes the request's cost and tokens.
pub struct LimitsFilter<C: LimitCounters = SpendTracker> {
    spend: Arc<C>,
    /// What estimates are priced with. Without it every estimate is 0: requests are
    /// admitted on what is spent alone.
    prices: Option<Arc<Live<PriceTable>>>,
    rpm: Rate,
    started: Instant,
    clock: Clock,
}

impl<C: LimitCounters> LimitsFilter<C> {
    pub fn new(spend: Arc<C>, clock: Clock) -> Self {
        LimitsFilter {
            spend,
            prices: None,
            rpm: Rate::new(WINDOW),
            started: Instant::now(),
            clock,
        }
    }

    /// Reserves each admitted request's estimated use ([`estimate`]) at these prices.
    pub fn with_prices(mut self, prices: Arc<Live<PriceTable>>) -> Self {
        self.prices = Some(prices);
        self
    }

    /// Seconds until the current one-minute window of requests per minute is over
    /// (those windows start with the filter).
    fn retry_after(&self) -> u64 {
        let into = self.started.elapsed().as_secs() % WINDOW.as_secs();
        (WINDOW.as_secs() - into).max(1)
    }

    fn estimate(&self, ctx: &RequestCtx) -> Estimate {
        match &self.prices {
            Some(prices) => estimate::of(ctx, &prices.load()),
            None => Estimate::default(),
        }
    }

    /// Reserves the request's estimate on each of the key's and the user's limits (and
    /// counts it against its requests per minute, when the counters count requests), or
    /// refuses it when one of them is spent or reserved up to its limit.
    async fn admit(&self, p: &Principal, ctx: &mut RequestCtx) -> Result<(), GatewayError> {
        let now = (self.clock)();
        let est = self.estimate(ctx);
        let claim = |counter, window, limit, amount| Claim {
            counter,
            window,
            limit,
            amount,
        };
        let budget = |counter, b: Budget| {
            claim(
                counter,
                period_start(b.period, now),
                b.limit_nanos,
                est.nanos,
            )
        };
        let minute = minute_start(now);
        let requests = p.rpm.filter(|_| self.spend.counts_requests());
        let limits = [
            p.budget.map(|b| budget(Counter::KeySpend(&p.key_id), b)),
            p.user_budget
                .map(|b| budget(Counter::UserSpend(p.user_id), b)),
            p.tpm
                .map(|tpm| claim(Counter::KeyTokens(&p.key_id), minute, tpm, est.tokens)),
            requests.map(|rpm| claim(Counter::KeyRequests(&p.key_id), minute, rpm.into(), 1)),
        ];
        let Some((claims, n)) = packed(limits) else {
            return Ok(());
        };
        let claims = &claims[..n];
        match self.spend.reserve(claims).await {
            Ok(ticket) => {
                let on = |limited: bool, amount: u64| if limited { amount } else { 0 };
                ctx.reserved = Reservation {
                    key_nanos: on(p.budget.is_some(), est.nanos),
                    user_nanos: on(p.user_budget.is_some(), est.nanos),
                    tokens: on(p.tpm.is_some(), est.tokens),
                    ticket,
                };
                Ok(())
            }
            Err(r) => Err(match claims.get(r.claim) {
                Some(c) => refusal(p, c.counter, r, now),
                None => GatewayError::Internal("a refusal of no claim".into()),
            }),
        }
    }
}

/// The limits present among a request's few (the key's budget, the user's, tokens and
/// requests per minute), packed at the front of an array on the stack, and how many;
/// `None` if none.
fn packed<T: Copy, const N: usize>(limits: [Option<T>; N]) -> Option<([T; N], usize)> {
    let first = limits.iter().flatten().next().copied()?;
    let mut out = [first; N];
    let mut n = 0;
    for (slot, limit) in out.iter_mut().zip(limits.into_iter().flatten()) {
        *slot = limit;
        n += 1;
    }
    Some((out, n))
}

/// The refusal for a limit spent or reserved up to its end.
fn refusal(p: &Principal, counter: Counter<'_>, r: Refused, now: i64) -> GatewayError {
    let budget_used = |what: String, budget: Option<Budget>| match budget {
        Some(b) => budget_refusal(&what, b, r, now),
        None => GatewayError::Internal("a refusal without its limit".into()),
    };
    match counter {
        Counter::KeySpend(_) => budget_used(format!("key {}", p.key_id), p.budget),
        Counter::UserSpend(_) => budget_used(format!("user {}", p.user), p.user_budget),
        Counter::KeyTokens(_) => {
            let tpm = p.tpm.unwrap_or_default();
            let in_flight = match r.reserved {
                0 => String::new(),
                n => format!(" ({n} of them reserved by requests in flight)"),
            };
            GatewayError::RateLimited {
                message: format!(
                    "key {} used its {tpm} tokens per minute{in_flight}",
                    p.key_id
                ),
                retry_after: Some((60 - now.rem_euclid(60)).max(1) as u64),
            }
        }
        Counter::KeyRequests(_) => GatewayError::RateLimited {
            message: format!(
                "key {} is limited to {} requests per minute",
                p.key_id,
                p.rpm.unwrap_or_default()
            ),
            retry_after: Some((60 - now.rem_euclid(60)).max(1) as u64),
        },
    }
}

fn budget_refusal(what: &str, budget: Budget, r: Refused, now: i64) -> GatewayError {
    let per = match budget.period {
        BudgetPeriod::Total => "in total".to_owned(),
        p => format!("per {}", p.as_str()),
    };
    let until = period_end(budget.period, now)
        .map(|end| format!("; it resets in {} s", end - now))
        .unwrap_or_default();
    let in_flight = match r.reserved {
        0 => String::new(),
        n => format!(", {} more reserved by requests in flight", usd(n)),
    };
    GatewayError::BudgetExceeded(format!(
        "the budget of {} {per} for {what} is used up (spent {}{in_flight}){until}",
        usd(budget.limit_nanos),
        usd(r.spent)
    ))
}

#[async_trait]
impl<C: LimitCounters + 'static> Filter for LimitsFilter<C> {
    fn name(&self) -> &'static str {
        "limits"
    }

    fn phases(&self) -> crate::Phases {
        crate::Phases::REQUEST
    }

    async fn on_request(
        &self,
        _req: &RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<(), GatewayError> {
        let Some(p) = ctx.principal.clone() else {
            return Ok(());
        };
        let shared_rpm = p.rpm.is_some() && self.spend.counts_requests();
        if p.budget.is_some() || p.user_budget.is_some() || p.tpm.is_some() || shared_rpm {
            self.admit(&p, ctx).await?;
        }
        if let Some(rpm) = p.rpm.filter(|_| !shared_rpm) {
            let n = self.rpm.observe(&p.key_id, 1).max(0) as u64;
            if n > u64::from(rpm) {
                // What was reserved is given back in on_done, as for any refusal.
                return Err(GatewayError::RateLimited {
                    message: format!("key {} is limited to {rpm} requests per minute", p.key_id),
                    retry_after: Some(self.retry_after()),
                });
            }
        }
        Ok(())
    }

    fn on_done(&self, ctx: &mut RequestCtx) {
        let reserved = std::mem::take(&mut ctx.reserved);
        let Some(p) = &ctx.principal else { return };
        if p.budget.is_none() && p.user_budget.is_none() && p.tpm.is_none() {
            return;
        }
        let now = (self.clock)();
        let settle = |counter, window, reserved, spent| Settle {
            counter,
            window,
            reserved,
            spent,
        };
        let cost = ctx.metered_cost_nanos;
        let limits = [
            p.budget.map(|b| {
                let window = period_start(b.period, now);
                settle(
                    Counter::KeySpend(&p.key_id),
                    window,
                    reserved.key_nanos,
                    cost,
                )
            }),
            p.user_budget.map(|b| {
                let window = period_start(b.period, now);
                settle(
                    Counter::UserSpend(p.user_id),
                    window,
                    reserved.user_nanos,
                    cost,
                )
            }),
            p.tpm.map(|_| {
                let window = minute_start(now);
                settle(
                    Counter::KeyTokens(&p.key_id),
                    window,
                    reserved.tokens,
                    ctx.metered_tokens,
                )
            }),
        ];
        if let Some((settles, n)) = packed(limits) {
            self.spend.settle_held(reserved.ticket, &settles[..n]);
        }
    }
}

#[cfg(test)]
mod tests;
