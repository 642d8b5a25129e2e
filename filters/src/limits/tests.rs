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
    assert_eq!(f.phases(), crate::Phases::REQUEST);
}

/// A limits filter whose estimates are priced at 10 nano-dollars per input token and 20
/// per output token (model `m`).
fn estimating(spend: &Arc<SpendTracker>) -> LimitsFilter {
    let price = crate::usage::Price {
        input: 10,
        output: 20,
        cache_read: 10,
        cache_write: 10,
    };
    let prices = PriceTable::new(vec![(crate::pattern::ModelPattern::parse("m"), price)]);
    LimitsFilter::new(spend.clone(), || NOW).with_prices(Arc::new(Live::new(prices)))
}

/// A chat request of `p` routed to `m`, its body `input * 4` bytes (`input` tokens
/// estimated), asking for at most `max_output` tokens.
fn routed(p: &Principal, input: usize, max_output: Option<u64>) -> RequestCtx {
    let mut c = ctx(p);
    c.endpoint = Some(crate::endpoint::Endpoint::ChatCompletions);
    c.body = bytes::Bytes::from(" ".repeat(input * 4));
    c.max_output = max_output;
    c.route = Some(crate::context::RouteDecision {
        served_model: "m".into(),
        chain: Vec::new(),
    });
    c
}

#[tokio::test]
async fn requests_in_flight_reserve_their_estimate_until_they_end() {
    let spend = Arc::new(SpendTracker::default());
    let f = estimating(&spend);
    let p = Principal {
        key_id: "k".into(),
        user_id: 4,
        user: "ann".into(),
        budget: budget(1_000, BudgetPeriod::Day),
        user_budget: budget(5_000, BudgetPeriod::Month),
        tpm: Some(100),
        ..Principal::default()
    };
    // 5 input tokens * 10 + 10 output tokens * 20 = 250 nano-dollars, 15 tokens.
    let mut admitted = Vec::new();
    for _ in 0..4 {
        let mut c = routed(&p, 5, Some(10));
        assert_eq!(f.on_request(&req(), &mut c).await, Ok(()));
        let want = Reservation {
            key_nanos: 250,
            user_nanos: 250,
            tokens: 15,
            ticket: Ticket::default(),
        };
        assert_eq!(c.reserved, want);
        admitted.push(c);
    }
    assert_eq!(spend.reserved(Counter::KeySpend("k")), 1_000);
    assert_eq!(spend.reserved(Counter::UserSpend(4)), 1_000);
    assert_eq!(spend.reserved(Counter::KeyTokens("k")), 60);
    // Nothing is spent yet, but the budget is reserved up to its end.
    let e = f.on_request(&req(), &mut routed(&p, 5, Some(10))).await;
    let Err(GatewayError::BudgetExceeded(msg)) = e else {
        panic!("{e:?}")
    };
    assert!(
        msg.contains("(spent $0") && msg.contains("more reserved by requests in flight)"),
        "{msg}"
    );
    // One ends, metered below its estimate: its reservation goes, its cost stays.
    let mut done = admitted.remove(0);
    done.metered_cost_nanos = 100;
    done.metered_tokens = 12;
    f.on_done(&mut done);
    assert_eq!(done.reserved, Reservation::default(), "given back once");
    assert_eq!(spend.reserved(Counter::KeySpend("k")), 750);
    assert_eq!(spend.key_spent("k", BudgetPeriod::Day, NOW), 100);
    assert_eq!(spend.user_spent(4, BudgetPeriod::Month, NOW), 100);
    let window = minute_start(NOW);
    assert_eq!(spend.spent(Counter::KeyTokens("k"), window), 12);
    assert_eq!(spend.reserved(Counter::KeyTokens("k")), 45);
    let mut fifth = routed(&p, 5, Some(10));
    assert_eq!(
        f.on_request(&req(), &mut fifth).await,
        Ok(()),
        "100 + 750 < 1000"
    );
    // The rest end without a cost (an upstream error, a client gone): all given back.
    admitted.push(fifth);
    for mut c in admitted {
        f.on_done(&mut c);
    }
    for counter in [
        Counter::KeySpend("k"),
        Counter::UserSpend(4),
        Counter::KeyTokens("k"),
    ] {
        assert_eq!(spend.reserved(counter), 0, "{counter:?}");
    }
}

