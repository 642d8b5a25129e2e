//! The Lua scripts behind `limits.redis_url`, run against a real, private redis-server:
//! requests and tokens per minute counted in the server's minute, budgets reserved and
//! settled in integer nano-dollars, keys that expire by themselves, and budget counters
//! that are created only by a rebuild (`SET NX`), so that a lost counter is never added
//! to twice.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use common::redis::TestRedis;
use common::wait;
use redis::aio::ConnectionManager;
use tollgate::limits::script::{self, Item, Kind, Reply, Scripts, RESERVED_MINUTES};
use tollgate_filters::limits::Refused;

async fn connect(r: &TestRedis) -> ConnectionManager {
    ConnectionManager::new(redis::Client::open(r.url()).unwrap())
        .await
        .unwrap()
}

fn item(kind: Kind, id: &str, window: i64, first: u64, second: u64) -> Item {
    Item {
        kind,
        id: id.to_owned(),
        window,
        first,
        second,
    }
}

/// The server's current minute, as the scripts see it.
fn minute_of(reply: &Reply) -> i64 {
    match reply {
        Reply::Admitted(m) => *m,
        other => panic!("not admitted: {other:?}"),
    }
}

#[tokio::test]
async fn requests_per_minute_admit_exactly_the_limit_in_the_servers_minute() {
    let r = TestRedis::start();
    let mut c = connect(&r).await;
    let s = Scripts::default();
    let minute = wait::a_fresh_minute(async || r.now()).await;
    let rpm = [item(Kind::Requests, "k1", 0, 3, 1)];
    for _ in 0..3 {
        let m = minute_of(&s.reserve(&mut c, &rpm).await.unwrap());
        assert_eq!(m, minute, "the server's minute");
    }
    assert_eq!(
        s.reserve(&mut c, &rpm).await.unwrap(),
        Reply::Refused(Refused {
            claim: 0,
            spent: 3,
            reserved: 0
        })
    );
    let key = format!("tollgate:rpm:k1:{minute}");
    assert_eq!(r.get(&key), 3, "a refusal is not counted");
    assert!((1..=120).contains(&r.ttl(&key)), "{}", r.ttl(&key));
    // Another key has its own count.
    let other = [item(Kind::Requests, "k2", 0, 3, 1)];
    assert!(matches!(
        s.reserve(&mut c, &other).await.unwrap(),
        Reply::Admitted(_)
    ));
    wait::still_in(minute, r.now());
}

#[tokio::test]
async fn budget_counters_are_created_only_by_a_rebuild_and_never_added_to_twice() {
    let r = TestRedis::start();
    let mut c = connect(&r).await;
    let s = Scripts::default();
    let window = 1_796_083_200; // a month's start
    let key = "tollgate:budget:key:kb:1796083200";
    let claims = [
        item(Kind::KeyBudget, "kb", window, 9_800, 400),
        item(Kind::UserBudget, "7", window, 50_000, 400),
    ];
    // Both counters are missing: nothing is reserved, both are named.
    assert_eq!(
        s.reserve(&mut c, &claims).await.unwrap(),
        Reply::Missing(vec![0, 1])
    );
    assert!(r.keys("tollgate:reserved:*").is_empty());
    // A settlement of a missing counter does not create it (the store holds that cost,
    // and the rebuild will read it from there).
    let settle = [item(Kind::KeyBudget, "kb", window, 0, 123)];
    s.settle(&mut c, 0, &settle).await.unwrap();
    assert!(!r.exists(key));
    // The rebuild sets the store's sum once; a second (another gateway, late) is a no-op.
    script::rebuild(&mut c, key, 9_000, 3_600).await.unwrap();
    script::rebuild(&mut c, key, 9_000, 3_600).await.unwrap();
    script::rebuild(&mut c, key, 1, 3_600).await.unwrap();
    assert_eq!(r.get(key), 9_000);
    assert!((3_500..=3_600).contains(&r.ttl(key)), "expires by itself");
    script::rebuild(&mut c, "tollgate:budget:user:7:1796083200", 20_000, 60)
        .await
        .unwrap();
    // 9,000 spent + 0, then 400 reserved < 9,800: admitted twice; then 9,800 refuses.
    let m = wait::a_fresh_minute(async || r.now()).await;
    assert_eq!(minute_of(&s.reserve(&mut c, &claims).await.unwrap()), m);
    assert_eq!(minute_of(&s.reserve(&mut c, &claims).await.unwrap()), m);
    let bucket = format!("tollgate:reserved:budget:key:kb:{m}");
    assert_eq!(r.get(&bucket), 800);
    let ttl = r.ttl(&bucket);
    assert!(ttl > 0 && ttl <= RESERVED_MINUTES * 60 + 60, "{ttl}");
    assert_eq!(
        s.reserve(&mut c, &claims).await.unwrap(),
        Reply::Refused(Refused {
            claim: 0,
            spent: 9_000,
            reserved: 800
        })
    );
    // All or nothing: the user's counter was not reserved by the refused request.
    assert_eq!(r.get(&format!("tollgate:reserved:budget:user:7:{m}")), 800);
    // Settled: the reservation given back, the metered cost added, in nano-dollars.
    let settle = [
        item(Kind::KeyBudget, "kb", window, 400, 350),
        item(Kind::UserBudget, "7", window, 400, 350),
    ];
    s.settle(&mut c, m, &settle).await.unwrap();
    assert_eq!(r.get(&bucket), 400);
    assert_eq!(r.get(key), 9_350);
    assert_eq!(r.get("tollgate:budget:user:7:1796083200"), 20_350);
    // A second settlement of the same reservation cannot take the bucket below 0.
    s.settle(&mut c, m, &settle).await.unwrap();
    s.settle(&mut c, m, &settle).await.unwrap();
    assert_eq!(r.get(&bucket), 0);
    wait::still_in(m, r.now());
}

