//! An in-process mock LLM provider speaking the OpenAI, Anthropic and Gemini wire formats
//! over plain HTTP/1.1 (keep-alive, `Content-Length` or chunked request bodies).
//!
//! It answers from the recorded responses in `tests/fixtures/<provider>/`, chosen by path:
//!
//! | path | non-stream | stream |
//! |---|---|---|
//! | `POST /v1/chat/completions` | `openai/chat.json` | `openai/chat.sse` |
//! | `POST /v1/completions` | `openai/completions.json` | `openai/completions.sse` |
//! | `POST /v1/embeddings` | `openai/embeddings.json` | (never streams) |
//! | `POST /v1/responses` | `openai/responses.json` | `openai/responses.sse` |
//! | `POST /v1/messages` | `anthropic/messages.json` | `anthropic/messages.sse` |
//! | `POST /v1/messages/count_tokens` | `anthropic/count_tokens.json` | (never streams) |
//! | `POST /v1beta/models/{m}:generateContent` | `gemini/generate.json` | with `alt=sse`: `gemini/stream.sse` |
//! | `POST /v1beta/models/{m}:streamGenerateContent` | | `gemini/stream.sse` |
//!
//! OpenAI and Anthropic stream when the JSON body has `"stream": true`. Like OpenAI, the
//! usage-only chunk (`"choices":[]`) of a chat or completions stream is sent only when the
//! body asks for it with `stream_options.include_usage: true`; every other byte is the
//! same either way, so [`strip_usage_chunk`] of the full fixture is what a client that
//! did not ask receives.
//!
//! Streams go out with `Transfer-Encoding: chunked`, one HTTP chunk per SSE event; JSON
//! with `Content-Length`. A body that is not JSON (or, for OpenAI/Anthropic, has no string
//! `model`) gets the provider's 400 error, as the real APIs answer.
//!
//! The model (the body's `model`, or the Gemini path's) picks a behaviour when it
//! contains one of these words (TensorZero's `dummy` provider style); several combine:
//!
//! | word | behaviour |
//! |---|---|
//! | `error-NNN` | status NNN with the provider's error JSON (`<provider>/error_NNN.json` for 400, 429, 500; a generated body otherwise); 429 adds `retry-after: 1` |
//! | `for-key-TAG` | with `error-NNN`: the error only for requests whose credential contains TAG; others are served |
//! | `retry-after-N` | with `error-429`: `retry-after: N` |
//! | `hang` | reads the request, never answers; holds the socket until the peer closes it or the mock is dropped |
//! | `slow-stream` | [`SLOW_STREAM_DELAY`] between stream events (and before a JSON body) |
//! | `stall-stream` | sends the header and the first half of the events, then goes silent, socket open |
//! | `cut-stream` | sends half of the events, then closes without the terminating chunk (JSON: half the `Content-Length` bytes) |
//! | `cut-mid-event` | as `cut-stream`, plus the first half of the next event inside a chunk whose size line promised all of it |
//! | `big-stream` | the stream's content deltas replaced by [`BIG_STREAM_EVENTS`] deltas of about 1 KiB each (about 5.5 MB) |
//! | `usage-missing` | every usage field removed (`usage`, `usageMetadata`, the OpenAI usage chunk) |
//! | `echo` | a normal non-stream JSON answer even when the body asks to stream |
//! | `json-array` | a Gemini stream as `:streamGenerateContent` sends it without `alt=sse`: `gemini/stream_array.json` (`application/json`), one HTTP chunk per array element |
//! | `usage-null` | a chat or completions stream that asked for `include_usage` ends every other chunk's payload with `,"usage":null`, as OpenAI does |
//!
//! Every response carries `x-request-id: req_mock_<n>` (n counts from 1 per mock),
//! `x-mock-received-bytes: <de-chunked request body length>`, `x-mock-secret-header: 1`
//! and `set-cookie: mock=1; Path=/`, plus provider-style headers: OpenAI
//! `openai-processing-ms`, `x-ratelimit-remaining-requests` and friends; Anthropic
//! `request-id: req_mock_<n>`, `anthropic-ratelimit-requests-remaining`; Gemini
//! `server-timing`, `vary`.
//!
//! Each request is recorded ([`RecordedRequest`]) before the first response byte is
//! written, together with the exact response it is about to send, so a test that has
//! received a response can always find the matching record.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};

use super::http::{find, find_all, find_header, is_chunked, parse_head, ChunkEvent, Conn};

/// Where the fixture files live.
pub const FIXTURES_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
/// The pause between events of a `slow-stream`.
pub const SLOW_STREAM_DELAY: Duration = Duration::from_millis(50);
/// How many content deltas a `big-stream` sends.
pub const BIG_STREAM_EVENTS: usize = 5000;
/// The approximate size of each `big-stream` delta's text.
pub const BIG_STREAM_TEXT_BYTES: usize = 1000;

