//! Authentication, key swap, scopes and revocation, through the real server.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use common::gateway::GatewayBuilder;
use common::http::request;
use common::mock_upstream::MockUpstream;

fn one_upstream(mock: &MockUpstream, kind: &str, keys: &str) -> String {
    format!(
        "  - name: main\n    kind: {kind}\n    base_url: \"{}\"\n    keys: [{keys}]\n",
        mock.base_url()
    )
}

const CHAT: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;

#[tokio::test]
async fn gateway_key_is_swapped_for_the_provider_key_in_every_dialect() {
    for (kind, path, client_header, upstream_header, upstream_value, body) in [
        (
            "openai",
            "/v1/chat/completions",
            "authorization",
            "authorization",
            "Bearer sk-up-1",
            CHAT,
        ),
        (
            "anthropic",
            "/v1/messages",
            "x-api-key",
            "x-api-key",
            "sk-up-1",
            r#"{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[]}"#,
        ),
        (
            "gemini",
            "/v1beta/models/gemini-2.0-flash:generateContent",
            "x-goog-api-key",
            "x-goog-api-key",
            "sk-up-1",
            r#"{"contents":[]}"#,
        ),
    ] {
        let mock = MockUpstream::start().await;
        let gw = GatewayBuilder::new()
            .upstreams_yaml(one_upstream(&mock, kind, "\"sk-up-1\""))
            .routes_yaml("  - models: [\"*\"]\n    upstreams: [main]\n".into())
            .start_with_user("alice");
        let key = gw.create_key("alice", &[]);
        let cred = if client_header == "authorization" {
            format!("Bearer {key}")
        } else {
            key.clone()
        };
        let resp = request(
            gw.proxy_addr,
            "POST",
            path,
            &[(client_header, cred.as_str())],
            body.as_bytes(),
        )
        .await;
        assert_eq!(
            resp.status,
            200,
            "{kind}: {}",
            String::from_utf8_lossy(&resp.body)
        );
        let seen = mock.requests();
        assert_eq!(seen.len(), 1, "{kind}");
        let r = &seen[0];
        let h = |n: &str| {
            r.headers
                .iter()
                .filter(|(k, _)| k == n)
                .map(|(_, v)| v.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            h(upstream_header),
            vec![upstream_value.to_owned()],
            "{kind}"
        );
        let all_headers: String = r
            .headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}\n"))
            .collect();
        assert!(
            !all_headers.contains(&key),
            "{kind}: the upstream saw the gateway key"
        );
        assert!(!String::from_utf8_lossy(&r.body).contains(&key));
        let client_saw: String = resp
            .headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}\n"))
            .collect();
        assert!(
            !client_saw.contains("sk-up-1"),
            "{kind}: the client saw the provider key"
        );
        assert!(resp.header("x-tollgate-request-id").is_some());
    }
}

