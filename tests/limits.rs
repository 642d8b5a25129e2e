//! Budgets (per key and per user) and RPM/TPM limits trip at the right request, in each
//! dialect's error shape, and keys record when they were last used.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::time::{Duration, Instant};

use common::gateway::{Gateway, GatewayBuilder};
use common::http::request;
use common::mock_upstream::MockUpstream;

async fn setup() -> (MockUpstream, MockUpstream, MockUpstream, Gateway, String) {
    let (o, a, g) = (
        MockUpstream::start().await,
        MockUpstream::start().await,
        MockUpstream::start().await,
    );
    let ups = format!(
        "  - name: oa\n    kind: openai\n    base_url: \"{}\"\n  - name: an\n    kind: anthropic\n    base_url: \"{}\"\n  - name: ge\n    kind: gemini\n    base_url: \"{}\"\n",
        o.base_url(),
        a.base_url(),
        g.base_url()
    );
    let routes = "  - models: [\"claude-*\"]\n    upstreams: [an]\n  - models: [\"gemini-*\"]\n    upstreams: [ge]\n  - models: [\"*\"]\n    upstreams: [oa]\n";
    let pricing = "  \"o4-mini*\": { input: 1.1, output: 4.4, cache_read: 0.275 }\n  \"claude-sonnet-4*\": { input: 3.0, output: 15.0, cache_read: 0.30, cache_write: 3.75 }\n";
    let gw = GatewayBuilder::new()
        .upstreams_yaml(ups)
        .routes_yaml(routes.into())
        .pricing_yaml(pricing.into())
        .user("root", "admin")
        .start_with_user("alice");
    let admin = gw.create_key("root", &[]);
    (o, a, g, gw, admin)
}

/// Waits (bounded) until `n` usage events are stored: the spend and tokens of those
/// requests are then known to the limits.
async fn settle(gw: &Gateway, admin: &str, n: u64) {
    gw.usage_after(admin, "day", n).await;
}

#[tokio::test]
async fn key_budget_trips_at_the_request_after_it_is_spent() {
    let (_o, _a, _g, gw, admin) = setup().await;
    // o4-mini chat.json costs 93*1100 + 1024*275 + 246*4400 = 1,466,300 nano-dollars.
    let key = gw.create_key(
        "alice",
        &["--budget-usd", "0.004", "--budget-period", "day"],
    );
    let auth = format!("Bearer {key}");
    let body = br#"{"model":"o4-mini","messages":[]}"#;
    for i in 0..3 {
        let r = request(
            gw.proxy_addr,
            "POST",
            "/v1/chat/completions",
            &[("authorization", &auth)],
            body,
        )
        .await;
        assert_eq!(r.status, 200, "request {i}");
        settle(&gw, &admin, i + 1).await;
    }
    // 3 x 1,466,300 = 4,398,900 >= 4,000,000: the fourth is refused.
    let r = request(
        gw.proxy_addr,
        "POST",
        "/v1/chat/completions",
        &[("authorization", &auth)],
        body,
    )
    .await;
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
    let mut gw = gw;
    gw.kill();
    gw.start();
    let r = request(
        gw.proxy_addr,
        "POST",
        "/v1/chat/completions",
        &[("authorization", &auth)],
        body,
    )
    .await;
    assert_eq!(r.status, 429);
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
    let body = br#"{"model":"claude-sonnet-4-5","max_tokens":9,"messages":[]}"#;
    let send = |key: String| async move {
        request(
            gw.proxy_addr,
            "POST",
            "/v1/messages",
            &[("x-api-key", &key)],
            body,
        )
        .await
    };
    assert_eq!(send(k1.clone()).await.status, 200);
    settle(gw, admin, before + 1).await;
    assert_eq!(send(k2).await.status, 200, "9.24M < 10M: still allowed");
    settle(gw, admin, before + 2).await;
    let r = send(k1).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["type"], "error");
    assert_eq!(r.json()["error"]["type"], "rate_limit_error");
    let m = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(m.contains(&format!("user {user}")), "{m}");
}

