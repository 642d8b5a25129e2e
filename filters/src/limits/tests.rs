//! Budgets, periods and rate limits, driven through the filter's phases.

use super::*;
use crate::context::Principal;
use std::sync::Arc;

#[test]
fn periods_start_and_end_in_utc() {
    let t = 1_795_000_000; // 2026-11-18T11:06:40Z
    assert_eq!(period_start(BudgetPeriod::Day, t), 1_794_960_000);
    assert_eq!(period_start(BudgetPeriod::Month, t), 1_793_491_200); // 2026-11-01
    assert_eq!(period_end(BudgetPeriod::Month, t), Some(1_796_083_200)); // 2026-12-01
    assert_eq!(period_end(BudgetPeriod::Total, t), None);
}

fn ctx(p: &Principal) -> RequestCtx {
    let mut c = RequestCtx::new("r".into());
    c.principal = Some(Arc::new(p.clone()));
    c
}

#[tokio::test]
async fn small_budgets_and_spend_are_reported_exactly() {
    let req = RequestHeader::build("POST", b"/v1/x", None).unwrap_or_else(|_| unreachable!());
    let spend = Arc::new(SpendTracker::default());
    let f = LimitsFilter::new(spend.clone(), || 1_795_000_000);
    let p = Principal {
        key_id: "k".into(),
        budget: Some(Budget {
            limit_nanos: 10_000,
            period: BudgetPeriod::Day,
        }),
        ..Principal::default()
    };
    spend.seed_key("k", period_start(BudgetPeriod::Day, 1_795_000_000), 12_345);
    let e = f.on_request(&req, &mut ctx(&p)).await.err();
    let Some(GatewayError::BudgetExceeded(m)) = e else {
        panic!("{e:?}")
    };
    assert!(
        m.contains("budget of $0.00001 per day") && m.contains("(spent $0.000012345)"),
        "{m}"
    );
    assert_eq!(usd(5_000_000_000), "$5.00");
    assert_eq!(usd(1_230_000_000), "$1.23");
    assert_eq!(usd(1_239_000_000), "$1.23");
    assert_eq!(usd(15_000_000), "$0.015");
    assert_eq!(usd(0), "$0.00");
    assert_eq!(usd(1), "$0.000000001");
}

#[tokio::test]
async fn budget_trips_after_spend_reaches_it_and_rpm_at_the_next_request() {
    let req = RequestHeader::build("POST", b"/v1/x", None).unwrap_or_else(|_| unreachable!());
    let spend = Arc::new(SpendTracker::default());
    let f = LimitsFilter::new(spend.clone(), || 1_795_000_000);
    let p = Principal {
        key_id: "k".into(),
        user_id: 7,
        budget: Some(Budget {
            limit_nanos: 1_000,
            period: BudgetPeriod::Month,
        }),
        rpm: Some(3),
        ..Principal::default()
    };
    for cost in [600, 600] {
        let mut c = ctx(&p);
        assert!(f.on_request(&req, &mut c).await.is_ok());
        c.metered_cost_nanos = cost;
        f.on_done(&mut c);
    }
    let e = f.on_request(&req, &mut ctx(&p)).await.err();
    assert!(matches!(e, Some(GatewayError::BudgetExceeded(_))), "{e:?}");

    let f = LimitsFilter::new(Arc::new(SpendTracker::default()), || 0);
    let p = Principal {
        key_id: "r".into(),
        rpm: Some(3),
        ..Principal::default()
    };
    for _ in 0..3 {
        assert!(f.on_request(&req, &mut ctx(&p)).await.is_ok());
    }
    let e = f.on_request(&req, &mut ctx(&p)).await.err();
    assert!(
        matches!(e, Some(GatewayError::RateLimited { retry_after: Some(s), .. }) if (1..=60).contains(&s))
    );
}

/// Days from 1970-01-01 to `y-m-d`, counted the slow way.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = |y: i64, m: i64| match m {
        2 if leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    let mut days = 0;
    if y >= 1970 {
        days += (1970..y)
            .map(|y| if leap(y) { 366 } else { 365 })
            .sum::<i64>();
    } else {
        days -= (y..1970)
            .map(|y| if leap(y) { 366 } else { 365 })
            .sum::<i64>();
    }
    days += (1..m).map(|m| month_days(y, m)).sum::<i64>();
    days + d - 1
}