#[tokio::test]
async fn gemini_query_key_is_accepted_and_removed() {
    let mock = MockUpstream::start().await;
    let gw = GatewayBuilder::new()
        .upstreams_yaml(one_upstream(&mock, "gemini", "\"sk-g\""))
        .routes_yaml("  - models: [\"gemini-*\"]\n    upstreams: [main]\n".into())
        .start_with_user("alice");
    let key = gw.create_key("alice", &[]);
    let path = format!("/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse&key={key}");
    let resp = request(gw.proxy_addr, "POST", &path, &[], br#"{"contents":[]}"#).await;
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    let seen = mock.requests();
    assert_eq!(
        seen[0].path_and_query,
        "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    );
    assert!(!gw.logs().contains(&key), "the key reached a log line");
}

#[tokio::test]
async fn several_provider_keys_are_spread() {
    let mock = MockUpstream::start().await;
    let gw = GatewayBuilder::new()
        .upstreams_yaml(one_upstream(&mock, "openai", "\"k-a\", \"k-b\", \"k-c\""))
        .routes_yaml("  - models: [\"gpt-*\"]\n    upstreams: [main]\n".into())
        .start_with_user("alice");
    let key = gw.create_key("alice", &[]);
    let auth = format!("Bearer {key}");
    for _ in 0..6 {
        let r = request(
            gw.proxy_addr,
            "POST",
            "/v1/chat/completions",
            &[("authorization", &auth)],
            CHAT.as_bytes(),
        )
        .await;
        assert_eq!(r.status, 200);
    }
    let mut used: Vec<String> = mock
        .requests()
        .iter()
        .flat_map(|r| {
            r.headers
                .iter()
                .filter(|(k, _)| k == "authorization")
                .map(|(_, v)| v.clone())
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

#[tokio::test]
async fn missing_invalid_revoked_and_expired_keys_get_401_in_dialect() {
    let mock = MockUpstream::start().await;
    let gw = GatewayBuilder::new()
        .upstreams_yaml(one_upstream(&mock, "openai", "\"sk\""))
        .routes_yaml("  - models: [\"*\"]\n    upstreams: [main]\n".into())
        .start_with_user("alice");
    let good = gw.create_key("alice", &[]);
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

    let openai = |k: &str| vec![("authorization".to_owned(), format!("Bearer {k}"))];
    let cases: Vec<(Vec<(String, String)>, &str)> = vec![
        (vec![], "missing"),
        (openai("tg_nope_nope"), "malformed"),
        (openai(&forged), "forged"),
        (openai(&revoked), "revoked"),
        (
            vec![("authorization".into(), format!("Basic {good}"))],
            "wrong scheme",
        ),
    ];
    for (headers, what) in cases {
        let h: Vec<(&str, &str)> = headers
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let r = request(
            gw.proxy_addr,
            "POST",
            "/v1/chat/completions",
            &h,
            CHAT.as_bytes(),
        )
        .await;
        assert_eq!(r.status, 401, "{what}");
        let v = r.json();
        assert_eq!(v["error"]["type"], "authentication_error", "{what}: {v}");
        assert_eq!(v["error"]["code"], "invalid_api_key", "{what}");
    }
    // Anthropic and Gemini shapes of the same refusal.
    let r = request(gw.proxy_addr, "POST", "/v1/messages", &[], b"{}").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["type"], "error");
    assert_eq!(r.json()["error"]["type"], "authentication_error");
    let r = request(
        gw.proxy_addr,
        "POST",
        "/v1beta/models/g:generateContent",
        &[],
        b"{}",
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["status"], "UNAUTHENTICATED");
    assert_eq!(r.json()["error"]["code"], 401);
    assert!(
        mock.requests().is_empty(),
        "a refused request reached the upstream"
    );

    // Revocation while running: refused from the next request on (the cache refreshes
    // within a second; poll with a deadline rather than sleep).
    let auth = format!("Bearer {good}");
    let r = request(
        gw.proxy_addr,
        "POST",
        "/v1/chat/completions",
        &[("authorization", &auth)],
        CHAT.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200);
    let out = gw.cli(&["key", "revoke", good.split('_').nth(1).unwrap()]);
    assert!(out.status.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let r = request(
            gw.proxy_addr,
            "POST",
            "/v1/chat/completions",
            &[("authorization", &auth)],
            CHAT.as_bytes(),
        )
        .await;
        if r.status == 401 {
            assert!(r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("revoked"));
            break;
        }
        assert_eq!(r.status, 200);
        assert!(
            std::time::Instant::now() < deadline,
            "revocation not seen within 5 s"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn expired_key_is_refused() {
    let mock = MockUpstream::start().await;
    let gw = GatewayBuilder::new()
        .upstreams_yaml(one_upstream(&mock, "openai", "\"sk\""))
        .routes_yaml("  - models: [\"*\"]\n    upstreams: [main]\n".into())
        .start_with_user("alice");
    let key = gw.create_key("alice", &["--expires-in", "1s"]);
    let auth = format!("Bearer {key}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let r = request(
            gw.proxy_addr,
            "POST",
            "/v1/chat/completions",
            &[("authorization", &auth)],
            CHAT.as_bytes(),
        )
        .await;
        if r.status == 401 {
            assert!(
                r.json()["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("expired"),
                "{}",
                r.json()
            );
            break;
        }
        assert_eq!(r.status, 200, "before expiry the key works");
        assert!(std::time::Instant::now() < deadline, "key never expired");
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn model_scopes_are_enforced() {
    let mock = MockUpstream::start().await;
    let gw = GatewayBuilder::new()
        .upstreams_yaml(one_upstream(&mock, "openai", "\"sk\""))
        .routes_yaml("  - models: [\"gpt-*\"]\n    upstreams: [main]\n".into())
        .aliases_yaml("  fast: gpt-4o-mini\n".into())
        .start_with_user("alice");
    let key = gw.create_key("alice", &["--models", "gpt-4o-mini*"]);
    let auth = format!("Bearer {key}");
    let send = |model: &str| format!(r#"{{"model":"{model}","messages":[]}}"#);
    let r = request(
        gw.proxy_addr,
        "POST",
        "/v1/chat/completions",
        &[("authorization", &auth)],
        send("gpt-4o").as_bytes(),
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"]["type"], "permission_error");
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("gpt-4o"));
    for ok in ["gpt-4o-mini", "gpt-4o-mini-2024-07-18", "fast"] {
        let r = request(
            gw.proxy_addr,
            "POST",
            "/v1/chat/completions",
            &[("authorization", &auth)],
            send(ok).as_bytes(),
        )
        .await;
        assert_eq!(r.status, 200, "{ok}");
    }
    let r = request(
        gw.proxy_addr,
        "GET",
        "/v1/models",
        &[("authorization", &auth)],
        b"",
    )
    .await;
    assert_eq!(r.status, 200);
    let ids: Vec<String> = r.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["fast"], "only models the key may use are listed");
}
