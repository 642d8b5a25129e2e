//! The web dashboard (README "Dashboard"): server-rendered pages on the admin listener
//! under `/ui/` (`GET /` redirects there), off with `admin.dashboard: false`.
//!
//! Pages are maud templates, compiled into the binary and escaping every value by
//! default; the two assets (a stylesheet, a few lines of script that the pages do not
//! need to work) are embedded too. Pages read the same store queries and change things
//! through the same functions as the admin API, so a key revoked here is audited and
//! refused from the next request exactly as through `DELETE /admin/keys/{id}`. Usage
//! figures come from the per-day rollups (`store::rollups`), never from a scan of the
//! events; the request log pages through the events by index (`store::request_log`).
//!
//! Every request but the sign-in page and the assets needs a signed-in viewer
//! ([`viewer`]); members see their own data only, and admin pages answer them 403.
//! Every POST passes the CSRF check before its handler runs.

mod assets;
mod audit;
mod chart;
mod http;
mod keys;
mod layout;
mod login;
mod overview;
mod pricing;
mod provider_keys;
mod requests;
mod system;
mod upstreams;
mod usage;
mod users;
mod viewer;

use std::time::Instant;

use ::http::Response;
use maud::html;
use pingora::protocols::http::ServerSession;

use self::http::{html, redirect, session_cookie, set_cookie, Form};
use self::layout::{bare_page, flash, page, Nav};
use self::viewer::Viewer;
use super::{AdminApp, ApiError, Req};

/// What the dashboard keeps beside the admin API's state.
pub(crate) struct UiState {
    /// `admin.dashboard`
    pub enabled: bool,
    /// The admin listener has TLS: the cookie is `Secure` and origins are `https://`.
    pub tls: bool,
    /// Derived from the session-signing key ([`viewer::csrf_key`]).
    pub csrf_key: [u8; 32],
    /// For the system page's uptime.
    pub started: Instant,
}

impl UiState {
    pub fn new(enabled: bool, tls: bool, session_key: &[u8; 32]) -> Self {
        UiState {
            enabled,
            tls,
            csrf_key: viewer::csrf_key(session_key),
            started: Instant::now(),
        }
    }

    /// Whether the dashboard answers `path`.
    pub fn serves(&self, path: &str) -> bool {
        self.enabled && (path == "/" || path == "/ui" || path.starts_with("/ui/"))
    }
}

/// The dashboard's pages and actions, by path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Page {
    Overview,
    Usage,
    Requests,
    Keys,
    Key(String),
    KeyRevoke(String),
    Users,
    User(String),
    UserDelete(String),
    Pricing,
    PriceDelete,
    ProviderKeys,
    ProviderKeyDelete,
    Upstreams,
    Audit,
    System,
    Backup,
    Logout,
}

impl Page {
    fn of(path: &str) -> Option<Page> {
        let item = |prefix: &str, suffix: &str| {
            path.strip_prefix(prefix)
                .and_then(|rest| rest.strip_suffix(suffix))
                .filter(|id| !id.is_empty() && !id.contains('/'))
                .and_then(tollgate_filters::endpoint::percent_decode)
                .map(std::borrow::Cow::into_owned)
        };
        Some(match path {
            "/ui/" => Page::Overview,
            "/ui/usage" => Page::Usage,
            "/ui/requests" => Page::Requests,
            "/ui/keys" => Page::Keys,
            "/ui/users" => Page::Users,
            "/ui/pricing" => Page::Pricing,
            "/ui/pricing/delete" => Page::PriceDelete,
            "/ui/provider-keys" => Page::ProviderKeys,
            "/ui/provider-keys/delete" => Page::ProviderKeyDelete,
            "/ui/upstreams" => Page::Upstreams,
            "/ui/audit" => Page::Audit,
            "/ui/system" => Page::System,
            "/ui/system/backup" => Page::Backup,
            "/ui/logout" => Page::Logout,
            _ => {
                if let Some(id) = item("/ui/keys/", "/revoke") {
                    Page::KeyRevoke(id)
                } else if let Some(id) = item("/ui/keys/", "") {
                    Page::Key(id)
                } else if let Some(id) = item("/ui/users/", "/delete") {
                    Page::UserDelete(id)
                } else if let Some(id) = item("/ui/users/", "") {
                    Page::User(id)
                } else {
                    return None;
                }
            }
        })
    }

