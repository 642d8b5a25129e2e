//! Who is looking at a page, and whether a state change may go ahead.
//!
//! A browser signs in with the session cookie, which holds the same signed session token
//! as `POST /admin/login` answers (auth.rs checks it: signature, stored session,
//! expiry, sliding refresh). A script may instead send `Authorization: Bearer` with a
//! session token or an admin's gateway key, exactly as on `/admin/*`.
//!
//! CSRF (CONTRACT §6): a cookie-authenticated state change must carry the session's
//! CSRF token and, when it sends an `Origin`, come from this listener. The token is
//! `HMAC-SHA256(csrf key, session id)`, so it needs no state of its own and dies with
//! the session; the key is derived from the session-signing key. A bearer-authenticated
//! request is not sent by a browser on its own and needs no token.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use pingora::protocols::http::ServerSession;
use sha2::Sha256;
use tollgate_filters::Role;

use super::http::{cookie, header, same_origin, Form, COOKIE};
use crate::admin::auth::Caller;
use crate::admin::{AdminApp, ApiError};

/// A signed-in user looking at the dashboard.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub caller: Caller,
    /// Authenticated by the session cookie (so state changes need the CSRF token).
    pub by_cookie: bool,
    /// The session's CSRF token ("" without a session).
    pub csrf: String,
}

impl Viewer {
    pub fn is_admin(&self) -> bool {
        self.caller.role == Role::Admin
    }

    /// 403 unless an admin.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::new(403, "this page is for admins"))
        }
    }

    /// The user whose data a member may see (`None` for an admin: everyone's).
    pub fn own_user(&self) -> Option<i64> {
        (!self.is_admin()).then_some(self.caller.user_id)
    }
}

/// The CSRF key: a subkey of the session-signing key, so that a CSRF token is not a
/// signature anything else would accept.
pub fn csrf_key(session_key: &[u8; 32]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(session_key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(b"tollgate dashboard csrf v1");
    mac.finalize().into_bytes().into()
}

fn csrf_mac(key: &[u8; 32], sid: &str) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(sid.as_bytes());
    mac
}

/// The CSRF token of session `sid`.
pub fn csrf_token(key: &[u8; 32], sid: &str) -> String {
    URL_SAFE_NO_PAD.encode(csrf_mac(key, sid).finalize().into_bytes())
}

/// Whether `token` is session `sid`'s CSRF token (compared in constant time).
pub fn csrf_valid(key: &[u8; 32], sid: &str, token: &str) -> bool {
    URL_SAFE_NO_PAD
        .decode(token)
        .is_ok_and(|t| csrf_mac(key, sid).verify_slice(&t).is_ok())
}

impl AdminApp {
    /// The viewer, if signed in; `None` for no or invalid credentials (the page then
    /// asks to sign in). A member is a viewer too: pages decide what each may see.
    pub(crate) async fn viewer(
        &self,
        session: &ServerSession,
        allow_refresh: bool,
    ) -> Result<Option<Viewer>, ApiError> {
        let bearer = header(session, "authorization").is_some();
        let caller = if bearer {
            self.identify(session, allow_refresh, false).await
        } else if let Some(token) = cookie(session, COOKIE) {
            let source = session
                .client_addr()
                .and_then(|a| a.as_inet())
                .map(|a| a.ip().to_string());
            self.authorize_session(token, allow_refresh, source, false)
                .await
        } else {
            return Ok(None);
        };
        let caller = match caller {
            Ok(c) => c,
            Err(e) if e.status == 401 => return Ok(None),
            Err(e) => return Err(e),
        };
        // After a sliding refresh the page is rendered for the new session.
        let sid = caller
            .refreshed
            .as_deref()
            .and_then(|t| self.sessions.verify(t))
            .map(|c| c.sid)
            .or_else(|| caller.session.clone());
        let csrf = sid
            .map(|s| csrf_token(&self.ui.csrf_key, &s))
            .unwrap_or_default();
        Ok(Some(Viewer {
            caller,
            by_cookie: !bearer,
            csrf,
        }))
    }

    /// 403 unless a state change by `viewer` may go ahead: its `Origin` is ours and,
    /// when it came with the cookie, it carries the session's CSRF token.
    pub(crate) fn check_csrf(
        &self,
        session: &ServerSession,
        viewer: &Viewer,
        form: &Form,
    ) -> Result<(), ApiError> {
        if !same_origin(session, self.ui.tls) {
            return Err(ApiError::new(
                403,
                "refused: this request did not come from the dashboard's own pages",
            ));
        }
        if !viewer.by_cookie {
            return Ok(());
        }
        let sent = form
            .raw("csrf_token")
            .or_else(|| header(session, "x-csrf-token"));
        let sid = viewer.caller.session.as_deref().unwrap_or("");
        match sent {
            Some(t) if csrf_valid(&self.ui.csrf_key, sid, t) => Ok(()),
            _ => Err(ApiError::new(
                403,
                "refused: the form's security token is missing or out of date (your session may have been renewed); reload the page and try again",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_are_per_session_and_per_key() {
        let key = csrf_key(&[1; 32]);
        let t = csrf_token(&key, "session-a");
        assert!(csrf_valid(&key, "session-a", &t));
        assert!(!csrf_valid(&key, "session-b", &t));
        assert!(!csrf_valid(&csrf_key(&[2; 32]), "session-a", &t));
        assert!(!csrf_valid(&key, "session-a", ""));
        assert!(!csrf_valid(&key, "session-a", &t[1..]));
        assert!(!csrf_valid(&key, "session-a", "not base64!"));
        assert_ne!(key, [1; 32]);
    }
}
