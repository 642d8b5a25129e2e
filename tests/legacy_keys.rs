//! Legacy shared keys (README "Users and keys"): with `auth.mode: legacy | both` the
//! static keys of `auth.legacy_keys` (`${VAR}` expanded) authenticate as gateway keys do,
//! in every credential form, never reach the upstream, and are recorded under the user
//! `legacy`; `legacy` alone refuses gateway keys; `check` warns while it is on, and
//! refuses a legacy mode without a key.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use common::http::request;
use common::{GatewayBuilder, Scenario, CHAT};
use serde_json::Value;

const LEGACY: &str = "sk-legacy-7Hq2mZ9vX4";

/// The scenario in `mode`, its legacy key from `$LEGACY_KEY`, and an admin's key.
async fn start(mode: &str) -> (Scenario, String) {
    let s = Scenario::start_with(|c| {
        c.auth("mode", mode)
            .auth("legacy_keys", "[\"${LEGACY_KEY}\"]")
            .env("LEGACY_KEY", LEGACY)
            .user("root", "admin")
    })
    .await;
    let admin = s.gw.create_key("root", &[]);
    (s, admin)
}

/// Requests per group of `GET /admin/usage?by=<by>`, once `n` are stored.
async fn requests_by(s: &Scenario, admin: &str, by: &str, n: u64) -> Vec<(String, u64)> {
    let doc = s.gw.usage_after(admin, by, n).await;
    let mut rows: Vec<(String, u64)> = doc["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r: &Value| {
            (
                r["group"].as_str().unwrap().to_owned(),
                r["requests"].as_u64().unwrap(),
            )
        })
        .collect();
    rows.sort();
    rows
}

#[tokio::test]
async fn legacy_keys_work_in_every_form_and_are_recorded_as_legacy() {
    let (s, admin) = start("both").await;
    let gw = &s.gw;
    // Bearer, x-api-key, x-goog-api-key and ?key=, each swapped for the provider key.
    let r = gw.chat(LEGACY, CHAT).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = s.openai.last_request().unwrap();
    assert_eq!(seen.header("authorization"), Some("Bearer sk-o"));
    let r = gw
        .messages(LEGACY, common::messages_body("claude-sonnet-4-5"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        s.anthropic.last_request().unwrap().header("x-api-key"),
        Some("sk-a")
    );
    assert_eq!(
        gw.generate(LEGACY, "gemini-2.5-flash", "{}").await.status,
        200
    );
    let path = format!("/v1beta/models/gemini-2.5-flash:generateContent?key={LEGACY}");
    let r = request(gw.proxy_addr, "POST", &path, &[], b"{}").await;
    assert_eq!(r.status, 200, "{}", r.text());
    for req in s.gemini.requests() {
        assert!(!req.raw_head.contains(LEGACY), "{}", req.raw_head);
        assert_eq!(req.header("x-goog-api-key"), Some("sk-g"));
    }
    // Gateway keys still work.
    assert_eq!(gw.chat(&s.key, CHAT).await.status, 200);
    assert_eq!(
        requests_by(&s, &admin, "user", 5).await,
        [("alice".to_owned(), 1), ("legacy".to_owned(), 4)]
    );
    let keys = requests_by(&s, &admin, "key", 5).await;
    assert!(keys.contains(&("legacy".to_owned(), 4)), "{keys:?}");
    // Anything else is refused.
    for wrong in [
        &LEGACY[..LEGACY.len() - 1],
        "sk-legacy-7Hq2mZ9vX5",
        "Bearer",
    ] {
        let r = gw.chat(wrong, CHAT).await;
        assert_eq!(r.status, 401, "{wrong}: {}", r.text());
    }
    assert!(!gw.logs().contains(LEGACY), "the legacy key was logged");

    // `check` warns, one line, and still succeeds.
    let out = gw.cli(&["check"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let warned: Vec<&str> = stdout.lines().filter(|l| l.contains("auth.mode")).collect();
    assert_eq!(warned.len(), 1, "{stdout}");
    assert!(
        warned[0].starts_with("warning: auth.mode is both:"),
        "{stdout}"
    );
    assert!(stdout.contains(": OK ("), "{stdout}");
}

#[tokio::test]
async fn legacy_mode_alone_refuses_gateway_keys() {
    let (s, _admin) = start("legacy").await;
    assert_eq!(s.gw.chat(LEGACY, CHAT).await.status, 200);
    let r = s.gw.chat(&s.key, CHAT).await;
    assert_eq!(r.status, 401, "{}", r.text());
    // In keys mode `check` says nothing of it.
    let quiet = GatewayBuilder::new().build();
    let out = quiet.cli(&["check"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && !stdout.contains("auth.mode"),
        "{stdout}"
    );
}

#[test]
fn a_legacy_mode_without_a_key_is_refused() {
    let gw = GatewayBuilder::new()
        .auth("mode", "legacy")
        .auth("legacy_keys", "[\"${LEGACY_KEY:-}\"]")
        .build();
    let out = gw.cli(&["check"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("auth.legacy_keys: auth.mode legacy needs at least one legacy key"),
        "{stderr}"
    );
    let gw = GatewayBuilder::new()
        .auth("mode", "both")
        .auth("legacy_keys", "[\"${LEGACY_KEY}\"]")
        .build();
    let stderr = String::from_utf8_lossy(&gw.cli(&["check"]).stderr).into_owned();
    assert!(stderr.contains("LEGACY_KEY"), "{stderr}");
}