/// One request the mock received, and what it answered.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// `n` of `x-request-id: req_mock_<n>`: 1 for the first request this mock received.
    pub id: u64,
    /// Which TCP connection carried it: 1 for the first connection accepted.
    pub connection: u64,
    pub method: String,
    /// The request target as sent (`/v1beta/models/x:streamGenerateContent?alt=sse`).
    pub path_and_query: String,
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    /// Header fields in the order received; names lowercased, values trimmed.
    pub headers: Vec<(String, String)>,
    /// The request head exactly as received (request line, fields, blank line).
    pub raw_head: String,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// Whether the body came with `Transfer-Encoding: chunked`.
    pub body_was_chunked: bool,
    /// `openai`, `anthropic`, `gemini`, or `unknown` (by path).
    pub provider: &'static str,
    /// `chat_completions`, `completions`, `embeddings`, `responses`, `messages`,
    /// `count_tokens`, `generate_content`, `stream_generate_content`, or `unknown`.
    pub endpoint: &'static str,
    /// The model from the body, or from the Gemini path.
    pub model: Option<String>,
    /// Whether the request asked to stream.
    pub stream: bool,
    /// The behaviour words found in the model (`["error-429"]`, `["slow-stream"]`).
    pub behaviours: Vec<String>,
    /// The fixture answered from, relative to `tests/fixtures` (`openai/chat.sse`), or
    /// empty for a generated answer (unknown path, generated error body, `hang`).
    pub fixture: String,
    /// The status sent; 0 for `hang`.
    pub response_status: u16,
    /// The response header fields sent, in order (names lowercased).
    pub response_headers: Vec<(String, String)>,
    /// The response body bytes the mock sends (de-chunked), recorded before sending:
    /// for `cut-*` only the part it sends before closing.
    pub response_body: Vec<u8>,
    /// Each HTTP chunk's payload sent, when the response is chunked (for `cut-mid-event`
    /// the last entry is the partial event).
    pub response_chunks: Vec<Vec<u8>>,
    /// Set once the mock wrote everything it meant to send (also for `cut-*`).
    pub finished: bool,
    /// Set when the peer closed the connection (or a write failed) before the mock
    /// finished, or while a `hang`/`stall-stream` held the socket.
    pub peer_closed: bool,
}

impl RecordedRequest {
    /// The first request header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// Every request header with this name, in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        find_all(&self.headers, name)
    }

    /// The first response header with this name.
    pub fn response_header(&self, name: &str) -> Option<&str> {
        find_header(&self.response_headers, name)
    }

    /// The request body as JSON; panics when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "request body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// `req_mock_<id>`, the `x-request-id` of the response.
    pub fn request_id(&self) -> String {
        format!("req_mock_{}", self.id)
    }
}

struct State {
    requests: Mutex<Vec<RecordedRequest>>,
    next_id: AtomicU64,
    connections: AtomicU64,
    changed: Notify,
}

impl State {
    /// Appends a record and returns its index. No `.await` under the lock.
    fn record(&self, r: RecordedRequest) -> usize {
        let mut reqs = self.requests.lock().unwrap();
        reqs.push(r);
        let i = reqs.len() - 1;
        drop(reqs);
        self.changed.notify_waiters();
        i
    }

    fn update(&self, index: usize, f: impl FnOnce(&mut RecordedRequest)) {
        let mut reqs = self.requests.lock().unwrap();
        if let Some(r) = reqs.get_mut(index) {
            f(r);
        }
        drop(reqs);
        self.changed.notify_waiters();
    }
}

/// A running mock provider; stops (listener and every connection closed) when dropped.
pub struct MockUpstream {
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: watch::Sender<bool>,
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

impl MockUpstream {
    /// Binds `127.0.0.1:0` and serves on the current tokio runtime.
    pub async fn start() -> MockUpstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the mock upstream");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            requests: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            connections: AtomicU64::new(0),
            changed: Notify::new(),
        });
        let (shutdown, stop) = watch::channel(false);
        let st = state.clone();
        tokio::spawn(async move {
            let mut stop_accepting = stop.clone();
            loop {
                tokio::select! {
                    _ = stop_accepting.wait_for(|v| *v) => break,
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let _ = stream.set_nodelay(true);
                        let conn_id = st.connections.fetch_add(1, Ordering::SeqCst) + 1;
                        let st = st.clone();
                        let mut stop = stop.clone();
                        tokio::spawn(async move {
                            let (rd, wr) = stream.into_split();
                            let serve = serve_connection(Conn::new(rd), wr, st, conn_id);
                            tokio::select! {
                                _ = serve => {}
                                _ = stop.wait_for(|v| *v) => {}
                            }
                        });
                    }
                }
            }
        });
        MockUpstream {
            addr,
            state,
            shutdown,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests.lock().unwrap().clone()
    }

    /// How many requests arrived so far.
    pub fn request_count(&self) -> usize {
        self.state.requests.lock().unwrap().len()
    }

    /// The most recent request, if any.
    pub fn last_request(&self) -> Option<RecordedRequest> {
        self.state.requests.lock().unwrap().last().cloned()
    }

    /// The response body sent for each request, in arrival order.
    pub fn sent_bodies(&self) -> Vec<Vec<u8>> {
        self.state
            .requests
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.response_body.clone())
            .collect()
    }

    /// How many requests were answered from this fixture (`"openai/chat.sse"`).
    pub fn hits(&self, fixture: &str) -> usize {
        self.state
            .requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.fixture == fixture)
            .count()
    }

    /// How many TCP connections were accepted so far.
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Forgets the recorded requests (ids keep counting).
    pub fn clear(&self) {
        self.state.requests.lock().unwrap().clear();
    }

    /// Waits until `pred` holds for the recorded requests and returns them; panics after
    /// `timeout`, naming `what`. Wakes on every new or updated record, no polling.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&[RecordedRequest]) -> bool,
    ) -> Vec<RecordedRequest> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.state.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let reqs = self.state.requests.lock().unwrap();
                if pred(&reqs) {
                    return reqs.clone();
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let seen: Vec<String> = self
                    .requests()
                    .iter()
                    .map(|r| {
                        format!(
                            "{} {} (status {})",
                            r.method, r.path_and_query, r.response_status
                        )
                    })
                    .collect();
                panic!("mock upstream: {what} did not happen within {timeout:?}; requests so far: {seen:?}");
            }
        }
    }

    /// Waits until at least `n` requests arrived; returns all of them.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<RecordedRequest> {
        self.wait_until(timeout, &format!("{n} request(s)"), |r| r.len() >= n)
            .await
    }
}

