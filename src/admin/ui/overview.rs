//! `/ui/`: spend and requests today and this month, error rate, latency, the top
//! models, users and keys of the month, spend per day for 30 days, and budgets
//! consumed. A member sees the same of their own usage. Everything comes from the
//! rollups: a handful of small queries whatever the number of events.

use std::collections::HashMap;

use http::Response;
use maud::{html, Markup};
use tollgate_filters::clock::system_clock;
use tollgate_filters::context::BudgetPeriod;
use tollgate_filters::limits::period_start;

use super::chart::spend_per_day;
use super::http::html;
use super::layout::{count, dollars, latency, page, percent, Nav};
use super::viewer::Viewer;
use crate::admin::{blocking, AdminApp, ApiError};
use crate::store::{DayRange, Latency, Store, StoreError, Totals};

/// Spend (nano-dollars) in each budget period's current span, by key id and by user
/// name: what budgets are measured against.
pub struct Spend {
    by_period: HashMap<&'static str, SpendMaps>,
}

/// Spend by key id and by user name.
type SpendMaps = (HashMap<String, u64>, HashMap<String, u64>);

impl Spend {
    /// Spend of `user`'s events (everyone's for `None`) in the current day, month and
    /// (`all_time`: when a budget shown is over all time, [`all_time`]) all time, as of
    /// `now` (unix seconds).
    pub fn load(
        store: &Store,
        user: Option<i64>,
        now: i64,
        all_time: bool,
    ) -> Result<Spend, StoreError> {
        let today = now.div_euclid(86_400);
        let start = |p| period_start(p, now).div_euclid(86_400);
        let rows = store.rollup_spend(
            start(BudgetPeriod::Day),
            start(BudgetPeriod::Month),
            today,
            all_time,
            user,
        )?;
        let mut by_period: HashMap<&'static str, SpendMaps> = HashMap::new();
        for r in rows {
            for (p, cost) in [
                (BudgetPeriod::Day, r.day),
                (BudgetPeriod::Month, r.month),
                (BudgetPeriod::Total, r.total),
            ] {
                let (keys, users) = by_period.entry(p.as_str()).or_default();
                let k = keys.entry(r.key_id.clone()).or_default();
                *k = k.saturating_add(cost);
                let u = users.entry(r.user.clone()).or_default();
                *u = u.saturating_add(cost);
            }
        }
        Ok(Spend { by_period })
    }

    pub fn key(&self, period: &str, id: &str) -> u64 {
        self.by_period
            .get(period)
            .and_then(|(k, _)| k.get(id))
            .copied()
            .unwrap_or(0)
    }

    pub fn user(&self, period: &str, name: &str) -> u64 {
        self.by_period
            .get(period)
            .and_then(|(_, u)| u.get(name))
            .copied()
            .unwrap_or(0)
    }
}

/// Whether any of these budget periods is all time: only then must spend read every
/// rollup row (the other periods read the month's).
pub fn all_time<'a>(periods: impl IntoIterator<Item = Option<&'a str>>) -> bool {
    periods
        .into_iter()
        .any(|p| p == Some(BudgetPeriod::Total.as_str()))
}

/// A budget and what was spent against it.
pub fn budget_meter(spent: u64, limit: i64, period: &str) -> Markup {
    let limit = limit.max(0) as u64;
    html! {
        meter min="0" max=(limit.max(1)) low=(limit / 10 * 8) high=(limit / 20 * 19) optimum="0" value=(spent.min(limit)) {}
        " " (dollars(spent)) " of " (dollars(limit)) " / " (period) " (" (percent(spent, limit)) ")"
    }
}

/// One budget line of the overview.
struct Budget {
    what: String,
    period: String,
    spent: u64,
    limit: i64,
}

