//! Routing, aliases, request bodies on both sides of Pingora's 64 KiB replay limit, and
//! every error the gateway answers itself, in each dialect.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use common::gateway::{Gateway, GatewayBuilder};
use common::http::request;
use common::mock_upstream::{strip_usage_chunk, MockUpstream};

struct Setup {
    gw: Gateway,
    auth: String,
    key: String,
}

fn upstream(name: &str, kind: &str, url: &str, extra: &str) -> String {
    format!("  - name: {name}\n    kind: {kind}\n    base_url: \"{url}\"\n    keys: [\"sk-{name}\"]\n{extra}")
}

async fn setup(upstreams: String, routes: &str, aliases: &str, server_extra: &str) -> Setup {
    let gw = GatewayBuilder::new()
        .upstreams_yaml(upstreams)
        .routes_yaml(routes.into())
        .aliases_yaml(aliases.into())
        .server_extra(server_extra.into())
        .start_with_user("alice");
    let key = gw.create_key("alice", &[]);
    Setup {
        gw,
        auth: format!("Bearer {key}"),
        key,
    }
}

fn chat(model: &str, stream: bool, filler: usize) -> Vec<u8> {
    format!(
        r#"{{"messages":[{{"role":"user","content":"{}"}}],"stream":{stream},"model":"{model}"}}"#,
        "a".repeat(filler)
    )
    .into_bytes()
}

#[tokio::test]
async fn routes_match_exact_prefix_and_glob_first_match_wins() {
    let a = MockUpstream::start().await;
    let b = MockUpstream::start().await;
    let c = MockUpstream::start().await;
    let ups = upstream("a", "openai", &a.base_url(), "")
        + &upstream("b", "openai", &b.base_url(), "")
        + &upstream("c", "openai", &c.base_url(), "");
    let routes = "  - models: [\"gpt-4o\"]\n    upstreams: [a]\n  - models: [\"gpt-*\"]\n    upstreams: [b]\n  - models: [\"*-coder-?b\"]\n    upstreams: [c]\n";
    let s = setup(ups, routes, "", "").await;
    let h = [("authorization", s.auth.as_str())];
    for (model, want_a, want_b, want_c) in [
        ("gpt-4o", 1, 0, 0),
        ("gpt-4o-mini", 1, 1, 0),
        ("qwen-coder-7b", 1, 1, 1),
    ] {
        let r = request(
            s.gw.proxy_addr,
            "POST",
            "/v1/chat/completions",
            &h,
            &chat(model, false, 1),
        )
        .await;
        assert_eq!(r.status, 200, "{model}");
        assert_eq!(
            (a.requests().len(), b.requests().len(), c.requests().len()),
            (want_a, want_b, want_c),
            "{model}"
        );
    }
    for (path, dialect) in [
        ("/v1/chat/completions", "openai"),
        ("/v1/messages", "anthropic"),
    ] {
        let r = request(
            s.gw.proxy_addr,
            "POST",
            path,
            &h,
            &chat("llama-3", false, 1),
        )
        .await;
        assert_eq!(r.status, 404, "{dialect}");
        let v = r.json();
        assert!(
            v["error"]["message"].as_str().unwrap().contains("llama-3"),
            "{v}"
        );
        if dialect == "openai" {
            assert_eq!(v["error"]["code"], "model_not_found");
        } else {
            assert_eq!(v["type"], "error");
            assert_eq!(v["error"]["type"], "not_found_error");
        }
    }
    let r = request(
        s.gw.proxy_addr,
        "POST",
        "/v1beta/models/llama-3:generateContent",
        &h,
        b"{}",
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["status"], "NOT_FOUND");
}

