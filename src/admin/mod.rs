//! The admin listener (README "Admin listener"): a separate Pingora service on its own
//! port, loopback by default. `/metrics`, `/healthz` and `/readyz` are open;
//! `POST /admin/login` takes a password; every other `/admin/*` path needs
//! `Authorization: Bearer` with the gateway key of an admin user or a session token from
//! the login: 401 without one, 403 for a member.
//!
//! This file routes and holds the request/response helpers; each resource has its own
//! module. The web dashboard ([`ui`], under `/ui/`) is routed here too. Every response is JSON (`{"error":{"message"}}` for errors) with a
//! Content-Length, so keep-alive works; request bodies are read here, with a cap.

mod audit;
pub mod auth;
mod backup;
mod keys;
mod login_limit;
mod prices;
mod provider_keys;
pub mod serve;
mod sessions;
mod ui;
mod usage;
mod users;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde::de::DeserializeOwned;
use tollgate_filters::clock::system_clock;

use crate::changes::{Changes, Publisher};
use crate::commands::CommandError;
use crate::config::live::LiveConfig;
use crate::keys::KeyCache;
use crate::store::secrets::KeyHasher;
use crate::store::secrets::ProviderKeyCrypto;
use crate::store::{AuditRow, Store, StoreError};

pub use sessions::SessionSweeper;

/// The largest request body accepted (the biggest legitimate one, a provider key, is
/// 8 KiB at most).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Time allowed to receive a whole request body, so a slow client cannot hold the
/// admin listener's single thread's attention for long.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// The response header carrying a fresh session token (sliding refresh).
pub const SESSION_TOKEN_HEADER: &str = "x-tollgate-session-token";

/// What the admin application needs, built by `tollgate serve`.
pub struct AdminDeps {
    pub store: Store,
    pub keys: Arc<KeyCache>,
    /// HMAC of new gateway keys.
    pub hasher: KeyHasher,
    /// Encryption of provider keys set through the API.
    pub crypto: ProviderKeyCrypto,
    /// `MasterKey::subkey("admin-session")`: signs session tokens.
    pub session_key: [u8; 32],
    pub session_ttl: Duration,
    /// The config in force: provider keys are only for its upstreams.
    pub live: LiveConfig,
    /// Puts a change in force here and on the other gateways of the store.
    pub changes: Arc<Publisher>,
    /// `admin.dashboard`: the web dashboard under `/ui/`.
    pub dashboard: bool,
    /// The admin listener has TLS (the dashboard's cookie is then `Secure`).
    pub tls: bool,
}

/// The admin application.
pub struct AdminApp {
    store: Store,
    keys: Arc<KeyCache>,
    hasher: KeyHasher,
    crypto: ProviderKeyCrypto,
    live: LiveConfig,
    changes: Arc<Publisher>,
    sessions: auth::SessionSigner,
    login_limiter: login_limit::LoginLimiter,
    /// An argon2id hash of a random password, verified for unknown users so that a
    /// failed login takes the same time whether or not the user exists.
    dummy_hash: String,
    ui: ui::UiState,
}

impl AdminApp {
    pub fn new(deps: AdminDeps) -> Self {
        AdminApp {
            store: deps.store,
            keys: deps.keys,
            hasher: deps.hasher,
            crypto: deps.crypto,
            live: deps.live,
            changes: deps.changes,
            sessions: auth::SessionSigner::new(deps.session_key, deps.session_ttl),
            login_limiter: login_limit::LoginLimiter::new(),
            dummy_hash: auth::dummy_password_hash(),
            ui: ui::UiState::new(deps.dashboard, deps.tls, &deps.session_key),
        }
    }

    /// Appends an audit entry. Best effort: the action it records has already happened
    /// and cannot be undone, so a failure here is logged, not returned.
    async fn audit(
        &self,
        req: &Req,
        actor: &str,
        action: &str,
        target: Option<&str>,
        detail: serde_json::Value,
    ) {
        let entry = AuditRow {
            id: 0,
            ts: system_clock(),
            actor: actor.to_owned(),
            action: action.to_owned(),
            target: target.map(str::to_owned),
            source: req.source.map(|ip| ip.to_string()),
            detail,
        };
        log::info!(
            "admin: {actor} {action} {} from {}",
            target.unwrap_or("-"),
            entry.source.as_deref().unwrap_or("-")
        );
        let store = self.store.clone();
        match blocking(move || store.append_audit(&entry)).await {
            Ok(()) => {}
            Err(e) => log::error!("audit: cannot record {action}: {}", e.message),
        }
    }

