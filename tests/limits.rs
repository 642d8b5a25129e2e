//! Spending and rate limits trip at exactly the right request: a key's budget and a
//! user's budget (over all their keys, set from the CLI or the admin API) once the spend
//! reaches them, surviving a restart; RPM and TPM with a `retry-after`, each refusal in
//! the client's dialect and other keys unaffected; and keys record when they were last
//! used without a store write per request.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::wait::{a_fresh_minute, still_in, unix_now};
use common::{eventually, messages_body, Gateway, Scenario};
use serde_json::json;

/// The three-dialect scenario with prices, an admin `root`, and a key of root.
async fn setup() -> (Scenario, String) {
    let s = Scenario::start_with(|config| {
        config
            .price("o4-mini*", "{ input: 1.1, output: 4.4, cache_read: 0.275 }")
            .price(
                "claude-sonnet-4*",
                "{ input: 3.0, output: 15.0, cache_read: 0.30, cache_write: 3.75 }",
            )
            .user("root", "admin")
    })
    .await;
    let admin = s.gw.create_key("root", &[]);
    (s, admin)
}

/// Waits (bounded) until `n` usage events are stored: the spend and tokens of those
/// requests are then known to the limits.
async fn settle(gw: &Gateway, admin: &str, n: u64) {
    gw.usage_after(admin, "day", n).await;
}

#[tokio::test]
async fn key_budget_trips_at_the_request_after_it_is_spent() {
    let (mut s, admin) = setup().await;
    // o4-mini chat.json costs 93*1100 + 1024*275 + 246*4400 = 1,466,300 nano-dollars.
    let key = s.gw.create_key(
        "alice",
        &["--budget-usd", "0.004", "--budget-period", "day"],
    );
    let body = r#"{"model":"o4-mini","messages":[]}"#;
    for i in 0..3 {
        assert_eq!(s.gw.chat(&key, body).await.status, 200, "request {i}");
        settle(&s.gw, &admin, i + 1).await;
    }
    // 3 x 1,466,300 = 4,398,900 >= 4,000,000: the fourth is refused.
    let r = s.gw.chat(&key, body).await;
    assert_eq!(r.status, 429, "{}", r.text());
    let v = r.json();
    assert_eq!(v["error"]["type"], "rate_limit_error");
    assert_eq!(v["error"]["code"], "budget_exceeded");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("$0.00")
            && msg.contains("per day")
            && msg.contains(key.split('_').nth(1).unwrap()),
        "{msg}"
    );
    // The budget survives a restart: spend is reloaded from the store.
    s.gw.kill();
    s.gw.start();
    assert_eq!(s.gw.chat(&key, body).await.status, 429);
}

/// Two keys of `user` (whose budget is $0.01), after `before` stored events: two
/// requests of $0.0092 each pass (the first leaves room), the third is refused.
async fn user_budget_trips_on_the_third_request(
    gw: &Gateway,
    admin: &str,
    user: &str,
    before: u64,
) {
    let k1 = gw.create_key(user, &[]);
    let k2 = gw.create_key(user, &[]);
    // claude messages.json: 21*3000 + 2048*300 + 1536*3750 + 187*15000 = 9,242,400.
    let body = messages_body("claude-sonnet-4-5");
    assert_eq!(gw.messages(&k1, &body).await.status, 200);
    settle(gw, admin, before + 1).await;
    let second = gw.messages(&k2, &body).await;
    assert_eq!(second.status, 200, "9.24M < 10M: still allowed");
    settle(gw, admin, before + 2).await;
    let r = gw.messages(&k1, &body).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["type"], "error");
    assert_eq!(r.json()["error"]["type"], "rate_limit_error");
    let m = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(m.contains(&format!("user {user}")), "{m}");
}

#[tokio::test]
async fn user_budget_covers_all_their_keys() {
    let (s, admin) = setup().await;
    let gw = &s.gw;
    let out = gw.cli(&["user", "add", "bob", "--budget-usd", "0.01"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    user_budget_trips_on_the_third_request(gw, &admin, "bob", 0).await;

    // The same budget set through the admin API.
    let dave = json!({"username":"dave","role":"member","budget_usd":"0.01","budget_period":"day"});
    let r = gw.admin_as(&admin).post("/admin/users", dave).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        (
            r.json()["budget_usd"].as_str(),
            r.json()["budget_period"].as_str()
        ),
        (Some("0.01"), Some("day"))
    );
    user_budget_trips_on_the_third_request(gw, &admin, "dave", 3).await;

    let bad = gw.cli(&["user", "add", "carol", "--budget-usd", "lots"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        !gw.cli_ok(&["user", "list"]).contains("carol"),
        "a refused budget leaves no user"
    );
}

#[tokio::test]
async fn rpm_and_tpm_trip_with_retry_after_in_each_dialect() {
    let (s, admin) = setup().await;
    let gw = &s.gw;
    let rpm = gw.create_key("alice", &["--rpm", "2"]);
    let body = messages_body("claude-sonnet-4-5");
    for _ in 0..2 {
        assert_eq!(gw.messages(&rpm, &body).await.status, 200);
    }
    let r = gw.messages(&rpm, &body).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"]["type"], "rate_limit_error");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));

    // TPM counts metered tokens: gemini generate.json is 13 + 2048 + 376 = 2437 tokens.
    // The three requests must fall in one minute of the clock: the refused request above
    // is the third event stored.
    let tpm = gw.create_key("alice", &["--tpm", "3000"]);
    let flash = "gemini-2.5-flash";
    let minute = a_fresh_minute(async || unix_now()).await;
    assert_eq!(gw.generate(&tpm, flash, "{}").await.status, 200);
    settle(gw, &admin, 4).await;
    let second = gw.generate(&tpm, flash, "{}").await;
    assert_eq!(second.status, 200, "2437 < 3000");
    settle(gw, &admin, 5).await;
    let r = gw.generate(&tpm, flash, "{}").await;
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"]["status"], "RESOURCE_EXHAUSTED");
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("3000 tokens per minute"));
    assert!(r.header("retry-after").is_some());
    still_in(minute, unix_now());
    // Other keys are not affected.
    let free = gw.create_key("alice", &[]);
    assert_eq!(gw.generate(&free, flash, "{}").await.status, 200);
}

#[tokio::test]
async fn last_used_is_recorded_without_a_write_per_request() {
    let (s, _admin) = setup().await;
    let gw = &s.gw;
    let key = gw.create_key("alice", &[]);
    let id = key.split('_').nth(1).unwrap().to_owned();
    let last_used = || -> serde_json::Value {
        let listed: serde_json::Value =
            serde_json::from_str(&gw.cli_ok(&["key", "list", "--json"])).unwrap();
        let ours = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["id"] == id.as_str());
        ours.unwrap()["last_used_at"].clone()
    };
    assert!(last_used().is_null());
    let r = gw.chat(&key, br#"{"model":"o4-mini"}"#).await;
    assert_eq!(r.status, 200);
    let when = eventually(
        "last_used_at to be written",
        Duration::from_secs(5),
        async || Some(last_used()).filter(|v| !v.is_null()),
    )
    .await;
    assert!(when.as_str().unwrap().starts_with("20"));
}