#[tokio::test]
async fn aliases_rewrite_body_model_and_gemini_path() {
    let o = MockUpstream::start().await;
    let g = MockUpstream::start().await;
    let ups =
        upstream("o", "openai", &o.base_url(), "") + &upstream("g", "gemini", &g.base_url(), "");
    let routes = "  - models: [\"gpt-*\"]\n    upstreams: [o]\n  - models: [\"gemini-*\"]\n    upstreams: [g]\n";
    let s = setup(
        ups,
        routes,
        "  fast: gpt-4o-mini\n  gem: gemini-2.0-flash\n",
        "",
    )
    .await;
    let h = [("authorization", s.auth.as_str())];
    // Small (replayed by Pingora) and large (forwarded by Tollgate) bodies both rewritten.
    for filler in [10, 100_000] {
        let r = request(
            s.gw.proxy_addr,
            "POST",
            "/v1/chat/completions",
            &h,
            &chat("fast", false, filler),
        )
        .await;
        assert_eq!(r.status, 200);
        let seen = o.requests().pop().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&seen.body).unwrap();
        assert_eq!(v["model"], "gpt-4o-mini", "filler {filler}");
        assert_eq!(v["messages"][0]["content"].as_str().unwrap().len(), filler);
        assert_eq!(
            seen.header("content-length").unwrap(),
            seen.body.len().to_string()
        );
    }
    let r = request(
        s.gw.proxy_addr,
        "POST",
        "/v1beta/models/gem:generateContent",
        &h,
        br#"{"contents":[]}"#,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        g.requests()[0].path_and_query,
        "/v1beta/models/gemini-2.0-flash:generateContent"
    );
    assert_eq!(
        g.requests()[0].body,
        br#"{"contents":[]}"#,
        "the Gemini body is untouched"
    );

    let r = request(s.gw.proxy_addr, "GET", "/v1/models", &h, b"").await;
    let listed = r.json();
    let ids: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["fast", "gem"]);
    assert!(!s.key.is_empty());
}

#[tokio::test]
async fn bodies_on_both_sides_of_64_kib_arrive_intact_streamed_and_not() {
    let o = MockUpstream::start().await;
    let a = MockUpstream::start().await;
    let ups =
        upstream("o", "openai", &o.base_url(), "") + &upstream("a", "anthropic", &a.base_url(), "");
    let routes =
        "  - models: [\"claude-*\"]\n    upstreams: [a]\n  - models: [\"*\"]\n    upstreams: [o]\n";
    let s = setup(ups, routes, "", "").await;
    let h = [("authorization", s.auth.as_str())];
    for size in [1024, 63 * 1024, 65 * 1024, 5 * 1024 * 1024] {
        for stream in [false, true] {
            for (mock, path, model) in [
                (&a, "/v1/messages", "claude-sonnet-4-5"),
                (&o, "/v1/chat/completions", "gpt-4o-mini"),
            ] {
                let what = format!("{path} size {size} stream {stream}");
                let body = chat(model, stream, size);
                let r = request(s.gw.proxy_addr, "POST", path, &h, &body).await;
                assert_eq!(r.status, 200, "{what}");
                let seen = mock.requests().pop().unwrap();
                if path == "/v1/chat/completions" && stream {
                    // Tollgate asked for the stream's usage on the client's behalf: the
                    // body differs by exactly that option.
                    let mut sent: serde_json::Value = serde_json::from_slice(&seen.body).unwrap();
                    assert_eq!(sent["stream_options"]["include_usage"], true, "{what}");
                    sent.as_object_mut().unwrap().remove("stream_options");
                    assert!(
                        sent == serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
                        "{what}"
                    );
                } else {
                    assert!(
                        seen.body == body,
                        "{what}: upstream got {} bytes of {}",
                        seen.body.len(),
                        body.len()
                    );
                }
                assert_eq!(
                    seen.header("content-length").unwrap(),
                    seen.body.len().to_string(),
                    "{what}"
                );
                assert_eq!(
                    r.header("x-mock-received-bytes").unwrap(),
                    seen.body.len().to_string(),
                    "{what}"
                );
                assert!(
                    r.body == strip_usage_chunk(&seen.response_body),
                    "{what}: response not byte-exact\n{}\n---\n{}",
                    String::from_utf8_lossy(&r.body),
                    String::from_utf8_lossy(&seen.response_body)
                );
                assert!(r.body.len() > 50, "{what}");
            }
        }
    }
}

