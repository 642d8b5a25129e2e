//! What the mock answers to one request: the endpoint and the behaviour words decide a
//! [`Plan`] (status, headers, body pieces, how they are delivered), made and recorded
//! before the first byte goes out.

use std::time::Duration;

use serde_json::Value;

use super::behaviour;
use super::dialect::{classify, Dialect, Endpoint};
use super::sse::{fixture, fixture_exists, sse_events};
use super::SLOW_STREAM_DELAY;

/// How the planned response is delivered.
#[derive(Debug, Clone)]
pub(super) enum Delivery {
    /// Everything, then keep the connection (unless the client asked to close).
    All,
    /// No response at all.
    Hang,
    /// `pieces` whole pieces, then `partial` raw bytes, then close.
    Cut { pieces: usize, partial: Vec<u8> },
    /// `pieces` whole pieces, then silence with the socket open.
    Stall { pieces: usize },
}

pub(super) struct Plan {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The body: for a chunked response, one piece per chunk; otherwise one piece.
    pub pieces: Vec<Vec<u8>>,
    pub chunked: bool,
    pub delivery: Delivery,
    pub delay: Option<Duration>,
    /// `held-stream`: wait for a release after the first piece.
    pub held: bool,
    /// Relative to `tests/fixtures`, or empty for a generated body.
    pub fixture: String,
}

/// What the request was and what the mock answers.
pub(super) struct Decision {
    /// `openai`, `anthropic`, `gemini` or `unknown`.
    pub provider: &'static str,
    /// The endpoint's name, or `unknown`.
    pub endpoint: &'static str,
    pub model: Option<String>,
    pub stream: bool,
    pub behaviours: Vec<String>,
    pub plan: Plan,
}

/// What a request asks for, read from its path and body.
struct Asked {
    endpoint: Option<Endpoint>,
    model: Option<String>,
    /// Whether the answer streams: asked for, possible there, and not `echo`.
    stream: bool,
    include_usage: bool,
    words: Vec<String>,
    /// Whether the body is a JSON object.
    object: bool,
}