// ---------------------------------------------------------------------------------------
// Fixtures and SSE helpers (public: tests compare against them).

/// The bytes of `tests/fixtures/<rel>`; panics naming the file when it is missing.
pub fn fixture(rel: &str) -> Vec<u8> {
    let path = format!("{FIXTURES_DIR}/{rel}");
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

fn fixture_exists(rel: &str) -> bool {
    std::path::Path::new(&format!("{FIXTURES_DIR}/{rel}")).is_file()
}

/// Splits an SSE body into events, each with its terminating blank line (`\n\n`, or
/// `\r\n\r\n` as Gemini sends). A trailing piece with no terminator is the last element.
pub fn sse_events(body: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < body.len() {
        let end = if body[i..].starts_with(b"\r\n\r\n") {
            Some(i + 4)
        } else if body[i..].starts_with(b"\n\n") {
            Some(i + 2)
        } else {
            None
        };
        match end {
            Some(e) => {
                out.push(body[start..e].to_vec());
                start = e;
                i = e;
            }
            None => i += 1,
        }
    }
    if start < body.len() {
        out.push(body[start..].to_vec());
    }
    out
}

/// The `data:` payload of one SSE event (several `data:` lines joined by `\n`), or
/// `None` when it has none.
pub fn event_data(event: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(event);
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .collect();
    if lines.is_empty() {
        None
    } else {
        Some(lines.join("\n"))
    }
}

/// The `event:` name of one SSE event, if it has one.
pub fn event_name(event: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(event);
    text.split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .find_map(|l| l.strip_prefix("event:"))
        .map(|l| l.trim().to_owned())
}

/// Whether this event is OpenAI's usage-only chunk (`"choices":[]` with a `usage`
/// object), sent only with `stream_options.include_usage`.
pub fn is_openai_usage_chunk(event: &[u8]) -> bool {
    let Some(data) = event_data(event) else {
        return false;
    };
    let Ok(v) = serde_json::from_str::<Value>(&data) else {
        return false;
    };
    v["choices"].as_array().is_some_and(|c| c.is_empty()) && v["usage"].is_object()
}

/// The SSE body without OpenAI's usage-only chunk: what the provider sends to a client
/// that did not ask for `include_usage`.
pub fn strip_usage_chunk(body: &[u8]) -> Vec<u8> {
    sse_events(body)
        .into_iter()
        .filter(|e| !is_openai_usage_chunk(e))
        .flatten()
        .collect()
}

// ---------------------------------------------------------------------------------------
// Request classification.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Provider {
    OpenAi,
    Anthropic,
    Gemini,
    Unknown,
}

impl Provider {
    fn name(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
            Provider::Gemini => "gemini",
            Provider::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    ChatCompletions,
    Completions,
    Embeddings,
    Responses,
    Messages,
    CountTokens,
    GenerateContent,
    StreamGenerateContent,
    Unknown,
}

impl Endpoint {
    fn name(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "chat_completions",
            Endpoint::Completions => "completions",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Responses => "responses",
            Endpoint::Messages => "messages",
            Endpoint::CountTokens => "count_tokens",
            Endpoint::GenerateContent => "generate_content",
            Endpoint::StreamGenerateContent => "stream_generate_content",
            Endpoint::Unknown => "unknown",
        }
    }

    fn provider(self) -> Provider {
        match self {
            Endpoint::ChatCompletions
            | Endpoint::Completions
            | Endpoint::Embeddings
            | Endpoint::Responses => Provider::OpenAi,
            Endpoint::Messages | Endpoint::CountTokens => Provider::Anthropic,
            Endpoint::GenerateContent | Endpoint::StreamGenerateContent => Provider::Gemini,
            Endpoint::Unknown => Provider::Unknown,
        }
    }