#[tokio::test]
async fn user_budget_covers_all_their_keys() {
    let (_o, _a, _g, gw, admin) = setup().await;
    let out = gw.cli(&["user", "add", "bob", "--budget-usd", "0.01"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    user_budget_trips_on_the_third_request(&gw, &admin, "bob", 0).await;

    // The same budget set through the admin API.
    let r = request(
        gw.admin_addr,
        "POST",
        "/admin/users",
        &[("authorization", &format!("Bearer {admin}"))],
        br#"{"username":"dave","role":"member","budget_usd":"0.01","budget_period":"day"}"#,
    )
    .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        (
            r.json()["budget_usd"].as_str(),
            r.json()["budget_period"].as_str()
        ),
        (Some("0.01"), Some("day"))
    );
    user_budget_trips_on_the_third_request(&gw, &admin, "dave", 2).await;

    let bad = gw.cli(&["user", "add", "carol", "--budget-usd", "lots"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        !gw.cli_ok(&["user", "list"]).contains("carol"),
        "a refused budget leaves no user"
    );
}

#[tokio::test]
async fn rpm_and_tpm_trip_with_retry_after_in_each_dialect() {
    let (_o, _a, _g, gw, admin) = setup().await;
    let rpm = gw.create_key("alice", &["--rpm", "2"]);
    let body = br#"{"model":"claude-sonnet-4-5","max_tokens":9,"messages":[]}"#;
    for _ in 0..2 {
        assert_eq!(
            request(
                gw.proxy_addr,
                "POST",
                "/v1/messages",
                &[("x-api-key", &rpm)],
                body
            )
            .await
            .status,
            200
        );
    }
    let r = request(
        gw.proxy_addr,
        "POST",
        "/v1/messages",
        &[("x-api-key", &rpm)],
        body,
    )
    .await;
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"]["type"], "rate_limit_error");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));

    // TPM counts metered tokens: gemini generate.json is 13 + 2048 + 376 = 2437 tokens.
    let tpm = gw.create_key("alice", &["--tpm", "3000"]);
    let path = "/v1beta/models/gemini-2.5-flash:generateContent";
    assert_eq!(
        request(
            gw.proxy_addr,
            "POST",
            path,
            &[("x-goog-api-key", &tpm)],
            b"{}"
        )
        .await
        .status,
        200
    );
    settle(&gw, &admin, 3).await;
    assert_eq!(
        request(
            gw.proxy_addr,
            "POST",
            path,
            &[("x-goog-api-key", &tpm)],
            b"{}"
        )
        .await
        .status,
        200,
        "2437 < 3000"
    );
    settle(&gw, &admin, 4).await;
    let r = request(
        gw.proxy_addr,
        "POST",
        path,
        &[("x-goog-api-key", &tpm)],
        b"{}",
    )
    .await;
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"]["status"], "RESOURCE_EXHAUSTED");
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("3000 tokens per minute"));
    assert!(r.header("retry-after").is_some());
    // Other keys are not affected.
    let free = gw.create_key("alice", &[]);
    assert_eq!(
        request(
            gw.proxy_addr,
            "POST",
            path,
            &[("x-goog-api-key", &free)],
            b"{}"
        )
        .await
        .status,
        200
    );
}

#[tokio::test]
async fn last_used_is_recorded_without_a_write_per_request() {
    let (_o, _a, _g, gw, _admin) = setup().await;
    let key = gw.create_key("alice", &[]);
    let id = key.split('_').nth(1).unwrap().to_owned();
    let listed = || -> serde_json::Value {
        serde_json::from_str(&gw.cli_ok(&["key", "list", "--json"])).unwrap()
    };
    let used = |v: &serde_json::Value| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|k| k["id"] == id.as_str())
            .unwrap()["last_used_at"]
            .clone()
    };
    assert!(used(&listed()).is_null());
    let r = request(
        gw.proxy_addr,
        "POST",
        "/v1/chat/completions",
        &[("authorization", &format!("Bearer {key}"))],
        br#"{"model":"o4-mini"}"#,
    )
    .await;
    assert_eq!(r.status, 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    while used(&listed()).is_null() {
        assert!(Instant::now() < deadline, "last_used_at never written");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(used(&listed()).as_str().unwrap().starts_with("20"));
}
