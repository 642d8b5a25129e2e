//! Routing and the answers the gateway gives itself: model patterns match exactly, by
//! prefix and by glob, first match winning; aliases rewrite the body's model and the
//! Gemini path; request bodies on both sides of Pingora's 64 KiB replay limit arrive
//! intact, streamed and not; malformed, oversized and unroutable requests, unreachable
//! and silent upstreams each get the right status in the client's dialect, and
//! upstream errors pass through unchanged.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use common::http::request;
use common::mock::strip_usage_chunk;
use common::{Gateway, GatewayBuilder, MockUpstream, Upstream};

/// `upstream` with its own provider key, `sk-<name>`.
fn keyed(upstream: Upstream) -> Upstream {
    let key = format!("sk-{}", upstream.name());
    upstream.keys(&[&key])
}

/// Starts `config` with user alice; the gateway and her key.
fn start(config: GatewayBuilder) -> (Gateway, String) {
    config.start_with_key("alice")
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
    let (gw, key) = start(
        GatewayBuilder::new()
            .upstream(keyed(Upstream::openai("a", &a)))
            .upstream(keyed(Upstream::openai("b", &b)))
            .upstream(keyed(Upstream::openai("c", &c)))
            .route(&["gpt-4o"], &["a"])
            .route(&["gpt-*"], &["b"])
            .route(&["*-coder-?b"], &["c"]),
    );
    for (model, want_a, want_b, want_c) in [
        ("gpt-4o", 1, 0, 0),
        ("gpt-4o-mini", 1, 1, 0),
        ("qwen-coder-7b", 1, 1, 1),
    ] {
        let r = gw.chat(&key, chat(model, false, 1)).await;
        assert_eq!(r.status, 200, "{model}");
        assert_eq!(
            (a.request_count(), b.request_count(), c.request_count()),
            (want_a, want_b, want_c),
            "{model}"
        );
    }
    for (path, dialect) in [
        ("/v1/chat/completions", "openai"),
        ("/v1/messages", "anthropic"),
    ] {
        let r = gw.post(path, &key, chat("llama-3", false, 1)).await;
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
    let r = gw
        .post("/v1beta/models/llama-3:generateContent", &key, "{}")
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["status"], "NOT_FOUND");
}

#[tokio::test]
async fn aliases_rewrite_body_model_and_gemini_path() {
    let o = MockUpstream::start().await;
    let g = MockUpstream::start().await;
    let (gw, key) = start(
        GatewayBuilder::new()
            .upstream(keyed(Upstream::openai("o", &o)))
            .upstream(keyed(Upstream::gemini("g", &g)))
            .route(&["gpt-*"], &["o"])
            .route(&["gemini-*"], &["g"])
            .alias("fast", "gpt-4o-mini")
            .alias("gem", "gemini-2.0-flash"),
    );
    // Small (replayed by Pingora) and large (forwarded by Tollgate) bodies both rewritten.
    for filler in [10, 100_000] {
        let r = gw.chat(&key, chat("fast", false, filler)).await;
        assert_eq!(r.status, 200);
        let seen = o.last_request().unwrap();
        let v = seen.json();
        assert_eq!(v["model"], "gpt-4o-mini", "filler {filler}");
        assert_eq!(v["messages"][0]["content"].as_str().unwrap().len(), filler);
        assert_eq!(
            seen.header("content-length").unwrap(),
            seen.body.len().to_string()
        );
    }
    let r = gw
        .post(
            "/v1beta/models/gem:generateContent",
            &key,
            r#"{"contents":[]}"#,
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

    let r = gw.get("/v1/models", &key).await;
    let listed = r.json();
    let ids: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["fast", "gem"]);
}

