//! The admin listener (CONTRACT §4): a separate Pingora service on its own port, loopback
//! by default. This module holds the service and its route table.

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::store::Store;

/// The admin application.
pub struct AdminApp {
    pub store: Store,
}

impl AdminApp {
    pub fn new(store: Store) -> Self {
        AdminApp { store }
    }
}

/// A JSON response with Content-Length (so keep-alive works).
pub fn json_response(status: u16, body: serde_json::Value) -> Response<Vec<u8>> {
    let bytes = body.to_string().into_bytes();
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("content-length", bytes.len())
        .body(bytes)
        .unwrap_or_else(|_| Response::new(Vec::new()))
}

fn error(status: u16, message: &str) -> Response<Vec<u8>> {
    json_response(status, serde_json::json!({"error": {"message": message}}))
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let (method, path) = (req.method.as_str().to_owned(), req.uri.path().to_owned());
        match (method.as_str(), path.as_str()) {
            ("GET", "/healthz") => json_response(200, serde_json::json!({"status": "ok"})),
            ("GET", "/readyz") => {
                let store = self.store.clone();
                match tokio::task::spawn_blocking(move || store.check()).await {
                    Ok(Ok(())) => json_response(200, serde_json::json!({"status": "ready"})),
                    Ok(Err(e)) => {
                        log::error!("readiness: store check failed: {e}");
                        error(503, "store unavailable")
                    }
                    Err(_) => error(503, "store check did not complete"),
                }
            }
            _ => error(404, &format!("no such admin endpoint: {method} {path}")),
        }
    }
}
