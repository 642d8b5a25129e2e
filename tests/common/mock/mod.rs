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
//! | `POST /v1beta/models/{m}:countTokens` | `gemini/count_tokens.json` | (never streams) |
//!
//! Gemini's paths are served under `/v1/` as under `/v1beta/`.
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
//! | `held-stream` | sends the first stream event, then holds the rest until [`MockUpstream::release_held`] lets it go (or the peer leaves) |
//! | `stall-stream` | sends the header and the first half of the events, then goes silent, socket open |
//! | `cut-stream` | sends half of the events, then closes without the terminating chunk (JSON: half the `Content-Length` bytes) |
//! | `cut-mid-event` | as `cut-stream`, plus the first half of the next event inside a chunk whose size line promised all of it |
//! | `big-stream` | the stream's content deltas replaced by [`BIG_STREAM_EVENTS`] deltas of about 1 KiB each (about 5.5 MB) |
//! | `usage-missing` | every usage field removed (`usage`, `usageMetadata`, the OpenAI usage chunk) |
//! | `json-array` | a Gemini stream as `:streamGenerateContent` sends it without `alt=sse`: `gemini/stream_array.json` (`application/json`), one HTTP chunk per array element |
//! | `usage-null` | a chat or completions stream that asked for `include_usage` ends every other chunk's payload with `,"usage":null`, as OpenAI does |
//! | `echo` | a normal non-stream JSON answer even when the body asks to stream |
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
//!
//! Layout: this file holds the mock's handle ([`MockUpstream`]) and its records; each
//! dialect's knowledge (endpoints, fixtures, error envelope, headers, stream deltas) is
//! one module, [`openai`], [`anthropic`], [`gemini`], dispatched by the closed enum in
//! [`dialect`]; [`behaviour`] reads the words of the model name, [`answer`] plans the
//! response, [`server`] reads requests and delivers the plans, [`sse`] holds the fixture
//! and SSE helpers tests share. [`scripted`] is the other kind of upstream: one answered
//! by a closure, for what no model name can say (upstreams of one route that answer the
//! same model differently, health checks).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify, Semaphore};

use super::http::{
    find_all, find_header, request, request_streaming, Conn, Response, StreamingResponse,
};

mod answer;
mod anthropic;
mod behaviour;
mod dialect;
mod gemini;
mod openai;
pub mod scripted;
mod server;
mod sse;

pub use openai::is_usage_chunk as is_openai_usage_chunk;
pub use sse::{event_data, event_name, fixture, sse_events, strip_usage_chunk, FIXTURES_DIR};

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
    /// Permits for `held-stream` answers to go on past their first event.
    held: Semaphore,
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
            held: Semaphore::new(0),
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
                            let serve = server::serve_connection(Conn::new(rd), wr, st, conn_id);
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

    /// POSTs `body` to `path` on the mock itself (no gateway), with no other headers.
    pub async fn post(&self, path: &str, body: impl AsRef<[u8]>) -> Response {
        request(self.addr, "POST", path, &[], body.as_ref()).await
    }

    /// [`Self::post`], returning once the response header arrived.
    pub async fn post_streaming(&self, path: &str, body: impl AsRef<[u8]>) -> StreamingResponse {
        request_streaming(self.addr, "POST", path, &[], body.as_ref()).await
    }

    /// Lets `n` `held-stream` answers (held now or still to come) send the rest.
    pub fn release_held(&self, n: usize) {
        self.state.held.add_permits(n);
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
