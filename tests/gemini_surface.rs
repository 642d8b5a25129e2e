//! The Gemini API as current clients call it: google-genai defaults to API version `v1`,
//! so every method is served under `/v1/` as under `/v1beta/` (and goes upstream under
//! the version the client chose); `:countTokens` is forwarded like the others and
//! recorded as a count (no tokens billed); `GET /v1beta/models[/{model}]` (and under
//! `/v1/` for clients that send Gemini's credential) list the routable models in Gemini's
//! shape; every error Tollgate answers on a Gemini-shaped path is in Gemini's envelope.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use common::http::{request, Response};
use common::mock::fixture;
use common::Scenario;
use serde_json::Value;

const BODY: &str = r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#;

async fn gemini(s: &Scenario, method: &str, path: &str, key: &str) -> Response {
    let headers = [
        ("x-goog-api-key", key),
        ("content-type", "application/json"),
    ];
    let body = if method == "POST" { BODY } else { "" };
    request(s.gw.proxy_addr, method, path, &headers, body.as_bytes()).await
}

/// The three-dialect scenario with an admin and an alias.
async fn scenario() -> Scenario {
    Scenario::start_with(|c| c.alias("flash", "gemini-2.0-flash")).await
}

fn assert_gemini_error(r: &Response, status: u16, rpc: &str, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.text());
    let e = r.json();
    assert_eq!(e["error"]["code"], status, "{what}: {e}");
    assert_eq!(e["error"]["status"], rpc, "{what}: {e}");
    assert!(e["error"]["message"].is_string(), "{what}: {e}");
}

#[tokio::test]
async fn every_gemini_method_is_served_under_v1_and_v1beta_and_keeps_its_version() {
    let s = scenario().await;
    let key = s.key.as_str();
    for v in ["v1beta", "v1"] {
        let r = gemini(
            &s,
            "POST",
            &format!("/{v}/models/gemini-2.0-flash:generateContent"),
            key,
        )
        .await;
        assert_eq!(r.status, 200, "{v}: {}", r.text());
        assert_eq!(r.body, fixture("gemini/generate.json"));
        let up = s.gemini.last_request().unwrap();
        assert_eq!(
            up.path_and_query,
            format!("/{v}/models/gemini-2.0-flash:generateContent")
        );
        assert_eq!(up.header("x-goog-api-key"), Some("sk-g"));

        let path = format!("/{v}/models/flash:streamGenerateContent?alt=sse&key={key}");
        let r = gemini(&s, "POST", &path, key).await;
        assert_eq!(r.status, 200, "{v}: {}", r.text());
        assert_eq!(r.body, fixture("gemini/stream.sse"));
        let up = s.gemini.last_request().unwrap();
        assert_eq!(
            up.path_and_query,
            format!("/{v}/models/gemini-2.0-flash:streamGenerateContent?alt=sse"),
            "the alias is served, the key stays here"
        );

        let r = gemini(
            &s,
            "POST",
            &format!("/{v}/models/gemini-1.5-pro:countTokens"),
            key,
        )
        .await;
        assert_eq!(r.status, 200, "{v}: {}", r.text());
        assert_eq!(r.json()["totalTokens"], 31);
        let up = s.gemini.last_request().unwrap();
        assert_eq!(
            up.path_and_query,
            format!("/{v}/models/gemini-1.5-pro:countTokens")
        );
        assert_eq!(up.body, BODY.as_bytes(), "the body goes up untouched");
        assert_eq!(up.header("x-goog-api-key"), Some("sk-g"));
    }

    // A count is recorded as a count: no tokens, nothing estimated, nothing billed.
    let events = s.gw.usage_events_after(6).await;
    assert_eq!(events.len(), 6, "{events:?}");
    let counts: Vec<&Value> = events
        .iter()
        .filter(|e| e["model_requested"] == "gemini-1.5-pro")
        .collect();
    assert_eq!(counts.len(), 2, "{events:?}");
    for e in counts {
        assert_eq!(e["endpoint"], "count_tokens", "{e}");
        assert_eq!(e["dialect"], "gemini", "{e}");
        assert_eq!(e["status"], 200, "{e}");
        for col in [
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "estimated",
            "cost_nanos",
        ] {
            assert_eq!(e[col], 0, "{col}: {e}");
        }
    }
    let generated: Vec<&Value> = events
        .iter()
        .filter(|e| e["model_served"] == "gemini-2.0-flash")
        .collect();
    assert_eq!(generated.len(), 4);
    assert!(generated
        .iter()
        .all(|e| e["estimated"] == 0 && e["output_tokens"] != 0));
}

