//! A fast mock provider for load tests: answers every POST with a realistic OpenAI chat
//! completion (JSON, with usage) or, when the body asks for `"stream":true`, an SSE
//! stream of `TOLLGATE_MOCK_EVENTS` chunks (default 20) with a final usage chunk,
//! `TOLLGATE_MOCK_EVENT_DELAY_MS` apart (default 0: as fast as possible; a delay makes
//! slow streams, like a model generating). Keeps connections alive.
//! Usage: `mock-upstream 127.0.0.1:9999`.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const JSON: &str = r#"{"id":"chatcmpl-load","object":"chat.completion","created":1741569952,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I assist you today? This is a load-test answer of a realistic size.","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":19,"completion_tokens":18,"total_tokens":37,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}"#;

fn stream_body(events: usize) -> String {
    let mut s = String::new();
    for i in 0..events {
        s.push_str(&format!(
            "data: {{\"id\":\"chatcmpl-load\",\"object\":\"chat.completion.chunk\",\"created\":1741570283,\"model\":\"gpt-4o-mini\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"token{i} \"}},\"finish_reason\":null}}]}}\n\n"
        ));
    }
    s.push_str("data: {\"id\":\"chatcmpl-load\",\"object\":\"chat.completion.chunk\",\"created\":1741570283,\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":19,\"completion_tokens\":20,\"total_tokens\":39}}\n\ndata: [DONE]\n\n");
    s
}

async fn serve(
    mut sock: TcpStream,
    stream_events: &'static [String],
    delay: std::time::Duration,
) -> io::Result<()> {
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
        let stream = buf[end..total].windows(13).any(|w| w == b"\"stream\":true");
        buf.drain(..total);
        if stream {
            sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\nx-request-id: req_load\r\n\r\n").await?;
            for ev in stream_events {
                sock.write_all(format!("{:x}\r\n{ev}\r\n", ev.len()).as_bytes())
                    .await?;
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
            }
            sock.write_all(b"0\r\n\r\n").await?;
        } else {
            let head = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-request-id: req_load\r\n\r\n", JSON.len());
            sock.write_all(head.as_bytes()).await?;
            sock.write_all(JSON.as_bytes()).await?;
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9999".into());
    let events: usize = std::env::var("TOLLGATE_MOCK_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let delay = std::time::Duration::from_millis(
        std::env::var("TOLLGATE_MOCK_EVENT_DELAY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    );
    let body = stream_body(events);
    // one HTTP chunk per SSE event, as providers send them
    let parts: Vec<String> = body.split_inclusive("\n\n").map(str::to_owned).collect();
    let parts: &'static [String] = Box::leak(parts.into_boxed_slice());
    let listener = TcpListener::bind(&addr).await?;
    eprintln!("mock-upstream listening on {}", listener.local_addr()?);
    loop {
        let (sock, _) = listener.accept().await?;
        tokio::spawn(async move {
            let _ = serve(sock, parts, delay).await;
        });
    }
}
