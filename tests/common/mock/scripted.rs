//! An upstream answered by a closure, for what the fixture mock cannot express: the
//! upstreams of one route answering the same model differently, an upstream that changes
//! its mind during a test, health-check GETs. Each request is read whole (head and
//! `Content-Length` body), recorded, and answered with the closure's [`Reply`] and
//! `connection: close`.

use std::sync::{Arc, Mutex};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::common::http::{find_header, parse_head, Conn};

/// One request a scripted upstream received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// The request target (path and query).
    pub path: String,
    /// Names lowercased, values trimmed.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// What a scripted upstream answers: a JSON (or SSE) body with this status, and extra
/// headers; or bytes written as they are ([`Reply::raw`]).
pub struct Reply {
    status: u16,
    content_type: &'static str,
    body: String,
    headers: Vec<(String, String)>,
    raw: Option<Vec<u8>>,
}

impl Reply {
    pub fn json(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            body: body.into(),
            headers: Vec::new(),
            raw: None,
        }
    }

    /// Exactly these bytes (status line, fields and whatever follows), for answers no
    /// well-behaved upstream gives (a `101 Switching Protocols`).
    pub fn raw(bytes: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status: 0,
            content_type: "application/json",
            body: String::new(),
            headers: Vec::new(),
            raw: Some(bytes.into()),
        }
    }

    /// A whole server-sent-event stream (`text/event-stream`), sent at once.
    pub fn sse(body: impl Into<String>) -> Reply {
        Reply {
            content_type: "text/event-stream",
            ..Reply::json(200, body)
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    fn bytes(&self) -> Vec<u8> {
        if let Some(raw) = &self.raw {
            return raw.clone();
        }
        let mut head = format!(
            "HTTP/1.1 {} X\r\ncontent-type: {}\r\ncontent-length: {}\r\n",
            self.status,
            self.content_type,
            self.body.len()
        );
        for (k, v) in &self.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("connection: close\r\n\r\n");
        head.push_str(&self.body);
        head.into_bytes()
    }
}

/// A running scripted upstream; stops accepting when dropped.
pub struct Scripted {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Scripted {
    /// Binds `127.0.0.1:0` and answers every request with `answer(request)`.
    pub async fn start(answer: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (answer, record) = (Arc::new(answer), seen.clone());
        let accept = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let (answer, record) = (answer.clone(), record.clone());
                tokio::spawn(async move {
                    let (rd, mut wr) = sock.into_split();
                    let Some(req) = read_request(&mut Conn::new(rd)).await else {
                        return;
                    };
                    let reply = answer(&req);
                    // std Mutex: no `.await` happens under this lock.
                    record.lock().unwrap().push(req);
                    let _ = wr.write_all(&reply.bytes()).await;
                    let _ = wr.shutdown().await;
                });
            }
        });
        Scripted { url, seen, accept }
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        self.url.clone()
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// How many requests arrived so far.
    pub fn hits(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

/// Reads one request (head and `Content-Length` body); `None` if the peer left first.
async fn read_request(conn: &mut Conn<tokio::net::tcp::OwnedReadHalf>) -> Option<Seen> {
    let head = conn.read_head().await.ok()??;
    let (start, headers) = parse_head(&head).ok()?;
    let len = find_header(&headers, "content-length").map_or(0, |v| v.parse().unwrap());
    let (body, whole) = conn.read_up_to(len).await;
    whole.then(|| Seen {
        method: start.split(' ').next().unwrap_or("").to_owned(),
        path: start.split(' ').nth(1).unwrap_or("").to_owned(),
        headers,
        body,
    })
}
