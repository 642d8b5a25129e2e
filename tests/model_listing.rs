//! The model listing per dialect: `GET /v1/models` answers OpenAI clients in OpenAI's list
//! shape and Anthropic clients (those sending `anthropic-version` or `x-api-key`) in
//! Anthropic's, paged by `limit`, `after_id` and `before_id`; `GET /v1/models/{id}` answers
//! 200 in the client's shape for any model a route would take and the key may use, and
//! 404 in its envelope otherwise; Claude Code's `HEAD /` probe gets 200.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use common::http::{request, Response};
use common::Scenario;
use serde_json::{json, Value};

/// The scenario with two aliases and exact route names next to its patterns.
async fn scenario() -> Scenario {
    Scenario::start_with(|c| {
        c.alias("fast", "gpt-4o-mini")
            .alias("smart", "claude-sonnet-4-5")
            .route(&["claude-haiku-4-5", "meta-llama/*", "ft:*"], &["o"])
    })
    .await
}

/// Every listed model, in order: the aliases and the exact route names.
const ALL: [&str; 3] = ["claude-haiku-4-5", "fast", "smart"];

/// `GET <path>` as the Anthropic SDK sends it (`x-api-key`, `anthropic-version`).
async fn anthropic_get(s: &Scenario, path: &str, key: &str) -> Response {
    let headers = [("x-api-key", key), ("anthropic-version", "2023-06-01")];
    request(s.gw.proxy_addr, "GET", path, &headers, b"").await
}

fn ids(doc: &Value) -> Vec<&str> {
    doc["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data in {doc}"))
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn openai_and_anthropic_clients_each_get_their_list_shape() {
    let s = scenario().await;
    let key = s.key.as_str();
    let r = s.gw.get("/v1/models", key).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let doc = r.json();
    assert_eq!(doc["object"], "list");
    assert_eq!(ids(&doc), ALL);
    assert_eq!(
        doc["data"][1],
        json!({"id": "fast", "object": "model", "created": 0, "owned_by": "tollgate"})
    );

    // The Anthropic SDK, and Claude Code with a bearer token and anthropic-version.
    let bearer = format!("Bearer {key}");
    let claude_code = [
        ("authorization", bearer.as_str()),
        ("anthropic-version", "2023-06-01"),
    ];
    let sdk = anthropic_get(&s, "/v1/models", key).await;
    let cc = request(s.gw.proxy_addr, "GET", "/v1/models", &claude_code, b"").await;
    for r in [sdk, cc] {
        assert_eq!(r.status, 200, "{}", r.text());
        let doc = r.json();
        assert_eq!(ids(&doc), ALL, "{doc}");
        assert_eq!(
            doc["data"][1],
            json!({"type": "model", "id": "fast", "display_name": "fast", "created_at": "1970-01-01T00:00:00Z"})
        );
        assert_eq!(doc["has_more"], false);
        assert_eq!(doc["first_id"], "claude-haiku-4-5");
        assert_eq!(doc["last_id"], "smart");
        assert!(doc.get("object").is_none(), "{doc}");
    }

    // Anthropic's paging: limit, then after_id and before_id.
    let page = anthropic_get(&s, "/v1/models?limit=2", key).await.json();
    assert_eq!(ids(&page), ALL[..2]);
    assert_eq!(
        (&page["has_more"], &page["last_id"]),
        (&json!(true), &json!("fast"))
    );
    let next = anthropic_get(&s, "/v1/models?limit=2&after_id=fast", key)
        .await
        .json();
    assert_eq!(ids(&next), ALL[2..]);
    assert_eq!(next["has_more"], false);
    let back = anthropic_get(&s, "/v1/models?limit=1&before_id=smart", key)
        .await
        .json();
    assert_eq!(ids(&back), ["fast"]);
    assert_eq!(back["has_more"], true, "claude-haiku-4-5 comes before");
    let none = anthropic_get(&s, "/v1/models?after_id=smart", key)
        .await
        .json();
    assert_eq!(ids(&none).len(), 0);
    assert_eq!(
        (&none["first_id"], &none["last_id"]),
        (&Value::Null, &Value::Null)
    );

    // A key's scopes filter the list in either shape.
    let scoped = s.gw.create_key("alice", &["--models", "claude-*"]);
    let r = anthropic_get(&s, "/v1/models", &scoped).await;
    assert_eq!(ids(&r.json()), ["claude-haiku-4-5", "smart"]);
    assert_eq!(
        ids(&s.gw.get("/v1/models", &scoped).await.json()),
        ["claude-haiku-4-5", "smart"]
    );

    // Refusals in the client's envelope.
    let r = anthropic_get(&s, "/v1/models", "tg_nope_nope").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["type"], "error");
    assert_eq!(r.json()["error"]["type"], "authentication_error");
    assert_eq!(s.openai.request_count() + s.anthropic.request_count(), 0);
}