    /// The fixture for a normal answer.
    fn fixture(self, stream: bool) -> &'static str {
        match (self, stream) {
            (Endpoint::ChatCompletions, false) => "openai/chat.json",
            (Endpoint::ChatCompletions, true) => "openai/chat.sse",
            (Endpoint::Completions, false) => "openai/completions.json",
            (Endpoint::Completions, true) => "openai/completions.sse",
            (Endpoint::Embeddings, _) => "openai/embeddings.json",
            (Endpoint::Responses, false) => "openai/responses.json",
            (Endpoint::Responses, true) => "openai/responses.sse",
            (Endpoint::Messages, false) => "anthropic/messages.json",
            (Endpoint::Messages, true) => "anthropic/messages.sse",
            (Endpoint::CountTokens, _) => "anthropic/count_tokens.json",
            (Endpoint::GenerateContent | Endpoint::StreamGenerateContent, false) => {
                "gemini/generate.json"
            }
            (Endpoint::GenerateContent | Endpoint::StreamGenerateContent, true) => {
                "gemini/stream.sse"
            }
            (Endpoint::Unknown, _) => "",
        }
    }

    fn can_stream(self) -> bool {
        !matches!(
            self,
            Endpoint::Embeddings | Endpoint::CountTokens | Endpoint::Unknown
        )
    }
}

/// Classifies by path (query ignored); for Gemini also returns the model from the path.
fn classify(method: &str, target: &str) -> (Endpoint, Option<String>, bool) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if method != "POST" {
        return (Endpoint::Unknown, None, false);
    }
    let alt_sse = query.split('&').any(|kv| kv == "alt=sse");
    match path {
        "/v1/chat/completions" => (Endpoint::ChatCompletions, None, false),
        "/v1/completions" => (Endpoint::Completions, None, false),
        "/v1/embeddings" => (Endpoint::Embeddings, None, false),
        "/v1/responses" => (Endpoint::Responses, None, false),
        "/v1/messages" => (Endpoint::Messages, None, false),
        "/v1/messages/count_tokens" => (Endpoint::CountTokens, None, false),
        _ => {
            let Some(rest) = path.strip_prefix("/v1beta/models/") else {
                return (Endpoint::Unknown, None, false);
            };
            match rest.rsplit_once(':') {
                Some((model, "generateContent")) if !model.is_empty() => {
                    (Endpoint::GenerateContent, Some(model.to_owned()), alt_sse)
                }
                Some((model, "streamGenerateContent")) if !model.is_empty() => (
                    Endpoint::StreamGenerateContent,
                    Some(model.to_owned()),
                    true,
                ),
                _ => (Endpoint::Unknown, None, false),
            }
        }
    }
}

const BEHAVIOUR_WORDS: &[&str] = &[
    "hang",
    "slow-stream",
    "stall-stream",
    "cut-stream",
    "cut-mid-event",
    "big-stream",
    "usage-missing",
    "echo",
    "json-array",
    "usage-null",
];

/// The behaviour words in a model name, including `error-NNN`.
fn behaviours(model: &str) -> Vec<String> {
    let mut out: Vec<String> = BEHAVIOUR_WORDS
        .iter()
        .filter(|w| model.contains(**w))
        .map(|w| (*w).to_owned())
        .collect();
    if let Some(code) = error_status(model) {
        out.insert(0, format!("error-{code}"));
    }
    out
}

/// Whether an `error-NNN` applies to a request with this credential: always, unless the
/// model says `for-key-<tag>` (letters and digits), then only when the credential
/// contains the tag.
fn key_matches(model: &str, credential: &str) -> bool {
    let Some(i) = model.find("for-key-") else {
        return true;
    };
    let tag: String = model[i + 8..]
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect();
    credential.contains(&tag)
}

/// `N` of `retry-after-N` in the model name: the 429's `retry-after` (default 1).
fn retry_after_secs(model: &str) -> Option<u64> {
    let i = model.find("retry-after-")?;
    let digits: String = model[i + 12..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// `NNN` of the first `error-NNN` in the model name.
fn error_status(model: &str) -> Option<u16> {
    let i = model.find("error-")?;
    let digits = model.get(i + 6..i + 9)?;
    digits.parse().ok().filter(|c| (100..600).contains(c))
}

// ---------------------------------------------------------------------------------------
// Responses.

/// How the planned response is delivered.
#[derive(Debug, Clone)]
enum Delivery {
    /// Everything, then keep the connection (unless the client asked to close).
    All,
    /// No response at all.
    Hang,
    /// `pieces` whole pieces, then `partial` raw bytes, then close.
    Cut { pieces: usize, partial: Vec<u8> },
    /// `pieces` whole pieces, then silence with the socket open.
    Stall { pieces: usize },
}

struct Plan {
    status: u16,
    headers: Vec<(String, String)>,
    /// The body: for a chunked response, one piece per chunk; otherwise one piece.
    pieces: Vec<Vec<u8>>,
    chunked: bool,
    delivery: Delivery,
    delay: Option<Duration>,
    fixture: String,
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        529 => "Site Overloaded",
        _ => "Mock",
    }
}

/// An error body in the provider's shape: the fixture when there is one.
fn error_body(provider: Provider, status: u16) -> (Vec<u8>, String) {
    let rel = format!("{}/error_{status}.json", provider.name());
    if provider != Provider::Unknown && fixture_exists(&rel) {
        return (fixture(&rel), rel);
    }
    let msg = format!("mock upstream error {status}");
    let v = match provider {
        Provider::Anthropic => {
            let kind = match status {
                400 => "invalid_request_error",
                401 => "authentication_error",
                403 => "permission_error",
                404 => "not_found_error",
                413 => "request_too_large",
                429 => "rate_limit_error",
                529 => "overloaded_error",
                _ => "api_error",
            };
            serde_json::json!({"type": "error", "error": {"type": kind, "message": msg}})
        }
        Provider::Gemini => {
            let st = match status {
                400 => "INVALID_ARGUMENT",
                401 => "UNAUTHENTICATED",
                403 => "PERMISSION_DENIED",
                404 => "NOT_FOUND",
                429 => "RESOURCE_EXHAUSTED",
                503 => "UNAVAILABLE",
                504 => "DEADLINE_EXCEEDED",
                _ => "INTERNAL",
            };
            serde_json::json!({"error": {"code": status, "message": msg, "status": st}})
        }
        Provider::OpenAi | Provider::Unknown => {
            let kind = if status >= 500 {
                "server_error"
            } else {
                "invalid_request_error"
            };
            serde_json::json!({"error": {"message": msg, "type": kind, "param": null, "code": null}})
        }
    };
    (serde_json::to_vec(&v).unwrap(), String::new())
}

fn content_type(provider: Provider, sse: bool) -> &'static str {
    match (provider, sse) {
        (Provider::Gemini, true) => "text/event-stream",
        (Provider::Gemini, false) => "application/json; charset=UTF-8",
        (_, true) => "text/event-stream; charset=utf-8",
        (_, false) => "application/json",
    }
}

