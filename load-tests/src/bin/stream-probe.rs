//! Streaming measurements that `wrk` cannot make, against any OpenAI-style endpoint
//! (the mock directly, or Tollgate in front of it):
//!
//! - `stream-probe ttfb ADDR N`: N sequential streaming requests on fresh connections;
//!   prints the p50 and p99 time from sending the request to the first byte of the
//!   response body (the first SSE event).
//! - `stream-probe hold ADDR N PID`: N concurrent streaming requests (point it at a mock
//!   with `TOLLGATE_MOCK_EVENT_DELAY_MS` so they stay open); once all have their first
//!   event, prints the RSS of process PID, then waits for every stream to end and
//!   prints how many completed.
//! - `stream-probe big ADDR PID`: one streaming request read to the end (use a mock with
//!   a large `TOLLGATE_MOCK_EVENTS`); prints the body size and PID's RSS and peak RSS
//!   (VmHWM) before and after.
//!
//! - `stream-probe latency ADDR CONNS RATE SECONDS`: CONNS kept-alive connections sending
//!   non-stream requests at RATE per second in all (below saturation, so the numbers are
//!   per-request cost, not queueing); prints p50 and p99 of send-to-whole-response.
//!
//! `TG_KEY` in the environment adds `Authorization: Bearer $TG_KEY`; `PROBE_MODEL` sets
//! the model (default `gpt-4o-mini`), so one gateway can route each test to its mock.
//! `PROBE_DIALECT=anthropic` sends an Anthropic Messages request instead (`POST
//! /v1/messages`, the key as `x-api-key`): through Tollgate in front of an OpenAI-style
//! mock, a translated exchange.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn request_bytes(addr: SocketAddr) -> Vec<u8> {
    request_with(addr, true, true)
}

fn request_with(addr: SocketAddr, stream: bool, close: bool) -> Vec<u8> {
    let model = std::env::var("PROBE_MODEL").unwrap_or_else(|_| "gpt-4o-mini".into());
    let anthropic = std::env::var("PROBE_DIALECT").is_ok_and(|d| d == "anthropic");
    let max_tokens = if anthropic {
        r#""max_tokens":256,"#
    } else {
        ""
    };
    let body = format!(
        r#"{{"model":"{model}",{max_tokens}"messages":[{{"role":"user","content":"Say hello in one short sentence, please."}}],"stream":{stream}}}"#
    );
    let connection = if close { "connection: close\r\n" } else { "" };
    let key = std::env::var("TG_KEY").ok().filter(|k| !k.is_empty());
    let (path, auth) = match (anthropic, key) {
        (true, Some(k)) => (
            "/v1/messages",
            format!("x-api-key: {k}\r\nanthropic-version: 2023-06-01\r\n"),
        ),
        (true, None) => ("/v1/messages", String::new()),
        (false, Some(k)) => (
            "/v1/chat/completions",
            format!("authorization: Bearer {k}\r\n"),
        ),
        (false, None) => ("/v1/chat/completions", String::new()),
    };
    format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n{auth}content-length: {}\r\n{connection}\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// An open streaming request: the response head has been read.
struct Open {
    sock: TcpStream,
    /// Bytes read after the head so far.
    body: usize,
    /// The last bytes read, to see the chunked body's terminating `0\r\n\r\n` (the
    /// mock keeps connections alive whatever the request says).
    tail: Vec<u8>,
    /// Time from sending to the first body byte.
    ttfb: Duration,
}

/// Sends one streaming request and reads until the first body byte.
async fn open(addr: SocketAddr) -> io::Result<Open> {
    let mut sock = TcpStream::connect(addr).await?;
    sock.set_nodelay(true)?;
    let sent = Instant::now();
    sock.write_all(&request_bytes(addr)).await?;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed before the body",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            if !buf.starts_with(b"HTTP/1.1 200") {
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                return Err(io::Error::other(format!("not a 200: {head}")));
            }
            if buf.len() > end + 4 {
                let ttfb = sent.elapsed();
                return Ok(Open {
                    sock,
                    body: buf.len() - end - 4,
                    tail: buf[end + 4..].to_vec(),
                    ttfb,
                });
            }
        }
    }
}

/// Reads the rest of the response: to its last chunk, or until the server closes.
async fn finish(mut o: Open) -> io::Result<usize> {
    const LAST: &[u8] = b"0\r\n\r\n";
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        if o.tail.ends_with(LAST) {
            return Ok(o.body);
        }
        let n = o.sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(o.body);
        }
        o.body += n;
        o.tail.extend_from_slice(&chunk[..n]);
        let keep = o.tail.len().saturating_sub(LAST.len());
        o.tail.drain(..keep);
    }
}

fn rss_mib(pid: &str) -> f64 {
    status_mib(pid, "VmRSS:")
}

/// The process's peak RSS so far.
fn peak_mib(pid: &str) -> f64 {
    status_mib(pid, "VmHWM:")
}