    /// Re-reads the gateway keys now, here and on every other gateway of the store, so
    /// a change through the API holds from the very next request everywhere.
    async fn refresh_keys(&self) {
        self.changes.publish(Changes::KEYS).await;
    }

    /// Same for provider keys.
    async fn refresh_provider_keys(&self) {
        self.changes.publish(Changes::PROVIDER_KEYS).await;
    }

    /// Routes one request; errors become JSON error responses in [`ServeHttp::response`].
    async fn handle(
        &self,
        session: &mut ServerSession,
        req: &Req,
        refreshed: &mut Option<String>,
    ) -> Result<Response<Vec<u8>>, ApiError> {
        let not_found =
            || ApiError::not_found(format!("no such endpoint: {} {}", req.method, req.path));
        let Some(route) = Route::of(&req.path) else {
            // Tell nobody unauthenticated which admin paths exist.
            if req.path.starts_with("/admin/") {
                let caller = self.authorize(session, true).await?;
                *refreshed = caller.refreshed;
            }
            return Err(not_found());
        };
        let allowed = route.methods();
        let check_method = || {
            if allowed.contains(&req.method.as_str()) {
                Ok(())
            } else {
                Err(ApiError::method_not_allowed(allowed))
            }
        };
        if !route.needs_auth() {
            check_method()?;
            return match route {
                Route::Healthz => Ok(json_response(200, serde_json::json!({"status": "ok"}))),
                Route::Readyz => Ok(self.readyz().await),
                Route::Metrics => Ok(bytes_response(
                    200,
                    "text/plain; version=0.0.4",
                    crate::metrics::render(),
                )),
                _ => self.login(session, req).await,
            };
        }
        // Authenticate before telling anything about the path, even whether its
        // method exists.
        let allow_refresh = !matches!(route, Route::Logout);
        let caller = self.authorize(session, allow_refresh).await?;
        *refreshed = caller.refreshed.clone();
        check_method()?;
        let m = req.method.as_str();
        match route {
            Route::Logout => self.logout(req, &caller).await,
            Route::Users if m == "GET" => self.list_users().await,
            Route::Users => self.create_user(session, req, &caller).await,
            Route::User(id) if m == "PATCH" => self.update_user(session, req, &caller, &id).await,
            Route::User(id) => self.delete_user(req, &caller, &id).await,
            Route::Keys if m == "GET" => self.list_keys(req).await,
            Route::Keys => self.create_key(session, req, &caller).await,
            Route::Key(id) if m == "PATCH" => self.update_key(session, req, &caller, &id).await,
            Route::Key(id) => self.revoke_key(req, &caller, &id).await,
            Route::ProviderKey(up) => match m {
                "GET" => self.provider_key_status(req, &up).await,
                "PUT" => self.set_provider_key(session, req, &caller, &up).await,
                _ => self.delete_provider_key(req, &caller, &up).await,
            },
            Route::Prices => Ok(self.list_prices()),
            Route::Price(pattern) if m == "PUT" => {
                self.set_price(session, req, &caller, &pattern).await
            }
            Route::Price(pattern) => self.delete_price(req, &caller, &pattern).await,
            Route::Usage => self.usage(req).await,
            Route::UsagePrune => self.prune_usage(session, req, &caller).await,
            Route::Backup => self.backup(req, &caller).await,
            Route::Audit => self.list_audit(req).await,
            Route::Healthz | Route::Readyz | Route::Metrics | Route::Login => {
                Err(ApiError::internal("route table mismatch"))
            }
        }
    }

    async fn readyz(&self) -> Response<Vec<u8>> {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.check()).await {
            Ok(Ok(())) => json_response(200, serde_json::json!({"status": "ready"})),
            Ok(Err(e)) => {
                log::error!("readiness: store check failed: {e}");
                ApiError::new(503, "store unavailable").into_response()
            }
            Err(_) => ApiError::new(503, "store check did not complete").into_response(),
        }
    }
}

/// The parts of a request that handlers look at.
#[derive(Clone)]
pub(crate) struct Req {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// The client's IP address, for the audit log and the login rate limit.
    pub source: Option<IpAddr>,
}

impl Req {
    /// A query parameter, percent-decoded; `None` when absent or empty.
    pub fn param(&self, name: &str) -> Option<String> {
        self.query
            .as_deref()?
            .split('&')
            .find_map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (k == name).then_some(v)
            })
            .and_then(tollgate_filters::endpoint::percent_decode)
            .map(std::borrow::Cow::into_owned)
            .filter(|v| !v.is_empty())
    }
}