#[tokio::test]
async fn bodies_on_both_sides_of_64_kib_arrive_intact_streamed_and_not() {
    let o = MockUpstream::start().await;
    let a = MockUpstream::start().await;
    let (gw, key) = start(
        GatewayBuilder::new()
            .upstream(keyed(Upstream::openai("o", &o)))
            .upstream(keyed(Upstream::anthropic("a", &a)))
            .route(&["claude-*"], &["a"])
            .route(&["*"], &["o"]),
    );
    for size in [1024, 63 * 1024, 65 * 1024, 5 * 1024 * 1024] {
        for stream in [false, true] {
            for (mock, path, model) in [
                (&a, "/v1/messages", "claude-sonnet-4-5"),
                (&o, "/v1/chat/completions", "gpt-4o-mini"),
            ] {
                let what = format!("{path} size {size} stream {stream}");
                let body = chat(model, stream, size);
                let r = gw.post(path, &key, &body).await;
                assert_eq!(r.status, 200, "{what}");
                let seen = mock.last_request().unwrap();
                if path == "/v1/chat/completions" && stream {
                    // Tollgate asked for the stream's usage on the client's behalf: the
                    // body differs by exactly that option.
                    let mut sent = seen.json();
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
                let received = seen.body.len().to_string();
                assert_eq!(seen.header("content-length").unwrap(), received, "{what}");
                assert_eq!(
                    r.header("x-mock-received-bytes").unwrap(),
                    received,
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
    let (gw, key) = start(
        GatewayBuilder::new()
            .only_upstream(keyed(Upstream::openai("o", &mock)))
            .server("max_body_bytes", 100000),
    );
    let auth = format!("Bearer {key}");
    let h = [("authorization", auth.as_str())];
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
        let r = request(gw.proxy_addr, method, path, &h, body).await;
        assert_eq!(r.status, *status, "{what}: {}", r.text());
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
        assert_eq!(gw.post(path, &key, &big).await.status, 413, "{path}");
    }
    assert!(
        mock.requests().is_empty(),
        "no refused request reached the upstream"
    );
    let r = request(gw.proxy_addr, "GET", "/healthz", &[], b"").await;
    assert_eq!((r.status, r.json()["status"].as_str()), (200, Some("ok")));
}

#[tokio::test]
async fn upstream_unreachable_timeout_and_errors() {
    let mock = MockUpstream::start().await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let (gw, key) = start(
        GatewayBuilder::new()
            .upstream(keyed(Upstream::openai("up", &mock)).set("read_timeout_ms", 400))
            .upstream(keyed(Upstream::anthropic("dead", &closed)))
            .upstream(keyed(Upstream::gemini(
                "nxdomain",
                "https://no-such-host.invalid",
            )))
            .route(&["claude-*"], &["dead"])
            .route(&["gemini-*"], &["nxdomain"])
            .route(&["*"], &["up"]),
    );

    let r = gw
        .post("/v1/messages", &key, r#"{"model":"claude-x"}"#)
        .await;
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["error"]["type"], "api_error");
    let r = gw
        .post("/v1beta/models/gemini-x:generateContent", &key, "{}")
        .await;
    assert_eq!(r.status, 502, "a bad host name is a 502, not a crash");
    assert_eq!(r.json()["error"]["status"], "UNAVAILABLE");
    let r = gw.chat(&key, chat("hang", false, 1)).await;
    assert_eq!(r.status, 504);
    assert_eq!(r.json()["error"]["code"], "upstream_timeout");
    // Large bodies take the other transport: same answers.
    assert_eq!(gw.chat(&key, chat("hang", false, 70_000)).await.status, 504);
    let large = chat("claude-x", false, 70_000);
    assert_eq!(gw.post("/v1/messages", &key, large).await.status, 502);

    for (model, status) in [("error-400", 400), ("error-429", 429), ("error-500", 500)] {
        for filler in [1, 70_000] {
            let r = gw.chat(&key, chat(model, false, filler)).await;
            assert_eq!(r.status, status, "{model}");
            let seen = mock.last_request().unwrap();
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
    let r = request(gw.proxy_addr, "GET", "/healthz", &[], b"").await;
    assert_eq!(r.status, 200);
}