#[tokio::test]
async fn several_requests_settled_in_one_call_count_as_if_settled_one_by_one() {
    let r = TestRedis::start();
    let mut c = connect(&r).await;
    let s = Scripts::default();
    let claim = |id, amount| [item(Kind::Tokens, id, 0, 1_000, amount)];
    let m1 = minute_of(&s.reserve(&mut c, &claim("ka", 60)).await.unwrap());
    let m2 = minute_of(&s.reserve(&mut c, &claim("ka", 70)).await.unwrap());
    let m3 = minute_of(&s.reserve(&mut c, &claim("kb", 80)).await.unwrap());
    // Three requests, two keys, in one call: each gives its own reservation back.
    let groups = [
        (m1, vec![item(Kind::Tokens, "ka", 0, 60, 10)]),
        (m2, vec![item(Kind::Tokens, "ka", 0, 70, 20)]),
        (m3, vec![item(Kind::Tokens, "kb", 0, 80, 40)]),
    ];
    s.settle_all(&mut c, &groups).await.unwrap();
    let sum = |pattern: &str| -> i64 { r.keys(pattern).iter().map(|k| r.get(k)).sum() };
    assert_eq!(sum("tollgate:tpm:ka:*"), 30);
    assert_eq!(sum("tollgate:tpm:kb:*"), 40);
    assert_eq!(sum("tollgate:reserved:tpm:ka:*"), 0);
    assert_eq!(sum("tollgate:reserved:tpm:kb:*"), 0);
}

#[tokio::test]
async fn tokens_are_reserved_as_an_upper_bound_and_settled_with_the_exact_count() {
    let r = TestRedis::start();
    let mut c = connect(&r).await;
    let s = Scripts::default();
    let claim = |amount| [item(Kind::Tokens, "kt", 0, 100, amount)];
    let m = wait::a_fresh_minute(async || r.now()).await;
    // 0 spent + 60 reserved < 100: one more, then 120 reserved refuses.
    assert_eq!(minute_of(&s.reserve(&mut c, &claim(60)).await.unwrap()), m);
    assert_eq!(minute_of(&s.reserve(&mut c, &claim(60)).await.unwrap()), m);
    assert_eq!(
        s.reserve(&mut c, &claim(1)).await.unwrap(),
        Reply::Refused(Refused {
            claim: 0,
            spent: 0,
            reserved: 120
        })
    );
    // Each used 30 of its 60: the windows hold the exact count, nothing reserved.
    let settle = [item(Kind::Tokens, "kt", 0, 60, 30)];
    s.settle(&mut c, m, &settle).await.unwrap();
    s.settle(&mut c, m, &settle).await.unwrap();
    assert_eq!(r.get(&format!("tollgate:tpm:kt:{m}")), 60);
    let counted: i64 = r.keys("tollgate:tpm:kt:*").iter().map(|k| r.get(k)).sum();
    assert_eq!(counted, 60);
    for k in r.keys("tollgate:tpm:kt:*") {
        assert!((1..=120).contains(&r.ttl(&k)), "{k} expires by itself");
    }
    let reserved: i64 = r
        .keys("tollgate:reserved:tpm:kt:*")
        .iter()
        .map(|k| r.get(k))
        .sum();
    assert_eq!(reserved, 0);
    assert!(matches!(
        s.reserve(&mut c, &claim(39)).await.unwrap(),
        Reply::Admitted(_)
    ));
}

#[tokio::test]
async fn a_redis_restart_loses_reservations_and_counters_without_inflating_any() {
    let mut r = TestRedis::start();
    let mut c = connect(&r).await;
    let s = Scripts::default();
    let key = "tollgate:budget:key:kr:0";
    script::rebuild(&mut c, key, 5_000, 600).await.unwrap();
    let claims = [item(Kind::KeyBudget, "kr", 0, 1_000_000, 700)];
    let m = minute_of(&s.reserve(&mut c, &claims).await.unwrap());
    r.kill();
    r.restart();
    // The request admitted before the restart settles after it: its reservation is
    // gone with the bucket (not taken below 0) and its cost does not create the counter.
    let settle = [item(Kind::KeyBudget, "kr", 0, 700, 650)];
    let mut settled = s.settle(&mut c, m, &settle).await;
    if settled.is_err() {
        // the connection manager reconnects on the next call
        settled = s.settle(&mut c, m, &settle).await;
    }
    settled.unwrap();
    assert!(r.keys("tollgate:*").is_empty(), "{:?}", r.keys("*"));
    // Rebuilt from the store's sum (which holds that cost): exactly once.
    assert_eq!(
        s.reserve(&mut c, &claims).await.unwrap(),
        Reply::Missing(vec![0])
    );
    script::rebuild(&mut c, key, 5_650, 600).await.unwrap();
    minute_of(&s.reserve(&mut c, &claims).await.unwrap());
    assert_eq!(r.get(key), 5_650);
}
