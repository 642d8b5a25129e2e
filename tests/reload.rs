//! Reloading the config of a running gateway (SIGHUP, `tollgate reload`): a new alias
//! takes effect without a restart or a dropped stream; an added upstream is known at once
//! to the admin API and the proxy; a broken config is refused by `reload` and by the
//! gateway, and the config in force keeps serving.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::http::request_streaming;
use common::{eventually, messages_body, GatewayBuilder, MockUpstream, Upstream};
use serde_json::json;

#[tokio::test]
async fn reload_applies_new_routes_and_refuses_a_broken_config() {
    let mock = MockUpstream::start().await;
    let (gw, key) = GatewayBuilder::new()
        .upstream(Upstream::anthropic("a", &mock))
        .route(&["claude-*"], &["a"])
        .start_with_key("alice");
    let sonnet = messages_body("sonnet");
    assert_eq!(gw.messages(&key, &sonnet).await.status, 404);

    // A stream in flight across the reload.
    let h = [("x-api-key", key.as_str())];
    let slow = br#"{"model":"claude-slow-stream","stream":true,"max_tokens":9,"messages":[]}"#;
    let mut stream = request_streaming(gw.proxy_addr, "POST", "/v1/messages", &h, slow).await;
    assert_eq!(stream.status, 200);

    gw.edit_config(|c| c.replace("aliases: {}", "aliases:\n  sonnet: claude-sonnet-4-5"));
    let out = gw.cli(&["reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually(
        "the reload to take effect",
        Duration::from_secs(10),
        async || {
            let status = gw.messages(&key, &sonnet).await.status;
            assert!(status == 200 || status == 404, "{status}");
            status == 200
        },
    )
    .await;
    assert_eq!(
        mock.last_request().unwrap().json()["model"],
        "claude-sonnet-4-5"
    );
    stream.read_to_end().await;
    assert!(
        stream.is_complete(),
        "the stream in flight was dropped by the reload"
    );

    // A broken config: `reload` reports it and sends nothing; a SIGHUP anyway is refused
    // by the gateway, which keeps the config in force.
    gw.edit_config(|c| c.replace("kind: anthropic", "kind: llama"));
    let out = gw.cli(&["reload"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("upstreams[0].kind"));
    let mut gw = gw;
    gw.signal("HUP");
    assert!(
        gw.wait_for_log_async("reload refused", Duration::from_secs(10))
            .await,
        "{}",
        gw.logs()
    );
    assert_eq!(gw.messages(&key, &sonnet).await.status, 200);
}

/// A reload that adds an upstream reaches every reader of the config: the admin API
/// stores a provider key for it (it answered "unknown upstream" before, holding the list
/// it started with), and the proxy routes to it with that key.
#[tokio::test]
async fn an_upstream_added_by_reload_is_known_to_the_admin_api_and_the_proxy() {
    let mock = MockUpstream::start().await;
    let (gw, alice) = GatewayBuilder::new()
        .upstream(Upstream::anthropic("a", &mock))
        .route(&["claude-*"], &["a"])
        .user("root", "admin")
        .start_with_key("alice");
    let admin_key = gw.create_key("root", &[]);
    let admin = gw.admin_as(&admin_key);
    let put_key = async || {
        let key = json!({"key": "sk-alice-for-b"});
        admin.put("/admin/provider-keys/b?user=alice", key).await
    };
    assert_eq!(put_key().await.status, 404, "b is not configured yet");

    let added = format!(
        "  - name: b\n    kind: openai\n    base_url: \"{}\"\nroutes:\n  - models: [\"gpt-*\"]\n    upstreams: [b]\n",
        mock.base_url()
    );
    gw.edit_config(|c| c.replacen("routes:\n", &added, 1));
    let out = gw.cli(&["reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        gw.wait_for_log_async("in force: 2 upstreams", Duration::from_secs(10))
            .await,
        "the reload never took effect:\n{}",
        gw.logs()
    );

    let r = put_key().await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["upstream"], "b");
    let r = gw.chat(&alice, r#"{"model":"gpt-4o","messages":[]}"#).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        mock.last_request().unwrap().header("authorization"),
        Some("Bearer sk-alice-for-b")
    );
}