#[test]
fn month_periods_start_on_the_first_across_leap_years_centuries_and_the_epoch() {
    let cases = [
        ((1970, 1, 1), (1970, 1)),
        ((1969, 12, 31), (1969, 12)),
        ((1900, 3, 1), (1900, 3)),
        ((2000, 2, 29), (2000, 2)),
        ((2000, 3, 1), (2000, 3)),
        ((2024, 2, 29), (2024, 2)),
        ((2024, 12, 31), (2024, 12)),
        ((2025, 1, 31), (2025, 1)),
        ((2100, 2, 28), (2100, 2)),
        ((2100, 3, 1), (2100, 3)),
        ((2400, 2, 29), (2400, 2)),
        ((1601, 7, 15), (1601, 7)),
    ];
    for ((y, m, d), (sy, sm)) in cases {
        let day = days_from_civil(y, m, d) * 86_400;
        for t in [day, day + 1, day + 86_399] {
            assert_eq!(
                period_start(BudgetPeriod::Month, t),
                days_from_civil(sy, sm, 1) * 86_400,
                "{y}-{m}-{d} at {t}"
            );
        }
        let (ny, nm) = if sm == 12 { (sy + 1, 1) } else { (sy, sm + 1) };
        assert_eq!(
            period_end(BudgetPeriod::Month, day + 3_600),
            Some(days_from_civil(ny, nm, 1) * 86_400),
            "{y}-{m}-{d}"
        );
    }
    // Every day of 1999 to 2001 (a non-leap year, a 400-year leap year and the next).
    let start = days_from_civil(1999, 1, 1);
    for day in start..start + 3 * 366 {
        let t = day * 86_400 + 43_200;
        let s = period_start(BudgetPeriod::Month, t);
        assert_eq!(s % 86_400, 0);
        assert!(s <= t && t - s < 31 * 86_400, "{t}");
        assert_eq!(period_start(BudgetPeriod::Month, s), s, "{t}");
        assert!(period_start(BudgetPeriod::Month, s - 1) < s, "{t}");
    }
}

#[test]
fn day_periods_are_utc_days_also_before_the_epoch() {
    assert_eq!(period_start(BudgetPeriod::Day, 0), 0);
    assert_eq!(period_start(BudgetPeriod::Day, 86_399), 0);
    assert_eq!(period_start(BudgetPeriod::Day, 86_400), 86_400);
    assert_eq!(period_start(BudgetPeriod::Day, -1), -86_400);
    assert_eq!(period_end(BudgetPeriod::Day, -1), Some(0));
    assert_eq!(period_end(BudgetPeriod::Day, 100_000), Some(172_800));
    assert_eq!(period_start(BudgetPeriod::Total, 1_795_000_000), 0);
}

#[test]
fn spend_is_kept_per_key_and_user_within_the_current_period() {
    let s = SpendTracker::default();
    let day = BudgetPeriod::Day;
    let t = 10 * 86_400 + 5;
    s.seed_key("k", period_start(day, t), 500);
    s.seed_user(7, period_start(day, t), 900);
    assert_eq!(s.key_spent("k", day, t), 500);
    assert_eq!(s.user_spent(7, day, t), 900);
    assert_eq!(s.key_spent("other", day, t), 0);
    assert_eq!(s.user_spent(8, day, t), 0);
    s.record("k", Some(day), 7, Some(day), 100, t + 60);
    assert_eq!(s.key_spent("k", day, t), 600);
    assert_eq!(s.user_spent(7, day, t), 1000);
    // The next day starts from nothing, and the old day is gone.
    let next = t + 86_400;
    assert_eq!(s.key_spent("k", day, next), 0);
    s.record("k", Some(day), 7, None, 40, next);
    assert_eq!(s.key_spent("k", day, next), 40);
    assert_eq!(s.key_spent("k", day, t), 0);
    assert_eq!(
        s.user_spent(7, day, t),
        1000,
        "no user budget: not recorded"
    );
    s.record("k", None, 7, Some(day), 2, next);
    assert_eq!(
        s.key_spent("k", day, next),
        40,
        "no key budget: not recorded"
    );
    assert_eq!(s.user_spent(7, day, next), 2);
    // Sums saturate.
    s.seed_key("big", 0, u64::MAX - 1);
    s.record("big", Some(BudgetPeriod::Total), 1, None, 10, t);
    assert_eq!(s.key_spent("big", BudgetPeriod::Total, t), u64::MAX);
}

fn req() -> RequestHeader {
    RequestHeader::build("POST", b"/v1/x", None).unwrap_or_else(|_| unreachable!())
}

fn budget(limit_nanos: u64, period: BudgetPeriod) -> Option<Budget> {
    Some(Budget {
        limit_nanos,
        period,
    })
}

/// 2026-11-18T11:06:40Z
const NOW: i64 = 1_795_000_000;

