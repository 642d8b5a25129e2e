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
use crate::store::{DayRange, GroupBy, Latency, Store, StoreError, Totals};

/// Spend (nano-dollars) in each budget period's current span, by key id and by user
/// name: what budgets are measured against.
pub struct Spend {
    by_period: HashMap<&'static str, SpendMaps>,
}

/// Spend by key id and by user name.
type SpendMaps = (HashMap<String, u64>, HashMap<String, u64>);

impl Spend {
    /// Spend of `user`'s events (everyone's for `None`) in the current day, month and
    /// all time, as of `now` (unix seconds).
    pub fn load(store: &Store, user: Option<i64>, now: i64) -> Result<Spend, StoreError> {
        let today = now.div_euclid(86_400);
        let start = |p| period_start(p, now).div_euclid(86_400);
        let rows = store.rollup_spend(
            start(BudgetPeriod::Day),
            start(BudgetPeriod::Month),
            today,
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
fn top(
    store: &Store,
    by: GroupBy,
    days: DayRange,
    user: Option<i64>,
) -> Result<Vec<Totals>, StoreError> {
    let mut rows = store.rollup_report(by, days, user)?;
    rows.sort_by(|a, b| {
        b.usage
            .cost_nanos
            .cmp(&a.usage.cost_nanos)
            .then(b.usage.requests.cmp(&a.usage.requests))
    });
    rows.truncate(5);
    Ok(rows)
}

/// Spend per day for the 30 days up to `today`, days without usage included.
fn series(store: &Store, today: i64, user: Option<i64>) -> Result<Vec<(i64, u64)>, StoreError> {
    let from = today - 29;
    let rows = store.rollup_report(GroupBy::Day, DayRange::days(from, today), user)?;
    let cost: HashMap<String, u64> = rows
        .into_iter()
        .map(|t| (t.usage.group, t.usage.cost_nanos))
        .collect();
    Ok((from..=today)
        .map(|d| (d, cost.get(&super::layout::date(d)).copied().unwrap_or(0)))
        .collect())
}

/// Budgets of keys (not revoked) and users, fullest first.
fn budgets(
    store: &Store,
    viewer_user: Option<(i64, String)>,
    now: i64,
) -> Result<Vec<Budget>, StoreError> {
    let user = viewer_user.as_ref().map(|u| u.0);
    let spend = Spend::load(store, user, now)?;
    let mut out = Vec::new();
    for k in store.list_keys(viewer_user.as_ref().map(|u| u.1.as_str()))? {
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
    for u in store.list_users()? {
        if user.is_some_and(|id| id != u.id) {
            continue;
        }
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
        let mut tops = vec![("Models", top(store, GroupBy::Model, month, user)?)];
        if user.is_none() {
            tops.push(("Users", top(store, GroupBy::User, month, user)?));
        }
        tops.push(("Keys", top(store, GroupBy::Key, month, user)?));
        Ok(Overview {
            today: store.rollup_totals(day, user)?,
            month: store.rollup_totals(month, user)?,
            latency,
            series: series(store, today, user)?,
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
