//! The admin listener's HTTP loop: what Pingora's `HttpServer` does for a `ServeHttp`
//! app (read the request, answer with [`AdminApp`]'s response, keep the connection),
//! plus one thing it cannot: a body streamed from a file ([`file_response`]), for
//! `GET /admin/backup`, whose snapshot may be larger than the memory it would take to
//! answer it in one piece.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::apps::{HttpPersistentSettings, HttpServerApp, HttpServerOptions, ReusedHttpStream};
use pingora::http::ResponseHeader;
use pingora::protocols::http::ServerSession;
use pingora::server::ShutdownWatch;
use tokio::io::AsyncReadExt;

use super::AdminApp;

/// Bytes read from the file per body write.
const CHUNK: usize = 256 * 1024;

/// The file a response's body is streamed from, carried in the response's extensions
/// (which must be `Clone`, hence the shared slot).
#[derive(Clone)]
struct FileBody(Arc<Mutex<Option<std::fs::File>>>);

/// A 200 `application/octet-stream` download of `file` (`size` bytes, read from its
/// current position), saved by browsers and `curl -OJ` as `filename`.
pub(crate) fn file_response(file: std::fs::File, size: u64, filename: &str) -> Response<Vec<u8>> {
    let mut resp = Response::builder()
        .status(200)
        .header("content-type", "application/octet-stream")
        .header("content-length", size)
        .header(
            "content-disposition",
            format!("attachment; filename=\"{filename}\""),
        )
        .header("cache-control", "no-store")
        .body(Vec::new())
        .unwrap_or_else(|_| Response::new(Vec::new()));
    resp.extensions_mut()
        .insert(FileBody(Arc::new(Mutex::new(Some(file)))));
    resp
}

/// The admin application as Pingora's HTTP server app, with the listener's HTTP options
/// (HTTP/2's idle timeout when TLS negotiates h2).
pub struct AdminServer {
    app: AdminApp,
    options: HttpServerOptions,
}

impl AdminServer {
    pub fn new(app: AdminApp, options: HttpServerOptions) -> Self {
        Self { app, options }
    }
}

#[async_trait]
impl HttpServerApp for AdminServer {
    async fn process_new_http(
        self: &Arc<Self>,
        mut http: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        match http.read_request().await {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => {
                log::debug!("admin: cannot read a request: {e}");
                return None;
            }
        }
        http.set_keepalive(if *shutdown.borrow() { None } else { Some(60) });
        let (mut parts, body) = self.app.response(&mut http).await.into_parts();
        let file = parts
            .extensions
            .remove::<FileBody>()
            .and_then(|f| f.0.lock().ok()?.take());
        let header: ResponseHeader = parts.into();
        let sent = match http.write_response_header(Box::new(header)).await {
            Err(e) => Err(e),
            Ok(()) => match file {
                Some(f) => send_file(&mut http, f).await,
                None if body.is_empty() => Ok(()),
                None => http.write_response_body(body.into(), true).await,
            },
        };
        if let Err(e) = sent {
            // The client has part of a response at most: never reuse the connection.
            log::debug!("admin: response not sent whole: {e}");
            return None;
        }
        let settings = HttpPersistentSettings::for_session(&http);
        match http.finish().await {
            Ok(stream) => stream.map(|s| ReusedHttpStream::from_reusable_stream(s, settings)),
            Err(e) => {
                log::debug!("admin: cannot finish a response: {e}");
                None
            }
        }
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        Some(&self.options)
    }
}

/// Streams `file` to its end as the response body.
async fn send_file(http: &mut ServerSession, file: std::fs::File) -> pingora::Result<()> {
    let mut file = tokio::fs::File::from_std(file);
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = file.read(&mut buf).await.map_err(|e| {
            pingora::Error::because(pingora::ErrorType::ReadError, "reading the body file", e)
        })?;
        if n == 0 {
            return http.write_response_body(Bytes::new(), true).await;
        }
        http.write_response_body(Bytes::copy_from_slice(&buf[..n]), false)
            .await?;
    }
}
