//! The admin listener (CONTRACT §4): a separate Pingora service on its own port, loopback
//! by default. `/metrics`, `/healthz` and `/readyz` are open; `/admin/*` needs the
//! gateway key of an admin user (`Authorization: Bearer`): 401 without one, 403 for a
//! member.

use std::sync::Arc;

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use tollgate_filters::auth::{client_credential, system_clock};
use tollgate_filters::{Dialect, KeyLookup, Role};

use crate::commands::usage::{report, usage_document};
use crate::keycache::KeyCache;
use crate::store::{GroupBy, Store};

/// The admin application.
pub struct AdminApp {
    pub store: Store,
    pub keys: Arc<KeyCache>,
}

impl AdminApp {
    pub fn new(store: Store, keys: Arc<KeyCache>) -> Self {
        AdminApp { store, keys }
    }

    /// `Ok(())` for an admin; the refusal otherwise.
    async fn authorize(&self, session: &ServerSession) -> Result<(), Response<Vec<u8>>> {
        let cred = client_credential(session.req_header(), Dialect::OpenAi)
            .ok_or_else(|| error(401, "missing credentials"))?;
        let p = self
            .keys
            .authenticate(&cred)
            .await
            .ok_or_else(|| error(401, "invalid credentials"))?;
        let now = system_clock();
        if p.revoked_at.is_some_and(|t| t <= now) || p.expires_at.is_some_and(|t| t <= now) {
            return Err(error(401, "credentials revoked or expired"));
        }
        if p.role != Role::Admin {
            return Err(error(403, "admin role required"));
        }
        Ok(())
    }

    async fn usage(&self, query: Option<&str>) -> Response<Vec<u8>> {
        let param = |name: &str| {
            query
                .and_then(|q| {
                    q.split('&')
                        .find_map(|kv| kv.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
                })
                .and_then(tollgate_filters::endpoint::percent_decode)
                .filter(|v| !v.is_empty())
        };
        let by_text = param("by").unwrap_or_else(|| "model".into());
        let Some(by) = GroupBy::parse(&by_text) else {
            return error(
                422,
                &format!("invalid by '{by_text}': use key, user, model, upstream or day"),
            );
        };
        let (since, until) = (param("since"), param("until"));
        let store = self.store.clone();
        let (s, u) = (since.clone(), until.clone());
        let rows =
            tokio::task::spawn_blocking(move || report(&store, by, s.as_deref(), u.as_deref()))
                .await;
        match rows {
            Ok(Ok(rows)) => json_response(
                200,
                usage_document(by, since.as_deref(), until.as_deref(), &rows),
            ),
            Ok(Err(crate::commands::CommandError::Invalid(m))) => error(422, &m),
            Ok(Err(e)) => {
                log::error!("admin usage: {e}");
                error(500, "store error")
            }
            Err(_) => error(500, "usage query did not complete"),
        }
    }
}

/// A JSON response with Content-Length (so keep-alive works).
pub fn json_response(status: u16, body: serde_json::Value) -> Response<Vec<u8>> {
    bytes_response(status, "application/json", body.to_string().into_bytes())
}

fn bytes_response(status: u16, content_type: &str, bytes: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
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
        let query = req.uri.query().map(str::to_owned);
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
            ("GET", "/metrics") => {
                bytes_response(200, "text/plain; version=0.0.4", crate::metrics::render())
            }
            (_, p) if p.starts_with("/admin/") => {
                if let Err(refused) = self.authorize(session).await {
                    return refused;
                }
                match (method.as_str(), p) {
                    ("GET", "/admin/usage") => self.usage(query.as_deref()).await,
                    _ => error(404, &format!("no such admin endpoint: {method} {path}")),
                }
            }
            _ => error(404, &format!("no such endpoint: {method} {path}")),
        }
    }
}
