//! A fast mock provider for load tests. Every POST gets a realistic answer in the shape
//! its path asks for: `/v1/messages` an Anthropic Messages one, anything else an OpenAI
//! chat completion. Without `"stream":true` in the body the answer is JSON with usage.
//! With it, a stream, in one of two modes:
//! - per event (the default): `TOLLGATE_MOCK_EVENTS` content events (default 20) and the
//!   usage, one write per event, `TOLLGATE_MOCK_EVENT_DELAY_MS` apart (default 0: as fast
//!   as possible; a delay makes slow streams, like a model generating);
//! - bulk (`TOLLGATE_MOCK_BULK=1`): the whole stream in one write and one HTTP chunk, as a
//!   fast model or a cached answer arrives through a proxy that coalesces what it has.
//!   OpenAI: role chunk, `TOLLGATE_MOCK_EVENTS` content chunks (default 33), finish
//!   chunk, usage chunk, `[DONE]` (37 events with `[DONE]`, ~10.7 KB). Anthropic:
//!   message_start with usage, content_block_start, ping, the content_block_deltas,
//!   content_block_stop, message_delta with the output usage, message_stop (~4.8 KB).
//!   `TOLLGATE_MOCK_BULK=events`: the same single write, but each SSE event its own HTTP
//!   chunk, as a provider frames them (a proxy then forwards one piece per chunk).
//!
//! In the per-event mode each SSE event is one HTTP chunk. Every answer is built once
//! at start. Keeps connections alive. A gateway forwards only the headers it allows, so
//! the mode is the process's: run one mock per mode.
//! Usage: `mock-upstream 127.0.0.1:9999`.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const JSON: &str = r#"{"id":"chatcmpl-load","object":"chat.completion","created":1741569952,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I assist you today? This is a load-test answer of a realistic size.","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":19,"completion_tokens":18,"total_tokens":37,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}"#;

const ANTHROPIC_JSON: &str = r#"{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[{"type":"text","text":"Hello! How can I assist you today? This is a load-test answer of a realistic size."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":19,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0},"output_tokens":18,"service_tier":"standard"}}"#;

/// The words a streamed answer is made of, one per content event, round and round.
const WORDS: [&str; 12] = [
    "Hello", "!", " How", " can", " I", " help", " you", " today", "?", " This", " is", " fine",
];

const STREAM_HEAD: &str = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\nx-request-id: req_load\r\n\r\n";

/// The per-event OpenAI stream as it always was: content chunks, then usage and `[DONE]`.
fn paced_openai(events: usize) -> Vec<String> {
    let mut s = String::new();
    for i in 0..events {
        s.push_str(&format!(
            "data: {{\"id\":\"chatcmpl-load\",\"object\":\"chat.completion.chunk\",\"created\":1741570283,\"model\":\"gpt-4o-mini\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"token{i} \"}},\"finish_reason\":null}}]}}\n\n"
        ));
    }
    s.push_str("data: {\"id\":\"chatcmpl-load\",\"object\":\"chat.completion.chunk\",\"created\":1741570283,\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":19,\"completion_tokens\":20,\"total_tokens\":39}}\n\ndata: [DONE]\n\n");
    s.split_inclusive("\n\n").map(str::to_owned).collect()
}

/// An OpenAI chat-completions stream as the API sends it with usage asked for.
fn openai_events(content: usize) -> Vec<String> {
    let chunk = |delta: &str, finish: &str| {
        format!("data: {{\"id\":\"chatcmpl-BmKr7Tq3Zx9aLw2sE5yUiOpD1fGhJ\",\"object\":\"chat.completion.chunk\",\"created\":1750956010,\"model\":\"gpt-4o-mini-2024-07-18\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_34a54ae93c\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"logprobs\":null,\"finish_reason\":{finish}}}]}}\n\n")
    };
    let mut out = vec![chunk(
        r#"{"role":"assistant","content":"","refusal":null}"#,
        "null",
    )];
    for i in 0..content {
        let word = WORDS[i % WORDS.len()];
        out.push(chunk(&format!("{{\"content\":\"{word}\"}}"), "null"));
    }
    out.push(chunk("{}", "\"stop\""));
    out.push(format!("data: {{\"id\":\"chatcmpl-BmKr7Tq3Zx9aLw2sE5yUiOpD1fGhJ\",\"object\":\"chat.completion.chunk\",\"created\":1750956010,\"model\":\"gpt-4o-mini-2024-07-18\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_34a54ae93c\",\"choices\":[],\"usage\":{{\"prompt_tokens\":19,\"completion_tokens\":{content},\"total_tokens\":{},\"prompt_tokens_details\":{{\"cached_tokens\":0,\"audio_tokens\":0}},\"completion_tokens_details\":{{\"reasoning_tokens\":0,\"audio_tokens\":0,\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}}}}}\n\n", 19 + content));
    out.push("data: [DONE]\n\n".to_owned());
    out
}

