//! Requests to a running [`Gateway`], one line each, as the providers' SDKs send them:
//! [`Gateway::chat`] (OpenAI: `Authorization: Bearer`), [`Gateway::messages`] (Anthropic:
//! `x-api-key`), [`Gateway::generate`] (Gemini: `x-goog-api-key`), [`Gateway::post`] for
//! any path with a bearer key; the admin API as one caller ([`Gateway::admin_as`]); and
//! `/metrics` read by series ([`Metrics`]); a stream left in flight ([`stalled_stream`]). The request bodies most tests send are here
//! too, so that one request is one line.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;

use super::gateway::Gateway;
use super::http::{request, Client, Response};
use super::wait::eventually;

/// An OpenAI chat request for `gpt-4o-mini` with one short message.
pub const CHAT: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;

/// [`CHAT`] for another model.
pub fn chat_body(model: &str) -> String {
    format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}]}}"#)
}

/// A chat request whose one message is `filler` letters long: over 64 KiB, the
/// gateway forwards the body itself instead of letting Pingora replay it.
pub fn padded_chat(model: &str, filler: usize) -> String {
    let text = "a".repeat(filler);
    format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"{text}"}}]}}"#)
}

/// An Anthropic messages request for `model` (`max_tokens` 9, no messages).
pub fn messages_body(model: &str) -> String {
    format!(r#"{{"model":"{model}","max_tokens":9,"messages":[]}}"#)
}

impl Gateway {
    /// POSTs `body` to `path` on the proxy listener with `key` as a bearer token.
    pub async fn post(&self, path: &str, key: &str, body: impl AsRef<[u8]>) -> Response {
        let auth = format!("Bearer {key}");
        let headers = [("authorization", auth.as_str())];
        request(self.proxy_addr, "POST", path, &headers, body.as_ref()).await
    }

    /// GETs `path` on the proxy listener with `key` as a bearer token.
    pub async fn get(&self, path: &str, key: &str) -> Response {
        let auth = format!("Bearer {key}");
        request(
            self.proxy_addr,
            "GET",
            path,
            &[("authorization", &auth)],
            b"",
        )
        .await
    }

    /// `POST /v1/chat/completions` with `key` as a bearer token.
    pub async fn chat(&self, key: &str, body: impl AsRef<[u8]>) -> Response {
        self.post("/v1/chat/completions", key, body).await
    }

    /// `POST /v1/messages` with `key` in `x-api-key`.
    pub async fn messages(&self, key: &str, body: impl AsRef<[u8]>) -> Response {
        let headers = [("x-api-key", key)];
        request(
            self.proxy_addr,
            "POST",
            "/v1/messages",
            &headers,
            body.as_ref(),
        )
        .await
    }

    /// `POST /v1beta/models/<model>:generateContent` with `key` in `x-goog-api-key`.
    pub async fn generate(&self, key: &str, model: &str, body: impl AsRef<[u8]>) -> Response {
        let path = format!("/v1beta/models/{model}:generateContent");
        let headers = [("x-goog-api-key", key)];
        request(self.proxy_addr, "POST", &path, &headers, body.as_ref()).await
    }

    /// `GET /metrics` on the admin listener, which must answer 200.
    pub async fn metrics(&self) -> Metrics {
        let r = self.admin_anonymous().get("/metrics").await;
        assert_eq!(r.status, 200, "{}", r.text());
        Metrics(r.text())
    }

    /// The admin API as the holder of `credential` (a gateway key or a session token).
    pub fn admin_as(&self, credential: &str) -> Admin<'_> {
        Admin {
            gw: self,
            bearer: Some(format!("Bearer {credential}")),
        }
    }

    /// The admin API without credentials.
    pub fn admin_anonymous(&self) -> Admin<'_> {
        Admin {
            gw: self,
            bearer: None,
        }
    }

    /// Waits (bounded) until the usage writer has stored at least `n` events, then
    /// returns `GET /admin/usage?by=<by>` (as the admin holding `admin_key`).
    pub async fn usage_after(&self, admin_key: &str, by: &str, n: u64) -> Value {
        let admin = self.admin_as(admin_key);
        let what = format!("{n} usage events to be stored");
        eventually(&what, Duration::from_secs(10), async || {
            let doc = admin.usage(by).await;
            let stored = stored_requests(&doc);
            if stored >= n {
                Ok(doc)
            } else {
                Err(format!("{stored} stored"))
            }
        })
        .await
    }
}

impl Client {
    /// [`Gateway::chat`] on this kept-alive connection.
    pub async fn chat(&mut self, key: &str, body: impl AsRef<[u8]>) -> Response {
        let auth = format!("Bearer {key}");
        let headers = [("authorization", auth.as_str())];
        self.request("POST", "/v1/chat/completions", &headers, body.as_ref())
            .await
    }
}

/// The requests counted by a `GET /admin/usage` document, over all its rows.
pub fn stored_requests(doc: &Value) -> u64 {
    doc["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["requests"].as_u64().unwrap())
        .sum()
}

/// The row of `group` in a `GET /admin/usage` (or `tollgate usage --json`) document;
/// panics with the document when there is none.
pub fn usage_row<'a>(doc: &'a Value, group: &str) -> &'a Value {
    doc["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["group"] == group)
        .unwrap_or_else(|| panic!("no row {group} in {doc}"))
}

/// Requests to the admin listener as one caller.
pub struct Admin<'g> {
    gw: &'g Gateway,
    /// The `authorization` value, if any.
    bearer: Option<String>,
}

impl Admin<'_> {
    /// One request; a non-empty body goes as `content-type: application/json`.
    pub async fn send(&self, method: &str, path: &str, body: &[u8]) -> Response {
        let mut headers = vec![];
        if let Some(b) = &self.bearer {
            headers.push(("authorization", b.as_str()));
        }
        if !body.is_empty() {
            headers.push(("content-type", "application/json"));
        }
        request(self.gw.admin_addr, method, path, &headers, body).await
    }

    pub async fn get(&self, path: &str) -> Response {
        self.send("GET", path, b"").await
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.send("DELETE", path, b"").await
    }

    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.send("POST", path, body.to_string().as_bytes()).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Response {
        self.send("PUT", path, body.to_string().as_bytes()).await
    }

    /// `GET /admin/usage?by=<by>`, which must answer 200; its document.
    pub async fn usage(&self, by: &str) -> Value {
        let r = self.get(&format!("/admin/usage?by={by}")).await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    }
}

/// The text of `/metrics` (Prometheus exposition format).
pub struct Metrics(pub String);

impl Metrics {
    pub fn text(&self) -> &str {
        &self.0
    }

    /// The sum of the samples whose line starts with `name` and holds every one of
    /// `labels` (`upstream="o"`), whatever their order.
    pub fn sum(&self, name: &str, labels: &[&str]) -> f64 {
        self.0
            .lines()
            .filter(|l| l.starts_with(name) && labels.iter().all(|x| l.contains(x)))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// The value of the first sample whose line starts with `series`
    /// (`tollgate_upstream_healthy{upstream="o"}`), if there is one.
    pub fn value(&self, series: &str) -> Option<f64> {
        self.0
            .lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }
}

/// Sends a streaming request for a model whose stream stalls halfway, and returns the
/// connection once the first events arrived (kept open: the request stays in flight).
pub async fn stalled_stream(at: SocketAddr, key: &str) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = r#"{"model":"gpt-4o-mini-stall-stream","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let mut conn = tokio::net::TcpStream::connect(at).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {at}\r\nauthorization: Bearer {key}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(body.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("data: ") {
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
            .await
            .expect("the stream's first events")
            .unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 200"));
    conn
}