#[tokio::test]
async fn errors_on_gemini_shaped_paths_are_in_geminis_envelope() {
    let s = scenario().await;
    let key = s.key.as_str();
    for v in ["v1beta", "v1"] {
        let generate = format!("/{v}/models/gemini-2.0-flash:generateContent");
        let r = request(s.gw.proxy_addr, "POST", &generate, &[], BODY.as_bytes()).await;
        assert_gemini_error(&r, 401, "UNAUTHENTICATED", &format!("{v}: no key"));
        let r = gemini(&s, "POST", &generate, "tg_nope_nope").await;
        assert_gemini_error(&r, 401, "UNAUTHENTICATED", &format!("{v}: a wrong key"));
        let path = format!("/{v}/models/llama-3:generateContent");
        let r = gemini(&s, "POST", &path, key).await;
        assert_gemini_error(&r, 404, "NOT_FOUND", &format!("{v}: an unrouted model"));
        assert!(r.text().contains("llama-3"));
        let path = format!("/{v}/models/gemini%20x:countTokens");
        let r = gemini(&s, "POST", &path, key).await;
        assert_gemini_error(&r, 400, "INVALID_ARGUMENT", &format!("{v}: a bad model"));
        let path = format!("/{v}/models/gemini-2.0-flash:countTokens");
        let r = gemini(&s, "GET", &path, key).await;
        assert_gemini_error(&r, 405, "NOT_FOUND", &format!("{v}: GET of a method"));
        let r = request(
            s.gw.proxy_addr,
            "POST",
            &path,
            &[("x-goog-api-key", key)],
            b"{",
        )
        .await;
        assert_gemini_error(
            &r,
            400,
            "INVALID_ARGUMENT",
            &format!("{v}: a body not JSON"),
        );
    }
    let r = gemini(
        &s,
        "POST",
        "/v1beta/models/gemini-2.0-flash:embedContent",
        key,
    )
    .await;
    assert_gemini_error(&r, 404, "NOT_FOUND", "an unknown method");
    let r = gemini(&s, "GET", "/v1beta/tunedModels", key).await;
    assert_gemini_error(&r, 404, "NOT_FOUND", "an unknown path");
    let scoped = s.gw.create_key("alice", &["--models", "gemini-2.5-*"]);
    let r = gemini(
        &s,
        "POST",
        "/v1/models/gemini-2.0-flash:countTokens",
        &scoped,
    )
    .await;
    assert_gemini_error(
        &r,
        403,
        "PERMISSION_DENIED",
        "a model outside the key's scope",
    );
}

fn names(listing: &Value) -> Vec<String> {
    listing["models"]
        .as_array()
        .unwrap_or_else(|| panic!("no models in {listing}"))
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn gemini_clients_list_and_get_the_routable_models_in_geminis_shape() {
    let s = Scenario::start_with(|c| {
        c.alias("flash", "gemini-2.0-flash")
            .route(&["gemini-2.5-pro", "claude-haiku-4-5"], &["g"])
    })
    .await;
    let key = s.key.as_str();
    let all = [
        "models/claude-haiku-4-5",
        "models/flash",
        "models/gemini-2.5-pro",
    ];
    // Gemini's own path, and /v1/ for a client that sends Gemini's credential (header or
    // query); without one, /v1/models is OpenAI's.
    let by_header = gemini(&s, "GET", "/v1beta/models", key).await;
    let v1_header = gemini(&s, "GET", "/v1/models", key).await;
    let v1_query = request(
        s.gw.proxy_addr,
        "GET",
        &format!("/v1/models?key={key}"),
        &[],
        b"",
    )
    .await;
    for r in [&by_header, &v1_header, &v1_query] {
        assert_eq!(r.status, 200, "{}", r.text());
        let l = r.json();
        assert_eq!(names(&l), all, "{l}");
        let m = &l["models"][1];
        assert_eq!(m["displayName"], "flash");
        assert_eq!(
            m["supportedGenerationMethods"],
            serde_json::json!(["generateContent", "streamGenerateContent", "countTokens"])
        );
        assert!(l.get("nextPageToken").is_none(), "{l}");
    }
    assert!(s.gw.get("/v1/models", key).await.json()["data"].is_array());

    // Pages of pageSize, chained by nextPageToken.
    let r = gemini(&s, "GET", "/v1beta/models?pageSize=2", key).await;
    let first = r.json();
    assert_eq!(names(&first), all[..2]);
    let token = first["nextPageToken"].as_str().unwrap().to_owned();
    let r = gemini(
        &s,
        "GET",
        &format!("/v1/models?pageSize=2&pageToken={token}"),
        key,
    )
    .await;
    let second = r.json();
    assert_eq!(names(&second), all[2..]);
    assert!(second.get("nextPageToken").is_none(), "{second}");

    // One model: 200 for whatever a route would take (alias, exact name, pattern).
    for (path, want) in [
        ("/v1beta/models/flash", "models/flash"),
        (
            "/v1beta/models/gemini-2.0-flash-001",
            "models/gemini-2.0-flash-001",
        ),
        ("/v1/models/claude-haiku-4-5", "models/claude-haiku-4-5"),
        ("/v1/models/claude-sonnet-4-5", "models/claude-sonnet-4-5"),
    ] {
        let r = gemini(&s, "GET", path, key).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.json()["name"], want, "{path}");
    }
    let r = gemini(&s, "GET", "/v1beta/models/llama-3", key).await;
    assert_gemini_error(&r, 404, "NOT_FOUND", "an unrouted model");
    let r = gemini(&s, "GET", "/v1/models/llama%0d", key).await;
    assert_gemini_error(&r, 400, "INVALID_ARGUMENT", "a bad model name");
    let r = request(s.gw.proxy_addr, "GET", "/v1beta/models", &[], b"").await;
    assert_gemini_error(&r, 401, "UNAUTHENTICATED", "no key");

    // The key's scopes filter the list, and hide what they exclude.
    let scoped = s.gw.create_key("alice", &["--models", "gemini-*"]);
    let r = gemini(&s, "GET", "/v1beta/models", &scoped).await;
    assert_eq!(names(&r.json()), ["models/flash", "models/gemini-2.5-pro"]);
    let r = gemini(&s, "GET", "/v1beta/models/claude-haiku-4-5", &scoped).await;
    assert_gemini_error(&r, 404, "NOT_FOUND", "a model outside the scope");
    assert_eq!(s.gemini.request_count(), 0, "listing is the gateway's own");
}