fn provider_headers(provider: Provider, id: u64) -> Vec<(String, String)> {
    let h = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    match provider {
        Provider::OpenAi | Provider::Unknown => vec![
            h("openai-organization", "org-mock"),
            h("openai-processing-ms", "7"),
            h("openai-version", "2020-10-01"),
            h("x-ratelimit-limit-requests", "10000"),
            h("x-ratelimit-remaining-requests", "9999"),
            h("x-ratelimit-reset-requests", "6ms"),
        ],
        Provider::Anthropic => vec![
            h("request-id", &format!("req_mock_{id}")),
            h(
                "anthropic-organization-id",
                "00000000-0000-0000-0000-000000000000",
            ),
            h("anthropic-ratelimit-requests-limit", "50"),
            h("anthropic-ratelimit-requests-remaining", "49"),
            h("anthropic-ratelimit-requests-reset", "2025-06-26T16:00:01Z"),
        ],
        Provider::Gemini => vec![
            h("vary", "Origin, X-Origin, Referer"),
            h("server", "scaffolding on HTTPServer2"),
            h("server-timing", "gfet4t7; dur=412"),
        ],
    }
}

/// Removes every usage field from a response object or stream payload.
fn remove_usage(v: &mut Value) {
    if let Some(o) = v.as_object_mut() {
        o.remove("usage");
        o.remove("usageMetadata");
        for inner in ["message", "response"] {
            if let Some(i) = o.get_mut(inner).and_then(Value::as_object_mut) {
                i.remove("usage");
            }
        }
    }
}

/// `usage-missing` for one SSE event: `None` drops it (the OpenAI usage chunk).
fn event_without_usage(event: &[u8]) -> Option<Vec<u8>> {
    if is_openai_usage_chunk(event) {
        return None;
    }
    let Some(data) = event_data(event) else {
        return Some(event.to_vec());
    };
    let Ok(mut v) = serde_json::from_str::<Value>(&data) else {
        return Some(event.to_vec());
    };
    remove_usage(&mut v);
    let crlf = event.ends_with(b"\r\n\r\n");
    let eol = if crlf { "\r\n" } else { "\n" };
    let text = String::from_utf8_lossy(event);
    let mut out = String::new();
    for line in text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)) {
        if line.is_empty() || line.starts_with("data:") {
            continue;
        }
        out.push_str(line);
        out.push_str(eol);
    }
    out.push_str("data: ");
    out.push_str(&serde_json::to_string(&v).unwrap());
    out.push_str(eol);
    out.push_str(eol);
    Some(out.into_bytes())
}

/// The text of a content delta event for this endpoint, if the event is one.
fn delta_text(endpoint: Endpoint, event: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_str(&event_data(event)?).ok()?;
    let s = match endpoint {
        Endpoint::ChatCompletions => v.pointer("/choices/0/delta/content")?,
        Endpoint::Completions if v.pointer("/choices/0/finish_reason")?.is_null() => {
            v.pointer("/choices/0/text")?
        }
        Endpoint::Responses if v["type"] == "response.output_text.delta" => v.get("delta")?,
        Endpoint::Messages if v["type"] == "content_block_delta" => v.pointer("/delta/text")?,
        Endpoint::GenerateContent | Endpoint::StreamGenerateContent
            if v.pointer("/candidates/0/finishReason").is_none() =>
        {
            v.pointer("/candidates/0/content/parts/0/text")?
        }
        _ => return None,
    };
    s.as_str().filter(|t| !t.is_empty()).map(str::to_owned)
}

