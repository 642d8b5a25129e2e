//! Authentication at the proxy, through the real server: the gateway key is swapped for
//! the provider key in every dialect (and Gemini's `?key=` is accepted and removed),
//! neither side ever sees the other's key, several provider keys are used in turn;
//! missing, malformed, forged, revoked and expired keys get a 401 in the client's
//! dialect without reaching the upstream, revocation and expiry taking effect while the
//! gateway runs; and a key's model scopes limit what it may use and list.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::http::{request, Response};
use common::{eventually, GatewayBuilder, MockUpstream, Upstream, CHAT};

/// A gateway with one upstream `main` of `kind` on `mock`, holding `keys`, for `models`
/// (a pattern);
/// and a key of alice.
fn one_upstream(
    mock: &MockUpstream,
    kind: fn(&str, &MockUpstream) -> Upstream,
    keys: &[&str],
    models: &str,
) -> (common::Gateway, String) {
    GatewayBuilder::new()
        .upstream(kind("main", mock).keys(keys))
        .route(&[models], &["main"])
        .start_with_key("alice")
}

/// Every header field as `name: value` lines.
fn header_text(headers: &[(String, String)]) -> String {
    headers.iter().map(|(k, v)| format!("{k}: {v}\n")).collect()
}

#[tokio::test]
async fn gateway_key_is_swapped_for_the_provider_key_in_every_dialect() {
    type Kind = fn(&str, &MockUpstream) -> Upstream;
    let dialects: [(&str, Kind, &str, &str, &str, &str); 3] = [
        (
            "openai",
            Upstream::openai,
            "/v1/chat/completions",
            "authorization",
            "Bearer sk-up-1",
            CHAT,
        ),
        (
            "anthropic",
            Upstream::anthropic,
            "/v1/messages",
            "x-api-key",
            "sk-up-1",
            r#"{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[]}"#,
        ),
        (
            "gemini",
            Upstream::gemini,
            "/v1beta/models/gemini-2.0-flash:generateContent",
            "x-goog-api-key",
            "sk-up-1",
            r#"{"contents":[]}"#,
        ),
    ];
    for (kind, upstream, path, header, upstream_value, body) in dialects {
        let mock = MockUpstream::start().await;
        let (gw, key) = one_upstream(&mock, upstream, &["sk-up-1"], "*");
        // The client presents its key in the same header the provider's SDK uses.
        let cred = if header == "authorization" {
            format!("Bearer {key}")
        } else {
            key.clone()
        };
        let resp = request(
            gw.proxy_addr,
            "POST",
            path,
            &[(header, cred.as_str())],
            body.as_bytes(),
        )
        .await;
        assert_eq!(resp.status, 200, "{kind}: {}", resp.text());
        let seen = mock.requests();
        assert_eq!(seen.len(), 1, "{kind}");
        let r = &seen[0];
        assert_eq!(r.header_all(header), [upstream_value], "{kind}");
        assert!(
            !header_text(&r.headers).contains(&key),
            "{kind}: the upstream saw the gateway key"
        );
        assert!(!String::from_utf8_lossy(&r.body).contains(&key));
        assert!(
            !header_text(&resp.headers).contains("sk-up-1"),
            "{kind}: the client saw the provider key"
        );
        assert!(resp.header("x-tollgate-request-id").is_some());
    }
}