/// The admin endpoints, by path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Healthz,
    Readyz,
    Metrics,
    Login,
    Logout,
    Users,
    User(String),
    Keys,
    Key(String),
    ProviderKey(String),
    Prices,
    /// A model pattern (`*` as it is or as `%2A`).
    Price(String),
    Usage,
    UsagePrune,
    Backup,
    Audit,
}

impl Route {
    fn of(path: &str) -> Option<Route> {
        // One path segment after a prefix, percent-decoded; no further slashes.
        let item = |prefix: &str| {
            path.strip_prefix(prefix)
                .filter(|rest| !rest.is_empty() && !rest.contains('/'))
                .and_then(tollgate_filters::endpoint::percent_decode)
                .map(std::borrow::Cow::into_owned)
        };
        Some(match path {
            "/healthz" => Route::Healthz,
            "/readyz" => Route::Readyz,
            "/metrics" => Route::Metrics,
            "/admin/login" => Route::Login,
            "/admin/logout" => Route::Logout,
            "/admin/users" => Route::Users,
            "/admin/keys" => Route::Keys,
            "/admin/usage" => Route::Usage,
            "/admin/usage/prune" => Route::UsagePrune,
            "/admin/backup" => Route::Backup,
            "/admin/prices" => Route::Prices,
            "/admin/audit" => Route::Audit,
            _ => {
                if let Some(id) = item("/admin/users/") {
                    Route::User(id)
                } else if let Some(id) = item("/admin/keys/") {
                    Route::Key(id)
                } else if let Some(up) = item("/admin/provider-keys/") {
                    Route::ProviderKey(up)
                } else if let Some(pattern) = item("/admin/prices/") {
                    Route::Price(pattern)
                } else {
                    return None;
                }
            }
        })
    }

    fn methods(&self) -> &'static [&'static str] {
        match self {
            Route::Healthz
            | Route::Readyz
            | Route::Metrics
            | Route::Usage
            | Route::Audit
            | Route::Backup
            | Route::Prices => &["GET"],
            Route::Price(_) => &["PUT", "DELETE"],
            Route::Login | Route::Logout | Route::UsagePrune => &["POST"],
            Route::Users | Route::Keys => &["GET", "POST"],
            Route::User(_) | Route::Key(_) => &["PATCH", "DELETE"],
            Route::ProviderKey(_) => &["GET", "PUT", "DELETE"],
        }
    }

    fn needs_auth(&self) -> bool {
        !matches!(
            self,
            Route::Healthz | Route::Readyz | Route::Metrics | Route::Login
        )
    }
}

/// A refusal: status, message, and any header it needs (`www-authenticate`,
/// `retry-after`, `allow`).
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: u16,
    pub message: String,
    pub headers: Vec<(&'static str, String)>,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        let mut e = ApiError::new(401, message);
        e.headers.push(("www-authenticate", "Bearer".to_owned()));
        e
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::new(422, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(404, message)
    }

    fn method_not_allowed(allowed: &[&str]) -> Self {
        let mut e = ApiError::new(
            405,
            format!("method not allowed; use {}", allowed.join(" or ")),
        );
        e.headers.push(("allow", allowed.join(", ")));
        e
    }

    /// A failure of ours, not the client's: logged in full, answered without detail.
    pub fn internal(what: &str) -> Self {
        log::error!("admin: {what}");
        ApiError::new(500, "internal error")
    }

    fn into_response(self) -> Response<Vec<u8>> {
        let mut resp = json_response(
            self.status,
            serde_json::json!({"error": {"message": self.message}}),
        );
        for (name, value) in self.headers {
            if let Ok(v) = http::HeaderValue::from_str(&value) {
                resp.headers_mut().insert(name, v);
            }
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::DuplicateUser(_) => ApiError::new(409, e.to_string()),
            StoreError::UnknownUser(_) | StoreError::UnknownKey(_) => {
                ApiError::not_found(e.to_string())
            }
            StoreError::BadUserName(_) | StoreError::Invalid(_) => ApiError::invalid(e.to_string()),
            other => ApiError::internal(&format!("store: {other}")),
        }
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Invalid(m) => ApiError::invalid(m),
            CommandError::Store(s) => s.into(),
            other => ApiError::internal(&other.to_string()),
        }
    }
}

/// Runs blocking work (SQLite, argon2) off the async threads.
pub(crate) async fn blocking<T, E>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    E: Send + 'static,
    ApiError: From<E>,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(ApiError::from),
        Err(e) => Err(ApiError::internal(&format!("blocking task failed: {e}"))),
    }
}

