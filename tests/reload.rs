//! Reloading the config of a running gateway (SIGHUP, `tollgate reload`): new routes,
//! aliases and prices take effect without a restart or a dropped stream; a broken config
//! is refused and the one in force keeps serving.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::time::{Duration, Instant};

use common::gateway::GatewayBuilder;
use common::http::{request, request_streaming};
use common::mock_upstream::MockUpstream;

#[tokio::test]
async fn reload_applies_new_routes_and_refuses_a_broken_config() {
    let mock = MockUpstream::start().await;
    let ups = format!(
        "  - name: a\n    kind: anthropic\n    base_url: \"{}\"\n",
        mock.base_url()
    );
    let gw = GatewayBuilder::new()
        .upstreams_yaml(ups)
        .routes_yaml("  - models: [\"claude-*\"]\n    upstreams: [a]\n".into())
        .start_with_user("alice");
    let key = gw.create_key("alice", &[]);
    let h = [("x-api-key", key.as_str())];
    let ask = |model: &str| format!(r#"{{"model":"{model}","max_tokens":9,"messages":[]}}"#);
    assert_eq!(
        request(
            gw.proxy_addr,
            "POST",
            "/v1/messages",
            &h,
            ask("sonnet").as_bytes()
        )
        .await
        .status,
        404
    );

    // A stream in flight across the reload.
    let mut stream = request_streaming(
        gw.proxy_addr,
        "POST",
        "/v1/messages",
        &h,
        br#"{"model":"claude-slow-stream","stream":true,"max_tokens":9,"messages":[]}"#,
    )
    .await;
    assert_eq!(stream.status, 200);

    let config = std::fs::read_to_string(gw.config_path()).unwrap();
    std::fs::write(
        gw.config_path(),
        config.replace("aliases: {}", "aliases:\n  sonnet: claude-sonnet-4-5"),
    )
    .unwrap();
    let out = gw.cli(&["reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = request(
            gw.proxy_addr,
            "POST",
            "/v1/messages",
            &h,
            ask("sonnet").as_bytes(),
        )
        .await;
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 404);
        assert!(
            Instant::now() < deadline,
            "the reload never took effect:\n{}",
            gw.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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
    let good = std::fs::read_to_string(gw.config_path()).unwrap();
    std::fs::write(
        gw.config_path(),
        good.replace("kind: anthropic", "kind: llama"),
    )
    .unwrap();
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
    assert_eq!(
        request(
            gw.proxy_addr,
            "POST",
            "/v1/messages",
            &h,
            ask("sonnet").as_bytes()
        )
        .await
        .status,
        200
    );
}

/// A reload that adds an upstream reaches every reader of the config: the admin API
/// stores a provider key for it (it answered "unknown upstream" before, holding the list
/// it started with), and the proxy routes to it with that key.
#[tokio::test]
async fn an_upstream_added_by_reload_is_known_to_the_admin_api_and_the_proxy() {
    let mock = MockUpstream::start().await;
    let gw = GatewayBuilder::new()
        .upstreams_yaml(format!(
            "  - name: a\n    kind: anthropic\n    base_url: \"{}\"\n",
            mock.base_url()
        ))
        .routes_yaml("  - models: [\"claude-*\"]\n    upstreams: [a]\n".into())
        .user("root", "admin")
        .start_with_user("alice");
    let admin = format!("Bearer {}", gw.create_key("root", &[]));
    let alice = format!("Bearer {}", gw.create_key("alice", &[]));
    let put_key = || async {
        request(
            gw.admin_addr,
            "PUT",
            "/admin/provider-keys/b?user=alice",
            &[
                ("authorization", admin.as_str()),
                ("content-type", "application/json"),
            ],
            br#"{"key":"sk-alice-for-b"}"#,
        )
        .await
    };
    assert_eq!(put_key().await.status, 404, "b is not configured yet");

    let config = std::fs::read_to_string(gw.config_path()).unwrap();
    let added = format!(
        "  - name: b\n    kind: openai\n    base_url: \"{}\"\nroutes:\n  - models: [\"gpt-*\"]\n    upstreams: [b]\n",
        mock.base_url()
    );
    std::fs::write(gw.config_path(), config.replacen("routes:\n", &added, 1)).unwrap();
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
    let r = request(
        gw.proxy_addr,
        "POST",
        "/v1/chat/completions",
        &[("authorization", alice.as_str())],
        br#"{"model":"gpt-4o","messages":[]}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        mock.last_request().unwrap().header("authorization"),
        Some("Bearer sk-alice-for-b")
    );
}
