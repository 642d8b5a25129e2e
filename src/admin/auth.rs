//! Who is calling the admin API: a gateway key of an admin user, or a session token from
//! `POST /admin/login`. Also the pieces of the login that are not HTTP: signed session
//! tokens and the dummy password hash (the login's rate limit is in `login_limit`).
//!
//! A session token is `base64url(payload).base64url(HMAC-SHA256(key, first part))`,
//! payload `{sid, uid, user, role, exp}`, key `MasterKey::subkey("admin-session")`. The
//! signature is checked (in constant time) before anything else, so a forged token costs
//! one HMAC and never reaches the store; the session row is then what makes a valid
//! token revocable (logout, user deletion) and lets it expire.

use std::time::Duration;

use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use pingora::protocols::http::ServerSession;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tollgate_filters::auth::client_credential;
use tollgate_filters::clock::system_clock;
use tollgate_filters::{Dialect, KeyLookup, Role};

use super::{blocking, AdminApp, ApiError};
use crate::store::{NewSession, SessionRow};

type HmacSha256 = Hmac<Sha256>;

/// How long a session replaced by a sliding refresh still works, so that requests a
/// client already sent with it (in parallel) do not fail while it switches tokens.
pub const REFRESH_GRACE_S: i64 = 30;
/// What a session token says; trusted only once its signature is verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionClaims {
    pub sid: String,
    pub uid: i64,
    pub user: String,
    pub role: String,
    /// Unix seconds.
    pub exp: i64,
}

/// Signs and verifies session tokens.
pub struct SessionSigner {
    key: [u8; 32],
    ttl_s: i64,
}

impl SessionSigner {
    pub fn new(key: [u8; 32], ttl: Duration) -> Self {
        SessionSigner {
            key,
            ttl_s: i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX).max(1),
        }
    }

    /// Session lifetime in seconds.
    pub fn ttl_s(&self) -> i64 {
        self.ttl_s
    }

    fn mac(&self) -> HmacSha256 {
        <HmacSha256 as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
    }

    pub fn sign(&self, claims: &SessionClaims) -> String {
        // Serializing a struct of strings and integers cannot fail.
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{payload}.{sig}")
    }

    /// The claims of a token whose signature is ours; `None` for anything else. Expiry
    /// is the caller's to check.
    pub fn verify(&self, token: &str) -> Option<SessionClaims> {
        let (payload, sig) = token.split_once('.')?;
        let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        mac.verify_slice(&sig).ok()?;
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
    }
}

/// A random session id: 128 bits, base64url.
pub fn new_session_id() -> String {
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// An argon2id hash (the same parameters as real ones) of a random password nobody
/// knows, verified when the user does not exist or cannot log in.
pub fn dummy_password_hash() -> String {
    let mut pw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut pw);
    let salt = SaltString::generate(&mut OsRng);
    match Argon2::default().hash_password(&pw, &salt) {
        Ok(h) => h.to_string(),
        Err(e) => {
            // Cannot happen with the default parameters; an unparsable hash would make
            // unknown users answer faster than known ones, so say so.
            log::error!("cannot compute the dummy password hash ({e}); failed logins of unknown users will answer faster");
            String::new()
        }
    }
}

/// An authenticated user: an admin on `/admin/*`, an admin or a member on the
/// dashboard.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: i64,
    pub username: String,
    pub role: Role,
    /// The session id, when authenticated by a session token.
    pub session: Option<String>,
    /// A fresh token replacing the presented one (sliding refresh).
    pub refreshed: Option<String>,
}

impl AdminApp {
    /// The caller, if an admin; 401 without valid credentials, 403 for a member.
    /// `allow_refresh`: whether a session past half its life may be replaced (not on
    /// logout, which would leave the replacement alive).
    pub(crate) async fn authorize(
        &self,
        session: &ServerSession,
        allow_refresh: bool,
    ) -> Result<Caller, ApiError> {
        self.identify(session, allow_refresh, true).await
    }