/// The request body, at most [`MAX_BODY_BYTES`] (413 past it).
pub(crate) async fn read_body(session: &mut ServerSession) -> Result<Vec<u8>, ApiError> {
    let too_large = || {
        ApiError::new(
            413,
            format!("request body larger than {MAX_BODY_BYTES} bytes"),
        )
    };
    let declared = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let read = async {
        let mut body = Vec::new();
        while let Some(chunk) = session
            .read_request_body()
            .await
            .map_err(|_| ApiError::new(400, "cannot read the request body"))?
        {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    };
    tokio::time::timeout(BODY_TIMEOUT, read)
        .await
        .unwrap_or_else(|_| Err(ApiError::new(408, "request body not received in time")))
}

/// Parses a JSON body into `T` (whose fields deny unknown ones): 422 with serde's
/// message, which names the field but never echoes a value it did not expect.
pub(crate) fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}")))
}

/// [`parse_json`] for bodies that carry a secret (password, provider key): serde's
/// messages can quote a value ("invalid type: string \"hunter2\""), so only those
/// naming a field are passed on.
pub(crate) fn parse_secret_json<T: DeserializeOwned>(
    body: &[u8],
    expected: &str,
) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        let text = e.to_string();
        let safe = text.starts_with("unknown field") || text.starts_with("missing field");
        if safe {
            ApiError::invalid(format!("invalid JSON body: {text}"))
        } else {
            ApiError::invalid(format!("invalid JSON body: expected {expected}"))
        }
    })
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
        // Responses hold user lists, key metadata and fresh secrets: never cached.
        .header("cache-control", "no-store")
        .body(bytes)
        .unwrap_or_else(|_| Response::new(Vec::new()))
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let head = session.req_header();
        let req = Req {
            method: head.method.as_str().to_owned(),
            path: head.uri.path().to_owned(),
            query: head.uri.query().map(str::to_owned),
            source: session
                .client_addr()
                .and_then(|a| a.as_inet())
                .map(|a| a.ip()),
        };
        if self.ui.serves(&req.path) {
            let resp = self.ui_response(session, &req).await;
            if !session.is_body_done() {
                session.set_keepalive(None);
            }
            return resp;
        }
        let mut refreshed = None;
        let mut resp = self
            .handle(session, &req, &mut refreshed)
            .await
            .unwrap_or_else(ApiError::into_response);
        if let Some(token) = refreshed.and_then(|t| http::HeaderValue::from_str(&t).ok()) {
            resp.headers_mut().insert(SESSION_TOKEN_HEADER, token);
        }
        // A body left unread (refused as too large, or sent where none is expected)
        // would have to be drained before the next request: close instead.
        if !session.is_body_done() {
            session.set_keepalive(None);
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(Route::of("/admin/users"), Some(Route::Users));
        assert_eq!(Route::of("/admin/users/7"), Some(Route::User("7".into())));
        assert_eq!(Route::of("/admin/users/"), None);
        assert_eq!(Route::of("/admin/users/7/x"), None);
        assert_eq!(
            Route::of("/admin/provider-keys/open%20ai"),
            Some(Route::ProviderKey("open ai".into()))
        );
        assert_eq!(Route::of("/admin/usage/prune"), Some(Route::UsagePrune));
        assert_eq!(Route::of("/admin/backup"), Some(Route::Backup));
        assert_eq!(Route::of("/admin/nope"), None);
        assert_eq!(Route::of("/admin/prices"), Some(Route::Prices));
        for path in [
            "/admin/prices/claude-sonnet-4*",
            "/admin/prices/claude-sonnet-4%2A",
        ] {
            assert_eq!(
                Route::of(path),
                Some(Route::Price("claude-sonnet-4*".into())),
                "{path}"
            );
        }
        assert_eq!(Route::of("/admin/prices/a/b"), None);
        assert_eq!(Route::of("/healthz/"), None);
        assert!(!Route::Login.needs_auth() && Route::Logout.needs_auth());
        assert_eq!(Route::Key("x".into()).methods(), ["PATCH", "DELETE"]);
    }

    #[test]
    fn secret_bodies_are_not_echoed_in_errors() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct B {
            password: String,
        }
        let e =
            parse_secret_json::<B>(br#"{"password": ["hunter2"]}"#, "{\"password\"}").unwrap_err();
        assert!(!e.message.contains("hunter2"), "{}", e.message);
        let e = parse_secret_json::<B>(br#"{"pasword": "hunter2"}"#, "x").unwrap_err();
        assert!(
            e.message.contains("unknown field `pasword`"),
            "{}",
            e.message
        );
        assert!(!e.message.contains("hunter2"));
        let e = parse_secret_json::<B>(b"{\"password\": \"hunter2", "x").unwrap_err();
        assert_eq!(e.status, 422);
        assert!(!e.message.contains("hunter2"));
    }
}