/// `big-stream`: the content deltas replaced by [`BIG_STREAM_EVENTS`] big ones built from
/// the first delta (only its text changes, byte for byte otherwise).
fn big_stream(endpoint: Endpoint, events: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let first = events
        .iter()
        .position(|e| delta_text(endpoint, e).is_some());
    let last = events
        .iter()
        .rposition(|e| delta_text(endpoint, e).is_some());
    let (Some(first), Some(last)) = (first, last) else {
        return events;
    };
    let template = String::from_utf8_lossy(&events[first]).into_owned();
    let old = serde_json::to_string(&delta_text(endpoint, &events[first]).unwrap()).unwrap();
    let filler = "lorem ipsum dolor sit amet, consectetur adipiscing elit. "
        .repeat(BIG_STREAM_TEXT_BYTES / 56 + 1);
    let mut out: Vec<Vec<u8>> = events[..first].to_vec();
    for i in 0..BIG_STREAM_EVENTS {
        let mut text = format!("[{i:05}] ");
        text.push_str(&filler[..BIG_STREAM_TEXT_BYTES - text.len()]);
        let new = serde_json::to_string(&text).unwrap();
        out.push(template.replacen(&old, &new, 1).into_bytes());
    }
    out.extend(events[last + 1..].iter().cloned());
    out
}

/// A JSON array stream cut after each element's separator (`,\r\n`), one piece each.
fn json_array_pieces(raw: &[u8]) -> Vec<Vec<u8>> {
    let mut pieces = Vec::new();
    let mut start = 0;
    while let Some(i) = find(&raw[start..], b",\r\n") {
        pieces.push(raw[start..start + i + 3].to_vec());
        start += i + 3;
    }
    pieces.push(raw[start..].to_vec());
    pieces
}

/// `usage-null` for one SSE event: `,"usage":null` before the payload's closing brace,
/// except on the usage chunk and `[DONE]`.
fn with_usage_null(event: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(event);
    match text.rfind('}') {
        Some(i) if !is_openai_usage_chunk(event) => {
            format!("{},\"usage\":null{}", &text[..i], &text[i..]).into_bytes()
        }
        _ => event.to_vec(),
    }
}

/// What the request was and what the mock answers.
struct Decision {
    endpoint: Endpoint,
    model: Option<String>,
    stream: bool,
    behaviours: Vec<String>,
    plan: Plan,
}

