//! Request bodies under every HTTP/1.1 framing, over a raw socket: a chunked body whose
//! size line arrives split across writes, or whose chunk extension is long, reaches the
//! upstream whole and gets the same answer as the same body in one write.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::http::{read_response, Conn, Response};
use common::{GatewayBuilder, MockUpstream, Upstream};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const BODY: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Count the tokens of this body, whatever its framing."}]}"#;

/// Gives the gateway time to read one write on its own before the next arrives. Not a
/// synchronisation: the answer must be the same whatever the reads hold, the pause only
/// makes the split reads this test is about likely.
const PACE: Duration = Duration::from_millis(50);

/// Sends the request head and then `writes`, each flushed on its own, and reads the answer.
async fn send_in_writes(addr: std::net::SocketAddr, key: &str, writes: &[Vec<u8>]) -> Response {
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (rd, mut wr) = stream.into_split();
    wr.write_all(head.as_bytes()).await.unwrap();
    for w in writes {
        tokio::time::sleep(PACE).await;
        wr.write_all(w).await.unwrap();
        wr.flush().await.unwrap();
    }
    let mut conn = Conn::new(rd);
    let r = tokio::time::timeout(Duration::from_secs(20), read_response(&mut conn, "POST"))
        .await
        .expect("an answer")
        .expect("a response");
    drop(wr);
    r
}

/// `data` as one HTTP/1.1 chunk with its size line (and `ext`, if any) and CRLF.
fn chunk(data: &str, ext: &str) -> String {
    format!("{:x}{ext}\r\n{data}\r\n", data.len())
}

#[tokio::test]
async fn chunked_bodies_read_the_same_whatever_the_writes_hold() {
    let mock = MockUpstream::start().await;
    let (gw, key) = GatewayBuilder::new()
        .only_upstream(Upstream::openai("o", &mock))
        .start_with_key("alice");
    let (a, b) = BODY.split_at(40);
    let last = "0\r\n\r\n";

    let one_write = send_in_writes(
        gw.proxy_addr,
        &key,
        &[format!("{}{}{last}", chunk(a, ""), chunk(b, "")).into_bytes()],
    )
    .await;
    assert_eq!(one_write.status, 200, "{}", one_write.text());
    assert_eq!(mock.last_request().unwrap().body, BODY.as_bytes());

    let size_a = format!("{:x}", a.len());
    let long_ext = format!(";name={}", "x".repeat(3000));
    let framings: Vec<(&str, Vec<String>)> = vec![
        (
            "the first size line split after its first digit",
            vec![
                size_a[..1].to_owned(),
                format!("{}\r\n{a}\r\n{}{last}", &size_a[1..], chunk(b, "")),
            ],
        ),
        (
            "the size line alone, then the data",
            vec![
                format!("{size_a}\r\n"),
                format!("{a}\r\n{}{last}", chunk(b, "")),
            ],
        ),
        (
            "a size line split before its CRLF, then the rest",
            vec![
                size_a.clone(),
                "\r".into(),
                format!("\n{a}\r\n{}{last}", chunk(b, "")),
            ],
        ),
        (
            "a long chunk extension",
            vec![format!("{}{}{last}", chunk(a, &long_ext), chunk(b, ""))],
        ),
        (
            "a long chunk extension split across writes",
            vec![
                format!("{size_a}{}", &long_ext[..1500]),
                format!("{}\r\n{a}\r\n{}{last}", &long_ext[1500..], chunk(b, "")),
            ],
        ),
        (
            "every chunk in a write of its own, the second size line split",
            vec![
                chunk(a, ""),
                format!("{:x}", b.len() / 16),
                format!("{:x}\r\n{b}\r\n", b.len() % 16),
                last.into(),
            ],
        ),
    ];
    for (what, writes) in framings {
        let writes: Vec<Vec<u8>> = writes.into_iter().map(String::into_bytes).collect();
        let r = send_in_writes(gw.proxy_addr, &key, &writes).await;
        assert_eq!(r.status, one_write.status, "{what}: {}", r.text());
        assert_eq!(r.body, one_write.body, "{what}");
        assert_eq!(
            String::from_utf8_lossy(&mock.last_request().unwrap().body),
            BODY,
            "{what}: the upstream got the whole body"
        );
    }
}