struct Overview {
    today: Totals,
    month: Totals,
    latency: Option<(Latency, Latency)>,
    series: Vec<(i64, u64)>,
    top: Vec<(&'static str, Vec<Totals>)>,
    budgets: Vec<Budget>,
}

/// The top five groups by cost.
fn top(mut rows: Vec<Totals>) -> Vec<Totals> {
    rows.sort_by(|a, b| {
        b.usage
            .cost_nanos
            .cmp(&a.usage.cost_nanos)
            .then(b.usage.requests.cmp(&a.usage.requests))
    });
    rows.truncate(5);
    rows
}

/// Budgets of keys (not revoked) and users, fullest first.
fn budgets(
    store: &Store,
    viewer_user: Option<(i64, String)>,
    now: i64,
) -> Result<Vec<Budget>, StoreError> {
    let user = viewer_user.as_ref().map(|u| u.0);
    let keys = store.list_keys(viewer_user.as_ref().map(|u| u.1.as_str()))?;
    let users: Vec<_> = store
        .list_users()?
        .into_iter()
        .filter(|u| user.is_none_or(|id| id == u.id))
        .collect();
    let periods = keys
        .iter()
        .filter(|k| k.budget_usd_nanos.is_some() && k.revoked_at.is_none())
        .map(|k| k.budget_period.as_deref())
        .chain(
            users
                .iter()
                .filter(|u| u.budget_usd_nanos.is_some())
                .map(|u| u.budget_period.as_deref()),
        );
    let spend = Spend::load(store, user, now, all_time(periods))?;
    let mut out = Vec::new();
    for k in keys {
        if let (Some(limit), None) = (k.budget_usd_nanos, k.revoked_at) {
            let period = k.budget_period.unwrap_or_else(|| "month".into());
            let label = k.name.map(|n| format!(" ({n})")).unwrap_or_default();
            out.push(Budget {
                what: format!("key {}{label}", k.id),
                spent: spend.key(&period, &k.id),
                period,
                limit,
            });
        }
    }
    for u in users {
        if let Some(limit) = u.budget_usd_nanos {
            let period = u.budget_period.unwrap_or_else(|| "month".into());
            out.push(Budget {
                what: format!("user {}", u.username),
                spent: spend.user(&period, &u.username),
                period,
                limit,
            });
        }
    }
    let share = |b: &Budget| b.spent as u128 * 1_000_000 / (b.limit.max(1) as u128);
    out.sort_by_key(|b| std::cmp::Reverse(share(b)));
    out.truncate(20);
    Ok(out)
}

impl Overview {
    fn load(
        store: &Store,
        viewer_user: Option<(i64, String)>,
        now: i64,
    ) -> Result<Overview, StoreError> {
        let user = viewer_user.as_ref().map(|u| u.0);
        let today = now.div_euclid(86_400);
        let month_start = period_start(BudgetPeriod::Month, now).div_euclid(86_400);
        let (day, month) = (
            DayRange::days(today, today),
            DayRange::days(month_start, today),
        );
        let latency = match user {
            Some(_) => None,
            None => Some((store.latency(day)?, store.latency(month)?)),
        };
        // One pass over the month's (and the chart's 30 days') rollup rows.
        let sums = store.rollup_overview(today, month_start, today - 29, user)?;
        let mut tops = vec![("Models", top(sums.models))];
        if user.is_none() {
            tops.push(("Users", top(sums.users)));
        }
        tops.push(("Keys", top(sums.keys)));
        Ok(Overview {
            today: sums.today,
            month: sums.month,
            latency,
            series: sums.series,
            top: tops,
            budgets: budgets(store, viewer_user, now)?,
        })
    }
}

fn card(title: &str, id: &str, t: &Totals, l: Option<&Latency>) -> Markup {
    let u = &t.usage;
    let tokens = u.input_tokens + u.output_tokens + u.cache_read_tokens + u.cache_write_tokens;
    html! {
        div.card {
            h2 { (title) }
            dl.figures {
                dt { "Spend" } dd data-testid={ (id) "-spend" } { (dollars(u.cost_nanos)) }
                dt { "Requests" } dd data-testid={ (id) "-requests" } { (count(u.requests)) }
                dt { "Tokens" } dd { (count(tokens)) }
                dt { "Error rate" } dd { (percent(t.errors, u.requests)) }
                @if let Some(l) = l {
                    dt { "Latency p50 / p95" } dd { (latency(l.total_p50)) " / " (latency(l.total_p95)) }
                    dt { "First byte p50 / p95" } dd { (latency(l.ttfb_p50)) " / " (latency(l.ttfb_p95)) }
                }
            }
        }
    }
}

fn top_table(title: &str, rows: &[Totals]) -> Markup {
    html! {
        div.card {
            h2 { "Top " (title.to_lowercase()) " this month" }
            @if rows.is_empty() { p.muted { "No usage yet." } } @else {
                table {
                    thead { tr { th { (title.trim_end_matches('s')) } th.num { "Requests" } th.num { "Cost (USD)" } } }
                    tbody { @for r in rows { tr { td { code { (r.usage.group) } } td.num { (count(r.usage.requests)) } td.num { (super::layout::usd(r.usage.cost_nanos)) } } } }
                }
            }
        }
    }
}

fn render(o: &Overview) -> Markup {
    html! {
        div.cards {
            (card("Today (UTC)", "today", &o.today, o.latency.as_ref().map(|l| &l.0)))
            (card("This month", "month", &o.month, o.latency.as_ref().map(|l| &l.1)))
        }
        h2 { "Spend per day, last 30 days" }
        (spend_per_day(&o.series))
        div.cards { @for (title, rows) in &o.top { (top_table(title, rows)) } }
        h2 { "Budgets" }
        @if o.budgets.is_empty() { p.muted { "No key or user has a budget." } } @else {
            table {
                thead { tr { th { "Budget of" } th { "Consumed" } } }
                tbody { @for b in &o.budgets { tr data-testid="budget-row" { td { (b.what) } td { (budget_meter(b.spent, b.limit, &b.period)) } } } }
            }
        }
        p.muted { "Latency figures are histogram bucket bounds of requests answered 2xx; all figures from per-day rollups (UTC)." }
    }
}

impl AdminApp {
    /// `GET /ui/`
    pub(crate) async fn overview_page(
        &self,
        viewer: &Viewer,
    ) -> Result<Response<Vec<u8>>, ApiError> {
        let store = self.store.clone();
        let own =
            (!viewer.is_admin()).then(|| (viewer.caller.user_id, viewer.caller.username.clone()));
        let o = blocking(move || Overview::load(&store, own, system_clock())).await?;
        Ok(html(
            200,
            page(viewer, Nav::Overview, "Overview", render(&o)),
        ))
    }
}