fn decide(method: &str, target: &str, body: &[u8], credential: &str, id: u64) -> Decision {
    let (endpoint, path_model, path_stream) = classify(method, target);
    let provider = endpoint.provider();
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let model = match provider {
        Provider::Gemini => path_model,
        _ => json
            .as_ref()
            .and_then(|v| v.get("model"))
            .and_then(Value::as_str)
            .map(str::to_owned),
    };
    let asked_stream = match provider {
        Provider::Gemini => path_stream,
        _ => json
            .as_ref()
            .and_then(|v| v.get("stream"))
            .and_then(Value::as_bool)
            .unwrap_or(false),
    };
    let include_usage = json
        .as_ref()
        .and_then(|v| v.pointer("/stream_options/include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let words = model.as_deref().map(behaviours).unwrap_or_default();
    let has = |w: &str| words.iter().any(|x| x == w);
    let stream = asked_stream && endpoint.can_stream() && !has("echo");

    let mut headers: Vec<(String, String)> = Vec::new();
    let finish = |status: u16,
                  ctype: &str,
                  pieces: Vec<Vec<u8>>,
                  chunked: bool,
                  mut extra: Vec<(String, String)>| {
        let mut h = vec![("content-type".to_owned(), ctype.to_owned())];
        if chunked {
            h.push(("transfer-encoding".to_owned(), "chunked".to_owned()));
        } else {
            h.push((
                "content-length".to_owned(),
                pieces.iter().map(Vec::len).sum::<usize>().to_string(),
            ));
        }
        h.push(("x-request-id".to_owned(), format!("req_mock_{id}")));
        h.push(("x-mock-received-bytes".to_owned(), body.len().to_string()));
        h.push(("x-mock-secret-header".to_owned(), "1".to_owned()));
        h.push(("set-cookie".to_owned(), "mock=1; Path=/".to_owned()));
        h.extend(provider_headers(provider, id));
        h.append(&mut extra);
        (status, h, pieces)
    };

    // Unknown endpoints, then request errors, then the model's error behaviours.
    let error = if endpoint == Endpoint::Unknown {
        Some(404)
    } else if json.as_ref().is_none_or(|v| !v.is_object())
        || (provider != Provider::Gemini && model.is_none())
    {
        Some(400)
    } else {
        model
            .as_deref()
            .and_then(error_status)
            .filter(|_| model.as_deref().is_none_or(|m| key_matches(m, credential)))
    };
    if let Some(status) = error {
        let (body_bytes, rel) = if endpoint == Endpoint::Unknown {
            let v = serde_json::json!({"error": {"message": format!("mock upstream: no endpoint for {method} {target}"),
                "type": "invalid_request_error", "param": null, "code": "unknown_url"}});
            (serde_json::to_vec(&v).unwrap(), String::new())
        } else {
            error_body(provider, status)
        };
        let extra = if status == 429 {
            let wait = model.as_deref().and_then(retry_after_secs).unwrap_or(1);
            vec![("retry-after".to_owned(), wait.to_string())]
        } else {
            Vec::new()
        };
        let (status, h, pieces) = finish(
            status,
            content_type(provider, false),
            vec![body_bytes],
            false,
            extra,
        );
        headers.extend(h);
        return Decision {
            endpoint,
            model,
            stream,
            behaviours: words,
            plan: Plan {
                status,
                headers,
                pieces,
                chunked: false,
                delivery: Delivery::All,
                delay: None,
                fixture: rel,
            },
        };
    }

    let json_array = stream && provider == Provider::Gemini && has("json-array");
    let rel = if json_array {
        "gemini/stream_array.json".to_owned()
    } else {
        endpoint.fixture(stream).to_owned()
    };
    let raw = fixture(&rel);
    let mut pieces = if json_array {
        json_array_pieces(&raw)
    } else if stream {
        let mut events = sse_events(&raw);
        if matches!(endpoint, Endpoint::ChatCompletions | Endpoint::Completions) && !include_usage {
            events.retain(|e| !is_openai_usage_chunk(e));
        }
        if has("big-stream") {
            events = big_stream(endpoint, events);
        }
        if include_usage && has("usage-null") {
            events = events.iter().map(|e| with_usage_null(e)).collect();
        }
        events
    } else {
        vec![raw]
    };
    if has("usage-missing") {
        pieces = if stream {
            pieces
                .iter()
                .filter_map(|e| event_without_usage(e))
                .collect()
        } else {
            let mut v: Value = serde_json::from_slice(&pieces[0]).unwrap();
            remove_usage(&mut v);
            let mut bytes = match provider {
                Provider::Anthropic => serde_json::to_vec(&v).unwrap(),
                _ => serde_json::to_vec_pretty(&v).unwrap(),
            };
            if provider != Provider::Anthropic {
                bytes.push(b'\n');
            }
            vec![bytes]
        };
    }
    let delivery = if has("hang") {
        Delivery::Hang
    } else if has("cut-mid-event") || has("cut-stream") {
        if stream {
            let n = pieces.len() / 2;
            let partial = if has("cut-mid-event") && n < pieces.len() {
                let next = &pieces[n];
                let mut p = format!("{:x}\r\n", next.len()).into_bytes();
                p.extend_from_slice(&next[..next.len() / 2]);
                p
            } else {
                Vec::new()
            };
            Delivery::Cut { pieces: n, partial }
        } else {
            let half = pieces[0].len() / 2;
            Delivery::Cut {
                pieces: 0,
                partial: pieces[0][..half].to_vec(),
            }
        }
    } else if has("stall-stream") {
        Delivery::Stall {
            pieces: if stream { pieces.len() / 2 } else { 0 },
        }
    } else {
        Delivery::All
    };
    let delay = has("slow-stream").then_some(SLOW_STREAM_DELAY);
    let (status, h, pieces) = finish(
        200,
        content_type(provider, stream && !json_array),
        pieces,
        stream,
        Vec::new(),
    );
    headers.extend(h);
    Decision {
        endpoint,
        model,
        stream,
        behaviours: words,
        plan: Plan {
            status,
            headers,
            pieces,
            chunked: stream,
            delivery,
            delay,
            fixture: rel,
        },
    }
}

// ---------------------------------------------------------------------------------------
// The connection loop.

struct Incoming {
    method: String,
    target: String,
    version: String,
    headers: Vec<(String, String)>,
    raw_head: String,
    body: Vec<u8>,
    chunked: bool,
}

async fn read_request(
    conn: &mut Conn<OwnedReadHalf>,
    wr: &mut OwnedWriteHalf,
) -> std::io::Result<Option<Incoming>> {
    let Some(head) = conn.read_head().await? else {
        return Ok(None);
    };
    let raw_head = String::from_utf8_lossy(&head).into_owned();
    let (start, headers) = parse_head(&head)?;
    let mut parts = start.split(' ');
    let method = parts.next().unwrap_or("").to_owned();
    let target = parts.next().unwrap_or("").to_owned();
    let version = parts.next().unwrap_or("").to_owned();
    if find_header(&headers, "expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        wr.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
    }
    let chunked = is_chunked(&headers);
    let mut body = Vec::new();
    if chunked {
        loop {
            match conn.read_chunk().await? {
                ChunkEvent::Data(d) => body.extend_from_slice(&d),
                ChunkEvent::End(_) => break,
                ChunkEvent::Partial(_) | ChunkEvent::Eof => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "request body cut short",
                    ))
                }
            }
        }
    } else if let Some(n) =
        find_header(&headers, "content-length").and_then(|v| v.parse::<usize>().ok())
    {
        let (b, whole) = conn.read_up_to(n).await;
        if !whole {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "request body cut short",
            ));
        }
        body = b;
    }
    Ok(Some(Incoming {
        method,
        target,
        version,
        headers,
        raw_head,
        body,
        chunked,
    }))
}