#[tokio::test]
async fn request_errors_in_each_dialect() {
    let mock = MockUpstream::start().await;
    let s = setup(
        upstream("o", "openai", &mock.base_url(), ""),
        "  - models: [\"*\"]\n    upstreams: [o]\n",
        "",
        "  max_body_bytes: 100000\n",
    )
    .await;
    let h = [("authorization", s.auth.as_str())];
    let cases: &[(&str, &str, &[u8], u16, &str)] = &[
        (
            "POST",
            "/v1/chat/completions",
            b"{not json",
            400,
            "bad json",
        ),
        (
            "POST",
            "/v1/chat/completions",
            b"[1,2]",
            400,
            "not an object",
        ),
        (
            "POST",
            "/v1/chat/completions",
            br#"{"messages":[]}"#,
            400,
            "missing model",
        ),
        (
            "POST",
            "/v1/messages",
            br#"{"model":5}"#,
            400,
            "model not a string",
        ),
        ("POST", "/v1/../admin/users", b"{}", 400, "dot segments"),
        (
            "POST",
            "/v1/%2e%2e/v1/chat/completions",
            b"{}",
            400,
            "encoded dot segments",
        ),
        (
            "POST",
            "/v1beta/models/..%2f..%2fx:generateContent",
            b"{}",
            400,
            "gemini traversal",
        ),
        ("POST", "/v2/whatever", b"{}", 404, "unknown path"),
        ("GET", "/v1/chat/completions", b"", 405, "wrong method"),
    ];
    for (method, path, body, status, what) in cases {
        let r = request(s.gw.proxy_addr, method, path, &h, body).await;
        assert_eq!(
            r.status,
            *status,
            "{what}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let v = r.json();
        let shape_ok = if path.starts_with("/v1/messages") {
            v["type"] == "error" && v["error"]["type"].is_string()
        } else if path.starts_with("/v1beta") {
            v["error"]["code"] == *status && v["error"]["status"].is_string()
        } else {
            v["error"]["type"].is_string() && v["error"]["message"].is_string()
        };
        assert!(shape_ok, "{what}: {v}");
    }
    let big = vec![b' '; 100_001];
    for path in [
        "/v1/chat/completions",
        "/v1/messages",
        "/v1beta/models/g:generateContent",
    ] {
        let r = request(s.gw.proxy_addr, "POST", path, &h, &big).await;
        assert_eq!(r.status, 413, "{path}");
    }
    assert!(
        mock.requests().is_empty(),
        "no refused request reached the upstream"
    );
    let r = request(s.gw.proxy_addr, "GET", "/healthz", &[], b"").await;
    assert_eq!((r.status, r.json()["status"].as_str()), (200, Some("ok")));
}

#[tokio::test]
async fn upstream_unreachable_timeout_and_errors() {
    let mock = MockUpstream::start().await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let ups = upstream(
        "up",
        "openai",
        &mock.base_url(),
        "    read_timeout_ms: 400\n",
    ) + &upstream("dead", "anthropic", &format!("http://{closed}"), "")
        + &upstream("nxdomain", "gemini", "https://no-such-host.invalid", "");
    let routes = "  - models: [\"claude-*\"]\n    upstreams: [dead]\n  - models: [\"gemini-*\"]\n    upstreams: [nxdomain]\n  - models: [\"*\"]\n    upstreams: [up]\n";
    let s = setup(ups, routes, "", "").await;
    let h = [("authorization", s.auth.as_str())];

    let r = request(
        s.gw.proxy_addr,
        "POST",
        "/v1/messages",
        &h,
        br#"{"model":"claude-x"}"#,
    )
    .await;
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["error"]["type"], "api_error");
    let r = request(
        s.gw.proxy_addr,
        "POST",
        "/v1beta/models/gemini-x:generateContent",
        &h,
        b"{}",
    )
    .await;
    assert_eq!(r.status, 502, "a bad host name is a 502, not a crash");
    assert_eq!(r.json()["error"]["status"], "UNAVAILABLE");
    let r = request(
        s.gw.proxy_addr,
        "POST",
        "/v1/chat/completions",
        &h,
        &chat("hang", false, 1),
    )
    .await;
    assert_eq!(r.status, 504);
    assert_eq!(r.json()["error"]["code"], "upstream_timeout");
    // Large bodies take the other transport: same answers.
    let r = request(
        s.gw.proxy_addr,
        "POST",
        "/v1/chat/completions",
        &h,
        &chat("hang", false, 70_000),
    )
    .await;
    assert_eq!(r.status, 504);
    let r = request(
        s.gw.proxy_addr,
        "POST",
        "/v1/messages",
        &h,
        &chat("claude-x", false, 70_000),
    )
    .await;
    assert_eq!(r.status, 502);

    for (model, status) in [("error-400", 400), ("error-429", 429), ("error-500", 500)] {
        for filler in [1, 70_000] {
            let r = request(
                s.gw.proxy_addr,
                "POST",
                "/v1/chat/completions",
                &h,
                &chat(model, false, filler),
            )
            .await;
            assert_eq!(r.status, status, "{model}");
            let seen = mock.requests().pop().unwrap();
            assert!(
                r.body == seen.response_body,
                "{model}: upstream error body passes unchanged"
            );
            if status == 429 {
                assert_eq!(r.header("retry-after"), Some("1"));
            }
        }
    }
    // The gateway survived all of it.
    let r = request(s.gw.proxy_addr, "GET", "/healthz", &[], b"").await;
    assert_eq!(r.status, 200);
}