#[tokio::test]
async fn a_refusal_reserves_nothing_and_tokens_are_reserved_per_minute() {
    let spend = Arc::new(SpendTracker::default());
    let f = estimating(&spend);
    let p = Principal {
        key_id: "t".into(),
        budget: budget(1_000_000, BudgetPeriod::Day),
        tpm: Some(100),
        ..Principal::default()
    };
    // No maximum named: 40 + 4096 tokens, more than the limit, admitted all the same
    // when nothing else is in flight...
    let mut first = routed(&p, 40, None);
    assert_eq!(f.on_request(&req(), &mut first).await, Ok(()));
    assert_eq!(first.reserved.tokens, 40 + estimate::DEFAULT_OUTPUT_TOKENS);
    // ...and the next waits its turn; the refusal leaves the budget's reservation alone.
    let e = f.on_request(&req(), &mut routed(&p, 40, None)).await;
    let Err(GatewayError::RateLimited {
        message,
        retry_after: Some(s),
    }) = e
    else {
        panic!("{e:?}")
    };
    assert_eq!(
        message,
        "key t used its 100 tokens per minute (4136 of them reserved by requests in flight)"
    );
    assert_eq!(s, (60 - NOW.rem_euclid(60)) as u64);
    let cost = 40 * 10 + 4096 * 20;
    assert_eq!(spend.reserved(Counter::KeySpend("t")), cost);
    // An embedding generates nothing; a token count costs nothing and reserves nothing.
    let mut c = routed(
        &Principal {
            tpm: None,
            ..p.clone()
        },
        40,
        Some(7),
    );
    c.endpoint = Some(crate::endpoint::Endpoint::Embeddings);
    assert_eq!(f.on_request(&req(), &mut c).await, Ok(()));
    assert_eq!(c.reserved.key_nanos, 400);
    c.endpoint = Some(crate::endpoint::Endpoint::CountTokens);
    assert_eq!(
        estimate::of(&c, &PriceTable::default()),
        Estimate::default()
    );
    // A refused request's on_done gives back nothing it did not reserve.
    let mut refused = routed(&p, 40, None);
    f.on_done(&mut refused);
    assert_eq!(spend.reserved(Counter::KeySpend("t")), cost + 400);
}

#[test]
fn reservations_outlive_a_window_and_spend_starts_over_in_the_next() {
    let s = SpendTracker::default();
    let claim = |window, limit, amount| Claim {
        counter: Counter::KeyTokens("k"),
        window,
        limit,
        amount,
    };
    assert_eq!(s.reserve_now(&[claim(60, 100, 70)]), Ok(()));
    assert_eq!(s.reserve_now(&[claim(60, 100, 70)]), Ok(()), "70 < 100");
    assert_eq!(
        s.reserve_now(&[claim(60, 100, 1)]),
        Err(Refused {
            claim: 0,
            spent: 0,
            reserved: 140
        })
    );
    // The next minute: still reserved by the requests running.
    assert!(s.reserve_now(&[claim(120, 100, 1)]).is_err());
    let settle = |window, reserved, spent| Settle {
        counter: Counter::KeyTokens("k"),
        window,
        reserved,
        spent,
    };
    s.settle(&[settle(120, 70, 90), settle(120, 70, 5)]);
    assert_eq!(s.spent(Counter::KeyTokens("k"), 120), 95);
    assert_eq!(s.reserved(Counter::KeyTokens("k")), 0);
    assert!(s.reserve_now(&[claim(120, 100, 1)]).is_ok(), "95 < 100");
    // All or nothing: a claim refused leaves the others unreserved.
    let both = [
        Claim {
            counter: Counter::UserSpend(1),
            window: 0,
            limit: 10,
            amount: 3,
        },
        claim(120, 96, 1),
    ];
    assert_eq!(s.reserve_now(&both).map_err(|r| r.claim), Err(1));
    assert_eq!(s.reserved(Counter::UserSpend(1)), 0);
}