#[tokio::test]
async fn budgets_refuse_at_the_limit_with_what_was_spent_and_when_it_resets() {
    let spend = Arc::new(SpendTracker::default());
    let f = LimitsFilter::new(spend.clone(), || NOW);
    let p = Principal {
        key_id: "k9".into(),
        user_id: 3,
        user: "bob".into(),
        budget: budget(1_500_000_000, BudgetPeriod::Day),
        ..Principal::default()
    };
    let day = period_start(BudgetPeriod::Day, NOW);
    spend.seed_key("k9", day, 1_499_999_999);
    assert_eq!(f.on_request(&req(), &mut ctx(&p)).await, Ok(()));
    spend.seed_key("k9", day, 1);
    let e = f.on_request(&req(), &mut ctx(&p)).await;
    let reset = period_end(BudgetPeriod::Day, NOW).unwrap_or(0) - NOW;
    assert_eq!(reset, 46_400);
    assert_eq!(
        e,
        Err(GatewayError::BudgetExceeded(format!(
            "the budget of $1.50 per day for key k9 is used up (spent $1.50); it resets in {reset} s"
        )))
    );

    // A user's budget counts all their keys; an all-time budget never resets.
    let p = Principal {
        key_id: "k10".into(),
        user_id: 3,
        user: "bob".into(),
        user_budget: budget(2_000_000_000, BudgetPeriod::Total),
        ..Principal::default()
    };
    spend.seed_user(3, 0, 2_057_000_000);
    let e = f.on_request(&req(), &mut ctx(&p)).await;
    assert_eq!(
        e,
        Err(GatewayError::BudgetExceeded(
            "the budget of $2.00 in total for user bob is used up (spent $2.05)".into()
        ))
    );
    let month = Principal {
        user_budget: budget(3_000_000_000, BudgetPeriod::Month),
        ..p.clone()
    };
    spend.seed_user(3, period_start(BudgetPeriod::Month, NOW), 3_000_000_000);
    let e = f.on_request(&req(), &mut ctx(&month)).await;
    let Err(GatewayError::BudgetExceeded(msg)) = e else {
        panic!("{e:?}")
    };
    assert!(msg.contains("$3.00 per month for user bob"), "{msg}");
    assert!(
        msg.ends_with(&format!("resets in {} s", 1_796_083_200 - NOW)),
        "{msg}"
    );
    // No principal: nothing to check.
    assert_eq!(
        f.on_request(&req(), &mut RequestCtx::new("r".into())).await,
        Ok(())
    );
}

#[tokio::test]
async fn metered_cost_is_added_to_the_key_and_the_user() {
    let spend = Arc::new(SpendTracker::default());
    let f = LimitsFilter::new(spend.clone(), || NOW);
    let p = Principal {
        key_id: "k".into(),
        user_id: 5,
        budget: budget(10, BudgetPeriod::Month),
        user_budget: budget(10, BudgetPeriod::Day),
        ..Principal::default()
    };
    let mut c = ctx(&p);
    c.metered_cost_nanos = 7;
    f.on_done(&mut c);
    assert_eq!(spend.key_spent("k", BudgetPeriod::Month, NOW), 7);
    assert_eq!(spend.user_spent(5, BudgetPeriod::Day, NOW), 7);
    let mut c = RequestCtx::new("r".into());
    c.metered_cost_nanos = 7;
    f.on_done(&mut c); // no principal: nobody to charge
    assert_eq!(spend.key_spent("k", BudgetPeriod::Month, NOW), 7);
}

#[tokio::test]
async fn tokens_per_minute_refuse_once_the_metered_tokens_reach_the_limit() {
    let f = LimitsFilter::new(Arc::new(SpendTracker::default()), || NOW);
    let p = Principal {
        key_id: "t".into(),
        tpm: Some(100),
        ..Principal::default()
    };
    let mut c = ctx(&p);
    assert_eq!(f.on_request(&req(), &mut c).await, Ok(()));
    c.metered_tokens = 99;
    f.on_done(&mut c);
    assert_eq!(f.on_request(&req(), &mut ctx(&p)).await, Ok(()));
    let mut c = ctx(&p);
    c.metered_tokens = 1;
    f.on_done(&mut c);
    let e = f.on_request(&req(), &mut ctx(&p)).await;
    let Err(GatewayError::RateLimited {
        message,
        retry_after: Some(s),
    }) = e
    else {
        panic!("{e:?}")
    };
    assert_eq!(message, "key t used its 100 tokens per minute");
    assert!((1..=60).contains(&s));
    // Tokens are counted only for keys with a limit: a key's later limit starts clean.
    let q = Principal {
        key_id: "u".into(),
        ..Principal::default()
    };
    let mut c = ctx(&q);
    c.metered_tokens = 500;
    f.on_done(&mut c);
    let limited = Principal {
        tpm: Some(100),
        ..q
    };
    assert_eq!(f.on_request(&req(), &mut ctx(&limited)).await, Ok(()));
}

#[tokio::test]
async fn requests_per_minute_refuse_past_the_limit_with_the_time_to_the_next_window() {
    let mut f = LimitsFilter::new(Arc::new(SpendTracker::default()), || NOW);
    let now = Instant::now();
    f.started = now.checked_sub(Duration::from_secs(45)).unwrap_or(now);
    assert_eq!(f.retry_after(), 15);
    let p = Principal {
        key_id: "r".into(),
        rpm: Some(2),
        ..Principal::default()
    };
    for _ in 0..2 {
        assert_eq!(f.on_request(&req(), &mut ctx(&p)).await, Ok(()));
    }
    let e = f.on_request(&req(), &mut ctx(&p)).await;
    assert_eq!(
        e,
        Err(GatewayError::RateLimited {
            message: "key r is limited to 2 requests per minute".into(),
            retry_after: Some(15),
        })
    );
    assert_eq!(f.name(), "limits");
    assert_eq!(f.async_phases(), crate::AsyncPhases::REQUEST);
}