/// Waits until the peer closes the connection (`true`) or `limit` passes (`false`).
/// Bytes that arrive meanwhile stay buffered for the next request.
async fn peer_closes_within(conn: &mut Conn<OwnedReadHalf>, limit: Option<Duration>) -> bool {
    let watch = async {
        loop {
            match conn.fill().await {
                Ok(0) | Err(_) => return true,
                Ok(_) => {
                    // A pipelined request: keep it buffered, stop watching for EOF.
                    std::future::pending::<()>().await;
                }
            }
        }
    };
    match limit {
        Some(d) => tokio::time::timeout(d, watch).await.unwrap_or(false),
        None => watch.await,
    }
}

fn chunk_frame(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

async fn serve_connection(
    mut conn: Conn<OwnedReadHalf>,
    mut wr: OwnedWriteHalf,
    state: Arc<State>,
    conn_id: u64,
) {
    loop {
        let req = match read_request(&mut conn, &mut wr).await {
            Ok(Some(r)) => r,
            Ok(None) | Err(_) => return,
        };
        let id = state.next_id.fetch_add(1, Ordering::SeqCst);
        let credential = ["authorization", "x-api-key", "x-goog-api-key"]
            .iter()
            .find_map(|h| find_header(&req.headers, h))
            .unwrap_or("");
        let decision = decide(&req.method, &req.target, &req.body, credential, id);
        let plan = decision.plan;
        let client_close = find_header(&req.headers, "connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
            || req.version == "HTTP/1.0";

        let (sent_pieces, partial): (&[Vec<u8>], &[u8]) = match &plan.delivery {
            Delivery::All => (&plan.pieces, &[]),
            Delivery::Hang => (&[], &[]),
            Delivery::Cut { pieces, partial } => (&plan.pieces[..*pieces], partial.as_slice()),
            Delivery::Stall { pieces } => (&plan.pieces[..*pieces], &[]),
        };
        let mut response_body: Vec<u8> = sent_pieces.concat();
        let mut response_chunks: Vec<Vec<u8>> = if plan.chunked {
            sent_pieces.to_vec()
        } else {
            Vec::new()
        };
        if !partial.is_empty() {
            // For a chunked cut the partial bytes start with a size line: record the payload.
            let payload = if plan.chunked {
                let nl = partial
                    .windows(2)
                    .position(|w| w == b"\r\n")
                    .map(|i| i + 2)
                    .unwrap_or(0);
                &partial[nl..]
            } else {
                partial
            };
            response_body.extend_from_slice(payload);
            if plan.chunked {
                response_chunks.push(payload.to_vec());
            }
        }
        let hang = matches!(plan.delivery, Delivery::Hang);
        let mut response_headers = plan.headers.clone();
        // Cut and stalled responses do not announce that they will end early.
        if client_close && !hang {
            response_headers.push(("connection".to_owned(), "close".to_owned()));
        }
        let index = state.record(RecordedRequest {
            id,
            connection: conn_id,
            method: req.method.clone(),
            path_and_query: req.target.clone(),
            version: req.version.clone(),
            headers: req.headers.clone(),
            raw_head: req.raw_head.clone(),
            body: req.body,
            body_was_chunked: req.chunked,
            provider: decision.endpoint.provider().name(),
            endpoint: decision.endpoint.name(),
            model: decision.model,
            stream: decision.stream,
            behaviours: decision.behaviours,
            fixture: plan.fixture.clone(),
            response_status: if hang { 0 } else { plan.status },
            response_headers: if hang {
                Vec::new()
            } else {
                response_headers.clone()
            },
            response_body: if hang { Vec::new() } else { response_body },
            response_chunks: if hang { Vec::new() } else { response_chunks },
            finished: false,
            peer_closed: false,
        });

        if hang {
            // Hold the socket, answer nothing; note when the peer gives up.
            if peer_closes_within(&mut conn, None).await {
                state.update(index, |r| r.peer_closed = true);
            }
            return;
        }

        let mut head = format!("HTTP/1.1 {} {}\r\n", plan.status, reason(plan.status));
        for (k, v) in &response_headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let written = async {
            wr.write_all(head.as_bytes()).await?;
            for (i, piece) in sent_pieces.iter().enumerate() {
                if let Some(d) = plan.delay {
                    if (i > 0 || !plan.chunked) && peer_closes_within(&mut conn, Some(d)).await {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::ConnectionReset,
                            "peer closed",
                        ));
                    }
                }
                if plan.chunked {
                    wr.write_all(&chunk_frame(piece)).await?;
                } else {
                    wr.write_all(piece).await?;
                }
            }
            if !partial.is_empty() {
                wr.write_all(partial).await?;
            }
            if plan.chunked && matches!(plan.delivery, Delivery::All) {
                wr.write_all(b"0\r\n\r\n").await?;
            }
            wr.flush().await
        }
        .await;
        if written.is_err() {
            state.update(index, |r| r.peer_closed = true);
            return;
        }
        state.update(index, |r| r.finished = true);
        match plan.delivery {
            Delivery::All if !client_close => continue,
            Delivery::Stall { .. } => {
                if peer_closes_within(&mut conn, None).await {
                    state.update(index, |r| r.peer_closed = true);
                }
                return;
            }
            // Cut: dropping both halves closes the socket without the last chunk.
            _ => return,
        }
    }
}