#[tokio::test]
async fn a_request_refused_for_its_rate_after_reserving_gives_the_reservation_back() {
    let spend = Arc::new(SpendTracker::default());
    let f = estimating(&spend);
    let p = Principal {
        key_id: "r".into(),
        budget: budget(1_000_000, BudgetPeriod::Day),
        tpm: Some(1_000),
        rpm: Some(1),
        ..Principal::default()
    };
    let mut first = routed(&p, 10, Some(10));
    assert_eq!(f.on_request(&req(), &mut first).await, Ok(()));
    let mut second = routed(&p, 10, Some(10));
    let e = f.on_request(&req(), &mut second).await;
    assert!(
        matches!(&e, Err(GatewayError::RateLimited { message, .. }) if message.contains("requests per minute")),
        "{e:?}"
    );
    assert_eq!(spend.reserved(Counter::KeySpend("r")), 2 * 300);
    assert_eq!(spend.reserved(Counter::KeyTokens("r")), 2 * 20);
    f.on_done(&mut second);
    assert_eq!(spend.reserved(Counter::KeySpend("r")), 300);
    assert_eq!(spend.reserved(Counter::KeyTokens("r")), 20);
    assert_eq!(spend.key_spent("r", BudgetPeriod::Day, NOW), 0);
    f.on_done(&mut first);
    assert_eq!(spend.reserved(Counter::KeySpend("r")), 0);
    assert_eq!(spend.reserved(Counter::KeyTokens("r")), 0);
}

/// Counters that count requests per minute themselves, as the shared ones do: here the
/// in-memory ones, recording each call to `reserve`.
#[derive(Default)]
struct CountingRequests {
    inner: SpendTracker,
    calls: std::sync::Mutex<Vec<usize>>,
}

impl LimitCounters for CountingRequests {
    async fn reserve(&self, claims: &[Claim<'_>]) -> Result<Ticket, Refused> {
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(claims.len());
        self.inner.reserve_now(claims).map(|()| Ticket(Some(7)))
    }

    fn settle(&self, settles: &[Settle<'_>]) {
        self.inner.settle(settles);
    }

    fn counts_requests(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn counters_that_count_requests_get_them_in_the_same_call_as_the_budget() {
    let counters = Arc::new(CountingRequests::default());
    let f = LimitsFilter::new(counters.clone(), || NOW);
    let p = Principal {
        key_id: "q".into(),
        budget: budget(1_000_000, BudgetPeriod::Day),
        rpm: Some(2),
        ..Principal::default()
    };
    let only_rpm = Principal {
        key_id: "o".into(),
        rpm: Some(1),
        ..Principal::default()
    };
    for _ in 0..2 {
        let mut c = ctx(&p);
        assert_eq!(f.on_request(&req(), &mut c).await, Ok(()));
        assert_eq!(c.reserved.ticket, Ticket(Some(7)), "kept for on_done");
    }
    let e = f.on_request(&req(), &mut ctx(&p)).await;
    assert_eq!(
        e,
        Err(GatewayError::RateLimited {
            message: "key q is limited to 2 requests per minute".into(),
            retry_after: Some(20), // NOW is 40 s into its minute
        })
    );
    assert_eq!(f.on_request(&req(), &mut ctx(&only_rpm)).await, Ok(()));
    assert!(f.on_request(&req(), &mut ctx(&only_rpm)).await.is_err());
    // One call per request, the budget and the requests together; nothing else counted
    // them (the filter's own estimator is not used).
    let calls = counters
        .calls
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    assert_eq!(calls, [2, 2, 2, 1, 1]);
    let window = minute_start(NOW);
    assert_eq!(counters.inner.spent(Counter::KeyRequests("q"), window), 2);
    assert_eq!(
        counters.inner.spent(Counter::KeyRequests("q"), window + 60),
        0
    );
    assert_eq!(counters.inner.reserved(Counter::KeyRequests("q")), 0);
}

#[test]
fn the_token_window_is_the_minute_that_holds_the_instant() {
    assert_eq!(minute_start(NOW), 1_794_999_960);
    assert_eq!(minute_start(120), 120);
    assert_eq!(minute_start(179), 120);
    assert_eq!(minute_start(59), 0);
    assert_eq!(minute_start(-1), -60, "before 1970 too, the minute's start");
}

/// A request claim for a minute older than the counter's (an instance whose clock is
/// behind) is admitted against nothing and adds to nothing: neither that minute's count
/// nor the reservations, which requests never hold.
#[test]
fn a_request_claim_for_an_older_minute_counts_nowhere() {
    let spend = SpendTracker::default();
    let claim = |window: i64| Claim {
        counter: Counter::KeyRequests("r"),
        window,
        limit: 10,
        amount: 1,
    };
    let now = minute_start(NOW);
    assert_eq!(spend.reserve_now(&[claim(now)]), Ok(()));
    assert_eq!(spend.reserve_now(&[claim(now - 60)]), Ok(()));
    assert_eq!(spend.spent(Counter::KeyRequests("r"), now), 1);
    assert_eq!(spend.spent(Counter::KeyRequests("r"), now - 60), 0);
    assert_eq!(spend.reserved(Counter::KeyRequests("r")), 0);
}