    /// The caller of `Authorization: Bearer`; with `admins_only`, 403 for a member.
    pub(crate) async fn identify(
        &self,
        session: &ServerSession,
        allow_refresh: bool,
        admins_only: bool,
    ) -> Result<Caller, ApiError> {
        let cred = client_credential(session.req_header(), Dialect::OpenAi)
            .ok_or_else(|| ApiError::unauthorized("missing credentials"))?;
        let token = cred.expose();
        if token.starts_with("tg_") {
            return self.authorize_key(&cred, admins_only).await;
        }
        let source = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip().to_string());
        self.authorize_session(token, allow_refresh, source, admins_only)
            .await
    }

    async fn authorize_key(
        &self,
        cred: &tollgate_filters::Secret,
        admins_only: bool,
    ) -> Result<Caller, ApiError> {
        let p = self
            .keys
            .authenticate(cred)
            .await
            .ok_or_else(|| ApiError::unauthorized("invalid credentials"))?;
        let now = system_clock();
        if p.revoked_at.is_some_and(|t| t <= now) || p.expires_at.is_some_and(|t| t <= now) {
            return Err(ApiError::unauthorized("credentials revoked or expired"));
        }
        if admins_only && p.role != Role::Admin {
            return Err(ApiError::new(403, "admin role required"));
        }
        Ok(Caller {
            user_id: p.user_id,
            username: p.user.clone(),
            role: p.role,
            session: None,
            refreshed: None,
        })
    }

    /// The caller of a session token (the bearer token, or the dashboard's cookie).
    pub(crate) async fn authorize_session(
        &self,
        token: &str,
        allow_refresh: bool,
        source: Option<String>,
        admins_only: bool,
    ) -> Result<Caller, ApiError> {
        // Signature first: nothing unsigned reaches the store.
        let claims = self
            .sessions
            .verify(token)
            .ok_or_else(|| ApiError::unauthorized("invalid credentials"))?;
        let now = system_clock();
        if claims.exp <= now {
            return Err(ApiError::unauthorized("session expired"));
        }
        let store = self.store.clone();
        let sid = claims.sid.clone();
        let row = blocking(move || store.session(&sid))
            .await?
            .filter(|r| r.user_id == claims.uid)
            .ok_or_else(|| ApiError::unauthorized("session revoked or expired"))?;
        if row.revoked_at.is_some_and(|t| t <= now) || row.expires_at <= now || row.user_deleted {
            return Err(ApiError::unauthorized("session revoked or expired"));
        }
        if admins_only && row.role != Role::Admin {
            return Err(ApiError::new(403, "admin role required"));
        }
        let half_life = row.created_at + (row.expires_at - row.created_at) / 2;
        let refreshed = if allow_refresh && row.revoked_at.is_none() && now >= half_life {
            self.refresh_session(&row, source).await
        } else {
            None
        };
        Ok(Caller {
            user_id: row.user_id,
            username: row.username,
            role: row.role,
            session: Some(row.id),
            refreshed,
        })
    }

    /// Replaces a session with a new one; the new token, or `None` when another request
    /// refreshed it first or the store failed (the old token still works meanwhile).
    async fn refresh_session(&self, old: &SessionRow, source: Option<String>) -> Option<String> {
        let now = system_clock();
        let claims = SessionClaims {
            sid: new_session_id(),
            uid: old.user_id,
            user: old.username.clone(),
            role: old.role.as_str().to_owned(),
            exp: now.saturating_add(self.sessions.ttl_s()),
        };
        let old_expires = old.expires_at;
        let store = self.store.clone();
        let (old, new) = (old.id.clone(), claims.clone());
        let grace_end = old_expires.min(now.saturating_add(REFRESH_GRACE_S));
        let replaced = blocking(move || {
            store.replace_session(
                &old,
                grace_end,
                &NewSession {
                    id: &new.sid,
                    user_id: new.uid,
                    created_at: now,
                    expires_at: new.exp,
                    source: source.as_deref(),
                },
            )
        })
        .await;
        match replaced {
            Ok(true) => Some(self.sessions.sign(&claims)),
            Ok(false) => None,
            Err(e) => {
                log::warn!("session refresh failed: {}", e.message);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> SessionClaims {
        SessionClaims {
            sid: new_session_id(),
            uid: 1,
            user: "root".into(),
            role: "admin".into(),
            exp,
        }
    }

    #[test]
    fn tokens_verify_only_untouched_and_under_their_key() {
        let s = SessionSigner::new([7; 32], Duration::from_secs(60));
        let c = claims(100);
        let t = s.sign(&c);
        assert_eq!(s.verify(&t), Some(c.clone()));
        // Any one byte changed, anywhere, is refused.
        for i in 0..t.len() {
            let mut b = t.clone().into_bytes();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(b).unwrap();
            assert_eq!(s.verify(&tampered), None, "byte {i}");
        }
        let other = SessionSigner::new([8; 32], Duration::from_secs(60));
        assert_eq!(other.verify(&t), None);
        for bad in ["", ".", "abc", "a.b", &t.replace('.', "")] {
            assert_eq!(s.verify(bad), None, "{bad:?}");
        }
        // The payload is readable (not secret), the signature is what matters.
        let (payload, _) = t.split_once('.').unwrap();
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert!(text.contains("\"user\":\"root\""), "{text}");
    }

    #[test]
    fn the_dummy_hash_is_a_real_argon2id_hash() {
        let h = dummy_password_hash();
        assert!(h.starts_with("$argon2id$"), "{h}");
    }
}