impl Asked {
    fn read(method: &str, target: &str, body: &[u8]) -> Asked {
        let classified = classify(method, target);
        let json: Option<Value> = serde_json::from_slice(body).ok();
        let field = |k: &str| json.as_ref().and_then(|v| v.get(k));
        let (endpoint, path_model, path_stream) = match classified {
            Some(c) => (Some(c.endpoint), c.path_model, c.path_stream),
            None => (None, None, None),
        };
        let model =
            path_model.or_else(|| field("model").and_then(Value::as_str).map(str::to_owned));
        let asked_stream = path_stream
            .unwrap_or_else(|| field("stream").and_then(Value::as_bool).unwrap_or(false));
        let words = model.as_deref().map(behaviour::words).unwrap_or_default();
        let echo = words.iter().any(|w| w == "echo");
        Asked {
            stream: asked_stream && endpoint.is_some_and(|e| e.sse.is_some()) && !echo,
            include_usage: json
                .as_ref()
                .and_then(|v| v.pointer("/stream_options/include_usage"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
            object: json.as_ref().is_some_and(Value::is_object),
            endpoint,
            model,
            words,
        }
    }

    fn has(&self, word: &str) -> bool {
        self.words.iter().any(|w| w == word)
    }

    /// The dialect of the answer (an unknown path is answered as OpenAI would).
    fn dialect(&self) -> Dialect {
        self.endpoint.map_or(Dialect::OpenAi, |e| e.dialect)
    }

    /// The error status to answer with: unknown endpoints, then request errors, then the
    /// model's `error-NNN` (for this credential).
    fn error(&self, credential: &str) -> Option<u16> {
        if self.endpoint.is_none() {
            return Some(404);
        }
        if !self.object || self.model.is_none() {
            return Some(400);
        }
        let model = self.model.as_deref()?;
        behaviour::error_status(model).filter(|_| behaviour::key_matches(model, credential))
    }
}

pub(super) fn decide(
    method: &str,
    target: &str,
    body: &[u8],
    credential: &str,
    id: u64,
) -> Decision {
    let asked = Asked::read(method, target, body);
    let head = Head {
        dialect: asked.dialect(),
        id,
        received: body.len(),
    };
    let plan = match asked.error(credential) {
        Some(status) => error_plan(&asked, &head, status, method, target),
        None => fixture_plan(&asked, &head),
    };
    Decision {
        provider: asked.endpoint.map_or("unknown", |e| e.dialect.name()),
        endpoint: asked.endpoint.map_or("unknown", |e| e.name),
        model: asked.model,
        stream: asked.stream,
        behaviours: asked.words,
        plan,
    }
}

/// What every response head carries besides its framing.
struct Head {
    dialect: Dialect,
    id: u64,
    received: usize,
}

impl Head {
    /// The response header fields: content type, framing (`body_len` `None`: chunked),
    /// the mock's own fields, the provider's, then `extra`.
    fn fields(
        &self,
        sse: bool,
        body_len: Option<usize>,
        extra: Vec<(String, String)>,
    ) -> Vec<(String, String)> {
        let h = |k: &str, v: String| (k.to_owned(), v);
        let mut out = vec![h("content-type", self.dialect.content_type(sse).to_owned())];
        out.push(match body_len {
            None => h("transfer-encoding", "chunked".to_owned()),
            Some(n) => h("content-length", n.to_string()),
        });
        out.push(h("x-request-id", format!("req_mock_{}", self.id)));
        out.push(h("x-mock-received-bytes", self.received.to_string()));
        out.push(h("x-mock-secret-header", "1".to_owned()));
        out.push(h("set-cookie", "mock=1; Path=/".to_owned()));
        out.extend(self.dialect.headers(self.id));
        out.extend(extra);
        out
    }
}

/// An error answer: the provider's fixture for this code when there is one, otherwise
/// a generated body in its envelope; a 429 says when to retry.
fn error_plan(asked: &Asked, head: &Head, status: u16, method: &str, target: &str) -> Plan {
    let (body, rel) = match asked.endpoint {
        None => {
            let v = serde_json::json!({"error": {"message": format!("mock upstream: no endpoint for {method} {target}"),
                "type": "invalid_request_error", "param": null, "code": "unknown_url"}});
            (serde_json::to_vec(&v).unwrap(), String::new())
        }
        Some(e) => {
            let rel = format!("{}/error_{status}.json", e.dialect.name());
            if fixture_exists(&rel) {
                (fixture(&rel), rel)
            } else {
                let v = e
                    .dialect
                    .error(status, &format!("mock upstream error {status}"));
                (serde_json::to_vec(&v).unwrap(), String::new())
            }
        }
    };
    let mut extra = Vec::new();
    if status == 429 {
        let wait = asked
            .model
            .as_deref()
            .and_then(behaviour::retry_after_secs)
            .unwrap_or(1);
        extra.push(("retry-after".to_owned(), wait.to_string()));
    }
    Plan {
        status,
        headers: head.fields(false, Some(body.len()), extra),
        pieces: vec![body],
        chunked: false,
        delivery: Delivery::All,
        delay: None,
        held: false,
        fixture: rel,
    }
}

/// A normal answer from the endpoint's fixture, as the behaviour words shape it.
fn fixture_plan(asked: &Asked, head: &Head) -> Plan {
    let endpoint = asked.endpoint.expect("errors answer unknown endpoints");
    let json_array = asked.stream && endpoint.dialect == Dialect::Gemini && asked.has("json-array");
    let rel = match (asked.stream, endpoint.sse) {
        _ if json_array => "gemini/stream_array.json",
        (true, Some(sse)) => sse,
        _ => endpoint.json,
    };
    let pieces = if json_array {
        behaviour::json_array_pieces(&fixture(rel))
    } else {
        answer_pieces(asked, endpoint, fixture(rel))
    };
    let body_len = (!asked.stream).then(|| pieces.iter().map(Vec::len).sum());
    Plan {
        status: 200,
        headers: head.fields(asked.stream && !json_array, body_len, Vec::new()),
        delivery: delivery(asked, &pieces),
        delay: asked.has("slow-stream").then_some(SLOW_STREAM_DELAY),
        held: asked.stream && asked.has("held-stream"),
        pieces,
        chunked: asked.stream,
        fixture: rel.to_owned(),
    }
}

/// The body pieces: one per SSE event of a stream (without the usage chunk unless
/// asked), or the whole JSON; `big-stream` and `usage-missing` applied.
fn answer_pieces(asked: &Asked, endpoint: Endpoint, raw: Vec<u8>) -> Vec<Vec<u8>> {
    if !asked.stream {
        if !asked.has("usage-missing") {
            return vec![raw];
        }
        let mut v: Value = serde_json::from_slice(&raw).unwrap();
        behaviour::remove_usage(&mut v);
        return vec![endpoint.dialect.json_bytes(&v)];
    }
    let mut events = sse_events(&raw);
    if super::openai::usage_chunk_only_when_asked(endpoint) && !asked.include_usage {
        events.retain(|e| !super::openai::is_usage_chunk(e));
    }
    if asked.has("big-stream") {
        events = behaviour::big_stream(endpoint, events);
    }
    if asked.include_usage && asked.has("usage-null") {
        events = events
            .iter()
            .map(|e| behaviour::with_usage_null(e))
            .collect();
    }
    if asked.has("usage-missing") {
        events = events
            .iter()
            .filter_map(|e| behaviour::event_without_usage(e))
            .collect();
    }
    events
}

fn delivery(asked: &Asked, pieces: &[Vec<u8>]) -> Delivery {
    if asked.has("hang") {
        return Delivery::Hang;
    }
    if asked.has("cut-mid-event") || asked.has("cut-stream") {
        if !asked.stream {
            let half = pieces[0].len() / 2;
            return Delivery::Cut {
                pieces: 0,
                partial: pieces[0][..half].to_vec(),
            };
        }
        let n = pieces.len() / 2;
        let mut partial = Vec::new();
        if asked.has("cut-mid-event") && n < pieces.len() {
            let next = &pieces[n];
            partial = format!("{:x}\r\n", next.len()).into_bytes();
            partial.extend_from_slice(&next[..next.len() / 2]);
        }
        return Delivery::Cut { pieces: n, partial };
    }
    if asked.has("stall-stream") {
        let pieces = if asked.stream { pieces.len() / 2 } else { 0 };
        return Delivery::Stall { pieces };
    }
    Delivery::All
}