fn status_mib(pid: &str, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// One whole response on a kept-alive connection (Content-Length or chunked); leftover
/// bytes stay in `buf`.
async fn read_response(sock: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<()> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            if !head.starts_with("http/1.1 200") {
                return Err(io::Error::other(format!("not a 200: {head}")));
            }
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            let done = match length {
                Some(n) => (buf.len() >= end + 4 + n).then_some(end + 4 + n),
                None => buf[end + 4..]
                    .windows(5)
                    .position(|w| w == b"0\r\n\r\n")
                    .map(|i| end + 4 + i + 5),
            };
            if let Some(total) = done {
                buf.drain(..total);
                return Ok(());
            }
        }
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed mid-response",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// `conns` kept-alive connections sending non-stream requests at `rate` per second in
/// all for `secs`; every request's time from its scheduled send to its whole response
/// (so a stall delays the requests behind it and is counted).
async fn paced_latencies(
    addr: SocketAddr,
    conns: usize,
    rate: f64,
    secs: f64,
) -> io::Result<Vec<Duration>> {
    let start = Instant::now() + Duration::from_millis(200);
    let per_conn = Duration::from_secs_f64(conns as f64 / rate);
    let total = Duration::from_secs_f64(secs);
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..conns {
        tasks.spawn(async move {
            let mut sock = TcpStream::connect(addr).await?;
            sock.set_nodelay(true)?;
            let req = request_with(addr, false, false);
            let mut buf = Vec::with_capacity(4096);
            let mut out = Vec::new();
            // Connections are staggered over one period.
            let mut due = start + per_conn.mul_f64(c as f64 / conns as f64);
            while due < start + total {
                tokio::time::sleep_until(due.into()).await;
                sock.write_all(&req).await?;
                read_response(&mut sock, &mut buf).await?;
                out.push(due.elapsed());
                due += per_conn;
            }
            Ok::<_, io::Error>(out)
        });
    }
    let mut all = Vec::new();
    while let Some(r) = tasks.join_next().await {
        all.extend(r.map_err(io::Error::other)??);
    }
    all.sort();
    Ok(all)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn usage() -> io::Error {
    io::Error::other(
        "usage: stream-probe ttfb ADDR N | hold ADDR N PID | big ADDR PID | latency ADDR CONNS RATE SECONDS",
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).cloned().ok_or_else(usage);
    let addr: SocketAddr = arg(1)?.parse().map_err(|_| usage())?;
    match arg(0)?.as_str() {
        "ttfb" => {
            let n: usize = arg(2)?.parse().map_err(|_| usage())?;
            let mut times = Vec::with_capacity(n);
            for _ in 0..n {
                let o = open(addr).await?;
                times.push(o.ttfb);
                finish(o).await?;
            }
            times.sort();
            println!(
                "ttfb n={n} p50={:.3}ms p99={:.3}ms",
                percentile(&times, 0.5).as_secs_f64() * 1e3,
                percentile(&times, 0.99).as_secs_f64() * 1e3
            );
        }
        "hold" => {
            let n: usize = arg(2)?.parse().map_err(|_| usage())?;
            let pid = arg(3)?;
            let before = rss_mib(&pid);
            let mut opening = tokio::task::JoinSet::new();
            for _ in 0..n {
                opening.spawn(open(addr));
            }
            let mut open_streams = Vec::with_capacity(n);
            let mut failed = 0usize;
            while let Some(r) = opening.join_next().await {
                match r {
                    Ok(Ok(o)) => open_streams.push(o),
                    _ => failed += 1,
                }
            }
            let during = rss_mib(&pid);
            println!(
                "hold n={n} open={} failed_to_open={failed} rss_before={before:.1}MiB rss_with_all_open={during:.1}MiB",
                open_streams.len()
            );
            let mut finishing = tokio::task::JoinSet::new();
            for o in open_streams {
                finishing.spawn(finish(o));
            }
            let mut completed = 0usize;
            while let Some(r) = finishing.join_next().await {
                if matches!(r, Ok(Ok(_))) {
                    completed += 1;
                }
            }
            println!(
                "hold completed={completed} rss_after={:.1}MiB",
                rss_mib(&pid)
            );
        }
        "latency" => {
            let conns: usize = arg(2)?.parse().map_err(|_| usage())?;
            let rate: f64 = arg(3)?.parse().map_err(|_| usage())?;
            let secs: f64 = arg(4)?.parse().map_err(|_| usage())?;
            let times = paced_latencies(addr, conns, rate, secs).await?;
            println!(
                "latency conns={conns} rate={rate}/s n={} p50={:.3}ms p99={:.3}ms",
                times.len(),
                percentile(&times, 0.5).as_secs_f64() * 1e3,
                percentile(&times, 0.99).as_secs_f64() * 1e3
            );
        }
        "big" => {
            let pid = arg(2)?;
            let (before, peak_before) = (rss_mib(&pid), peak_mib(&pid));
            let o = open(addr).await?;
            let bytes = finish(o).await?;
            println!(
                "big body={:.1}MB rss_before={before:.1}MiB rss_after={:.1}MiB peak_before={peak_before:.1}MiB peak_after={:.1}MiB",
                bytes as f64 / 1e6,
                rss_mib(&pid),
                peak_mib(&pid)
            );
        }
        _ => return Err(usage()),
    }
    Ok(())
}