    fn admins_only(&self) -> bool {
        matches!(
            self,
            Page::Users
                | Page::User(_)
                | Page::UserDelete(_)
                | Page::Pricing
                | Page::PriceDelete
                | Page::Upstreams
                | Page::Audit
                | Page::System
                | Page::Backup
        )
    }
}

impl AdminApp {
    /// Answers a dashboard request (paths [`UiState::serves`]).
    pub(crate) async fn ui_response(
        &self,
        session: &mut ServerSession,
        req: &Req,
    ) -> Response<Vec<u8>> {
        let path = req.path.as_str();
        let (get, post) = (
            req.method == "GET" || req.method == "HEAD",
            req.method == "POST",
        );
        if path == "/" || path == "/ui" {
            return redirect("/ui/");
        }
        if let Some(resp) = assets::serve(path).filter(|_| get) {
            return resp;
        }
        if path == "/ui/login" {
            return match (get, post) {
                (true, _) => self.login_page(),
                (_, true) => self.ui_login(session, req).await.unwrap_or_else(error_page),
                _ => error_page(ApiError::method_not_allowed(&["GET", "POST"])),
            };
        }
        let viewer = match self.viewer(session, path != "/ui/logout").await {
            Ok(Some(v)) => v,
            Ok(None) if get => return redirect("/ui/login"),
            Ok(None) => {
                return error_page(ApiError::new(401, "Your session has ended: sign in again."))
            }
            Err(e) => return error_page(e),
        };
        let mut resp = match self.ui_dispatch(session, req, &viewer, get, post).await {
            Ok(r) => r,
            Err(e) => viewer_error_page(&viewer, e),
        };
        if let Some(token) = &viewer.caller.refreshed {
            let cookie = session_cookie(token, self.sessions.ttl_s(), self.ui.tls);
            set_cookie(&mut resp, &cookie);
        }
        resp
    }

    /// Runs the page or action at the request's path for `viewer`.
    async fn ui_dispatch(
        &self,
        session: &mut ServerSession,
        req: &Req,
        viewer: &Viewer,
        get: bool,
        post: bool,
    ) -> Result<Response<Vec<u8>>, ApiError> {
        let page =
            Page::of(&req.path).ok_or_else(|| ApiError::not_found("There is no such page."))?;
        if page.admins_only() {
            viewer.require_admin()?;
        }
        if post {
            let form = http::read_form(session).await?;
            // Before any handler: no state change without it.
            self.check_csrf(session, viewer, &form)?;
            return self.ui_post(page, req, viewer, &form).await;
        }
        if !get {
            return Err(ApiError::method_not_allowed(&["GET", "POST"]));
        }
        self.ui_get(page, req, viewer).await
    }

    async fn ui_get(
        &self,
        page: Page,
        req: &Req,
        viewer: &Viewer,
    ) -> Result<Response<Vec<u8>>, ApiError> {
        match page {
            Page::Overview => self.overview_page(viewer).await,
            Page::Usage => self.usage_page(req, viewer).await,
            Page::Requests => self.requests_page(req, viewer).await,
            Page::Keys => self.keys_page(req, viewer, keys::Outcome::None).await,
            Page::Key(id) => self.key_edit_page(viewer, &id, None).await,
            Page::Users => self.users_page(req, viewer, None).await,
            Page::User(id) => self.user_edit_page(viewer, &id, None).await,
            Page::Pricing => self.pricing_page(req, viewer, None).await,
            Page::ProviderKeys => self.provider_keys_page(req, viewer, None).await,
            Page::Upstreams => self.upstreams_page(viewer).await,
            Page::Audit => self.audit_page(viewer).await,
            Page::System => self.system_page(viewer).await,
            Page::Backup => self.backup_download(req, viewer).await,
            Page::KeyRevoke(_)
            | Page::UserDelete(_)
            | Page::PriceDelete
            | Page::ProviderKeyDelete
            | Page::Logout => Err(ApiError::method_not_allowed(&["POST"])),
        }
    }