#[tokio::test]
async fn one_model_is_found_for_whatever_a_route_takes_in_the_clients_shape() {
    let s = scenario().await;
    let key = s.key.as_str();
    // Alias, exact route name, pattern matches (one with slashes, as OpenRouter names).
    for id in [
        "fast",
        "claude-haiku-4-5",
        "gpt-4.1",
        "meta-llama/Llama-3.3-70B",
        "ft:gpt-4o:org:x",
    ] {
        let r = s.gw.get(&format!("/v1/models/{id}"), key).await;
        assert_eq!(r.status, 200, "{id}: {}", r.text());
        assert_eq!(
            r.json(),
            json!({"id": id, "object": "model", "created": 0, "owned_by": "tollgate"})
        );
        let r = anthropic_get(&s, &format!("/v1/models/{id}"), key).await;
        assert_eq!(r.status, 200, "{id}: {}", r.text());
        assert_eq!(
            r.json(),
            json!({"type": "model", "id": id, "display_name": id, "created_at": "1970-01-01T00:00:00Z"})
        );
    }
    // Unrouted: 404 in each envelope, naming the model.
    let r = s.gw.get("/v1/models/llama-3", key).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["code"], "model_not_found");
    assert!(r.text().contains("llama-3"));
    let r = anthropic_get(&s, "/v1/models/llama-3", key).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["type"], "error");
    assert_eq!(r.json()["error"]["type"], "not_found_error");
    // Outside the key's scope: as if it did not exist.
    let scoped = s.gw.create_key("alice", &["--models", "claude-*"]);
    assert_eq!(s.gw.get("/v1/models/fast", &scoped).await.status, 404);
    assert_eq!(
        anthropic_get(&s, "/v1/models/smart", &scoped).await.status,
        200
    );
    // A name no model has: 400, not echoed raw.
    let r = s.gw.get("/v1/models/gpt%0d%0a", key).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(!r.text().contains('\r'));
    let r = request(s.gw.proxy_addr, "GET", "/v1/models/fast", &[], b"").await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn claude_codes_connectivity_probe_gets_200() {
    let s = scenario().await;
    let r = request(s.gw.proxy_addr, "HEAD", "/", &[], b"").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.is_empty());
    let headers = [
        ("x-api-key", s.key.as_str()),
        ("anthropic-version", "2023-06-01"),
    ];
    let r = request(s.gw.proxy_addr, "HEAD", "/", &headers, b"").await;
    assert_eq!(r.status, 200);
    // Only the probe: GET / is no endpoint.
    let r = request(s.gw.proxy_addr, "GET", "/", &[], b"").await;
    assert_eq!(r.status, 404);
    // A probe is no usage: the one event stored after a chat is the chat's.
    assert_eq!(s.gw.chat(&s.key, common::CHAT).await.status, 200);
    let events = s.gw.usage_events_after(1).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["endpoint"], "chat_completions");
}