#[tokio::test]
async fn gemini_query_key_is_accepted_and_removed() {
    let mock = MockUpstream::start().await;
    let (gw, key) = one_upstream(&mock, Upstream::gemini, &["sk-g"], "gemini-*");
    let path = format!("/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse&key={key}");
    let resp = request(gw.proxy_addr, "POST", &path, &[], br#"{"contents":[]}"#).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        mock.requests()[0].path_and_query,
        "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    );
    assert!(!gw.logs().contains(&key), "the key reached a log line");
}

#[tokio::test]
async fn several_provider_keys_are_spread() {
    let mock = MockUpstream::start().await;
    let (gw, key) = one_upstream(&mock, Upstream::openai, &["k-a", "k-b", "k-c"], "gpt-*");
    for _ in 0..6 {
        assert_eq!(gw.chat(&key, CHAT).await.status, 200);
    }
    let mut used: Vec<String> = mock
        .requests()
        .iter()
        .flat_map(|r| {
            r.header_all("authorization")
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    used.sort();
    assert_eq!(
        used,
        [
            "Bearer k-a",
            "Bearer k-a",
            "Bearer k-b",
            "Bearer k-b",
            "Bearer k-c",
            "Bearer k-c"
        ]
    );
}

/// Asserts an OpenAI-shaped 401 for an invalid key; `what` names the case.
#[track_caller]
fn assert_invalid_key(r: &Response, what: &str) {
    assert_eq!(r.status, 401, "{what}");
    let v = r.json();
    assert_eq!(v["error"]["type"], "authentication_error", "{what}: {v}");
    assert_eq!(v["error"]["code"], "invalid_api_key", "{what}");
}

/// The message of a 401's error, which must be `Some` status 401; `None` for a 200; any
/// other status fails the test.
fn refusal(r: &Response) -> Option<String> {
    if r.status == 401 {
        return Some(r.json()["error"]["message"].as_str().unwrap().to_owned());
    }
    assert_eq!(r.status, 200, "{}", r.text());
    None
}

#[tokio::test]
async fn missing_invalid_revoked_and_expired_keys_get_401_in_dialect() {
    let mock = MockUpstream::start().await;
    let (gw, good) = one_upstream(&mock, Upstream::openai, &["sk"], "*");
    let revoked = gw.create_key("alice", &[]);
    let revoked_id = revoked.split('_').nth(1).unwrap().to_owned();
    let out = gw.cli(&["key", "revoke", &revoked_id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut forged = good.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'a' { 'b' } else { 'a' });

    let missing = request(
        gw.proxy_addr,
        "POST",
        "/v1/chat/completions",
        &[],
        CHAT.as_bytes(),
    )
    .await;
    assert_invalid_key(&missing, "missing");
    for (key, what) in [
        ("tg_nope_nope", "malformed"),
        (forged.as_str(), "forged"),
        (revoked.as_str(), "revoked"),
    ] {
        assert_invalid_key(&gw.chat(key, CHAT).await, what);
    }
    let basic = format!("Basic {good}");
    let h = [("authorization", basic.as_str())];
    let r = request(
        gw.proxy_addr,
        "POST",
        "/v1/chat/completions",
        &h,
        CHAT.as_bytes(),
    )
    .await;
    assert_invalid_key(&r, "wrong scheme");
    // Anthropic and Gemini shapes of the same refusal.
    let r = request(gw.proxy_addr, "POST", "/v1/messages", &[], b"{}").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["type"], "error");
    assert_eq!(r.json()["error"]["type"], "authentication_error");
    let gemini = "/v1beta/models/g:generateContent";
    let r = request(gw.proxy_addr, "POST", gemini, &[], b"{}").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["status"], "UNAUTHENTICATED");
    assert_eq!(r.json()["error"]["code"], 401);
    assert!(
        mock.requests().is_empty(),
        "a refused request reached the upstream"
    );

    // Revocation while running: refused from the next request on (the cache refreshes
    // within a second).
    assert_eq!(gw.chat(&good, CHAT).await.status, 200);
    let out = gw.cli(&["key", "revoke", good.split('_').nth(1).unwrap()]);
    assert!(out.status.success());
    let message = eventually(
        "the revocation to reach the proxy",
        Duration::from_secs(5),
        async || refusal(&gw.chat(&good, CHAT).await),
    )
    .await;
    assert!(message.contains("revoked"), "{message}");
}

#[tokio::test]
async fn expired_key_is_refused() {
    let mock = MockUpstream::start().await;
    let (gw, _) = one_upstream(&mock, Upstream::openai, &["sk"], "*");
    let key = gw.create_key("alice", &["--expires-in", "1s"]);
    // Before expiry the key works; then it is refused as expired.
    let message = eventually("the key to expire", Duration::from_secs(5), async || {
        refusal(&gw.chat(&key, CHAT).await)
    })
    .await;
    assert!(message.contains("expired"), "{message}");
}

#[tokio::test]
async fn model_scopes_are_enforced() {
    let mock = MockUpstream::start().await;
    let gw = GatewayBuilder::new()
        .upstream(Upstream::openai("main", &mock).keys(&["sk"]))
        .route(&["gpt-*"], &["main"])
        .alias("fast", "gpt-4o-mini")
        .start_with_user("alice");
    let key = gw.create_key("alice", &["--models", "gpt-4o-mini*"]);
    let send = |model: &str| format!(r#"{{"model":"{model}","messages":[]}}"#);
    let r = gw.chat(&key, send("gpt-4o")).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"]["type"], "permission_error");
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("gpt-4o"));
    for ok in ["gpt-4o-mini", "gpt-4o-mini-2024-07-18", "fast"] {
        assert_eq!(gw.chat(&key, send(ok)).await.status, 200, "{ok}");
    }
    let r = gw.get("/v1/models", &key).await;
    assert_eq!(r.status, 200);
    let ids: Vec<String> = r.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["fast"], "only models the key may use are listed");
}