    async fn ui_post(
        &self,
        page: Page,
        req: &Req,
        viewer: &Viewer,
        form: &Form,
    ) -> Result<Response<Vec<u8>>, ApiError> {
        match page {
            Page::Logout => self.ui_logout(req, viewer).await,
            Page::Keys => self.ui_create_key(req, viewer, form).await,
            Page::Key(id) => self.ui_update_key(req, viewer, &id, form).await,
            Page::KeyRevoke(id) => self.ui_revoke_key(req, viewer, &id).await,
            Page::Users => self.ui_create_user(req, viewer, form).await,
            Page::User(id) => self.ui_update_user(req, viewer, &id, form).await,
            Page::UserDelete(id) => self.ui_delete_user(req, viewer, &id).await,
            Page::Pricing => self.ui_set_price(req, viewer, form).await,
            Page::PriceDelete => self.ui_delete_price(req, viewer, form).await,
            Page::ProviderKeys => self.ui_set_provider_key(req, viewer, form).await,
            Page::ProviderKeyDelete => self.ui_delete_provider_key(req, viewer, form).await,
            Page::Overview
            | Page::Usage
            | Page::Requests
            | Page::Upstreams
            | Page::Audit
            | Page::System
            | Page::Backup => Err(ApiError::method_not_allowed(&["GET"])),
        }
    }
}

/// A refusal or failure before anyone is signed in.
fn error_page(e: ApiError) -> Response<Vec<u8>> {
    let body = html! {
        (flash("error", &e.message))
        p { a href="/ui/login" { "Sign in" } " · " a href="/ui/" { "Overview" } }
    };
    with_headers(
        html(e.status, bare_page(title_of(e.status), body)),
        e.headers,
    )
}

/// A refusal or failure shown to a signed-in viewer, inside the page shell.
fn viewer_error_page(viewer: &Viewer, e: ApiError) -> Response<Vec<u8>> {
    let body =
        html! { (flash("error", &e.message)) p { a href="/ui/" { "Back to the overview" } } };
    with_headers(
        html(e.status, page(viewer, Nav::None, title_of(e.status), body)),
        e.headers,
    )
}

fn with_headers(
    mut resp: Response<Vec<u8>>,
    headers: Vec<(&'static str, String)>,
) -> Response<Vec<u8>> {
    for (name, value) in headers {
        if let Ok(v) = ::http::HeaderValue::from_str(&value) {
            resp.headers_mut().insert(name, v);
        }
    }
    resp
}

fn title_of(status: u16) -> &'static str {
    match status {
        400 | 422 => "Not accepted",
        401 => "Signed out",
        403 => "Not allowed",
        404 => "Not found",
        405 => "Not allowed here",
        501 => "Not available yet",
        _ => "Something went wrong",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_by_path() {
        assert_eq!(Page::of("/ui/"), Some(Page::Overview));
        assert_eq!(Page::of("/ui/keys/abc"), Some(Page::Key("abc".into())));
        assert_eq!(
            Page::of("/ui/keys/abc/revoke"),
            Some(Page::KeyRevoke("abc".into()))
        );
        assert_eq!(Page::of("/ui/keys/a/b"), None);
        assert_eq!(Page::of("/ui/keys/"), None);
        assert_eq!(
            Page::of("/ui/users/7/delete"),
            Some(Page::UserDelete("7".into()))
        );
        assert_eq!(Page::of("/ui/nope"), None);
        assert!(Page::Audit.admins_only() && !Page::Keys.admins_only());
        let ui = UiState::new(true, false, &[0; 32]);
        assert!(ui.serves("/") && ui.serves("/ui") && ui.serves("/ui/keys"));
        assert!(!ui.serves("/uix") && !ui.serves("/admin/keys"));
        assert!(!UiState::new(false, false, &[0; 32]).serves("/ui/"));
    }
}