/// An Anthropic Messages stream as the API sends it.
fn anthropic_events(content: usize) -> Vec<String> {
    let mut out = vec![
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01J8Zq4V6n2YkP3wT5sR7uXa\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5-20250929\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":19,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"cache_creation\":{\"ephemeral_5m_input_tokens\":0,\"ephemeral_1h_input_tokens\":0},\"output_tokens\":1,\"service_tier\":\"standard\"}}}\n\n".to_owned(),
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n".to_owned(),
        "event: ping\ndata: {\"type\": \"ping\"}\n\n".to_owned(),
    ];
    for i in 0..content {
        let word = WORDS[i % WORDS.len()];
        out.push(format!("event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{word}\"}}}}\n\n"));
    }
    out.push(
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
            .to_owned(),
    );
    out.push(format!("event: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"end_turn\",\"stop_sequence\":null}},\"usage\":{{\"output_tokens\":{content}}}}}\n\n"));
    out.push("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n".to_owned());
    out
}

/// One SSE event framed as one HTTP chunk.
fn http_chunk(event: &str) -> Vec<u8> {
    format!("{:x}\r\n{event}\r\n", event.len()).into_bytes()
}

/// A JSON response's head and body, written in two writes as the mock always did.
fn json_response(body: &'static str) -> (Vec<u8>, &'static str) {
    let head = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-request-id: req_load\r\n\r\n", body.len());
    (head.into_bytes(), body)
}

/// How a stream goes out: all in one write, or one write per event.
enum Stream {
    Bulk(Vec<u8>),
    Events(Vec<Vec<u8>>),
}

impl Stream {
    fn new(events: &[String], bulk: bool, one_chunk: bool) -> Self {
        let chunks: Vec<Vec<u8>> = if one_chunk {
            vec![http_chunk(&events.concat())]
        } else {
            events.iter().map(|e| http_chunk(e)).collect()
        };
        if bulk {
            let mut all = STREAM_HEAD.as_bytes().to_vec();
            chunks.iter().for_each(|c| all.extend_from_slice(c));
            all.extend_from_slice(b"0\r\n\r\n");
            Stream::Bulk(all)
        } else {
            Stream::Events(chunks)
        }
    }
}

/// Everything the mock answers, built once.
struct Answers {
    openai_json: (Vec<u8>, &'static str),
    anthropic_json: (Vec<u8>, &'static str),
    openai_stream: Stream,
    anthropic_stream: Stream,
    delay: std::time::Duration,
}

async fn send_stream(
    sock: &mut TcpStream,
    stream: &Stream,
    delay: std::time::Duration,
) -> io::Result<()> {
    match stream {
        Stream::Bulk(all) => sock.write_all(all).await,
        Stream::Events(chunks) => {
            sock.write_all(STREAM_HEAD.as_bytes()).await?;
            for c in chunks {
                sock.write_all(c).await?;
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
            }
            sock.write_all(b"0\r\n\r\n").await
        }
    }
}

async fn serve(mut sock: TcpStream, answers: &'static Answers) -> io::Result<()> {
    sock.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(8192);
    let mut chunk = [0u8; 16384];
    loop {
        // one request: head, then Content-Length bytes
        let (end, total) = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let cl = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                break (end, end + 4 + cl);
            }
            let n = sock.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        while buf.len() < total {
            let n = sock.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let anthropic = buf
            .split(|&b| b == b' ')
            .nth(1)
            .is_some_and(|path| path.starts_with(b"/v1/messages"));
        let stream = buf[end..total].windows(13).any(|w| w == b"\"stream\":true");
        buf.drain(..total);
        match (stream, anthropic) {
            (true, false) => send_stream(&mut sock, &answers.openai_stream, answers.delay).await?,
            (true, true) => {
                send_stream(&mut sock, &answers.anthropic_stream, answers.delay).await?
            }
            (false, anthropic) => {
                let (head, body) = if anthropic {
                    &answers.anthropic_json
                } else {
                    &answers.openai_json
                };
                sock.write_all(head).await?;
                sock.write_all(body.as_bytes()).await?;
            }
        }
    }
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9999".into());
    let bulk_var = std::env::var("TOLLGATE_MOCK_BULK").unwrap_or_default();
    let one_chunk = bulk_var == "1";
    let bulk = one_chunk || bulk_var == "events";
    let events = env_number("TOLLGATE_MOCK_EVENTS").map(|n| n as usize);
    let delay =
        std::time::Duration::from_millis(env_number("TOLLGATE_MOCK_EVENT_DELAY_MS").unwrap_or(0));
    let (openai, anthropic) = if bulk {
        let n = events.unwrap_or(33);
        (openai_events(n), anthropic_events(n))
    } else {
        let n = events.unwrap_or(20);
        (paced_openai(n), anthropic_events(n))
    };
    let answers: &'static Answers = Box::leak(Box::new(Answers {
        openai_json: json_response(JSON),
        anthropic_json: json_response(ANTHROPIC_JSON),
        openai_stream: Stream::new(&openai, bulk, one_chunk),
        anthropic_stream: Stream::new(&anthropic, bulk, one_chunk),
        delay,
    }));
    let listener = TcpListener::bind(&addr).await?;
    let mode = if bulk { "bulk" } else { "per-event" };
    eprintln!(
        "mock-upstream listening on {} ({mode} streams)",
        listener.local_addr()?
    );
    loop {
        let (sock, _) = listener.accept().await?;
        tokio::spawn(async move {
            let _ = serve(sock, answers).await;
        });
    }
}
