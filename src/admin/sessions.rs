//! `POST /admin/login`, `POST /admin/logout`, and the background service that deletes
//! sessions that can no longer be used.

use std::time::{Duration, Instant};

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use async_trait::async_trait;
use http::Response;
use pingora::protocols::http::ServerSession;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use serde::Deserialize;
use tollgate_filters::clock::system_clock;
use tollgate_filters::{Role, Secret};

use super::auth::{new_session_id, Caller, SessionClaims};
use super::{blocking, json_response, parse_secret_json, read_body, AdminApp, ApiError, Req};
use crate::commands::format_rfc3339;
use crate::store::{NewSession, Store, UserRow};

/// The one answer to every failed login, so it tells nothing about which part was wrong.
const LOGIN_FAILED: &str = "invalid username or password";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    username: String,
    password: String,
}

/// Why a login failed, for the audit log only.
enum Refusal {
    UnknownUser,
    NotAdmin,
    NoPassword,
    WrongPassword,
}

/// Verifies `password` against `hash` (argon2id, PHC string); `false` on any mismatch
/// or unparsable hash.
fn password_matches(password: &Secret, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.expose().as_bytes(), &h)
            .is_ok()
    })
}

impl Refusal {
    /// The reason as the audit log records it.
    fn reason(&self) -> &'static str {
        match self {
            Refusal::UnknownUser => "unknown user",
            Refusal::NotAdmin => "not an admin",
            Refusal::NoPassword => "no password set",
            Refusal::WrongPassword => "wrong password",
        }
    }
}

impl AdminApp {
    /// `POST /admin/login`: the limit on failures (per address and user name), the
    /// password check, then a new session.
    pub(crate) async fn login(
        &self,
        session: &mut ServerSession,
        req: &Req,
    ) -> Result<Response<Vec<u8>>, ApiError> {
        let body = read_body(session).await?;
        let LoginBody { username, password } =
            parse_secret_json(&body, "{\"username\": \"...\", \"password\": \"...\"}")?;
        match self
            .authenticate(req, username, Secret::new(password), true)
            .await?
        {
            Some(user) => {
                let (token, exp) = self.open_session(req, &user).await?;
                Ok(json_response(
                    200,
                    serde_json::json!({ "token": token, "expires_at": format_rfc3339(exp) }),
                ))
            }
            None => Err(ApiError::unauthorized(LOGIN_FAILED)),
        }
    }

    /// The login both ways in share (`POST /admin/login` with `admins_only`, the
    /// dashboard's sign-in without): the limit on failures for this address and name
    /// (429 before any password check), the password check, the limiter's bookkeeping
    /// and a failure's audit entry. `Ok(None)`: refused.
    pub(crate) async fn authenticate(
        &self,
        req: &Req,
        username: String,
        password: Secret,
        admins_only: bool,
    ) -> Result<Option<UserRow>, ApiError> {
        // Before the password check: a closed pair costs no argon2 verification.
        self.login_allowed(req, &username)?;
        let name = username.clone();
        match self.check_password(username, password, admins_only).await? {
            (Some(user), None) => {
                if let Some(ip) = req.source {
                    self.login_limiter.succeeded(ip, &name);
                }
                Ok(Some(user))
            }
            (user, refusal) => {
                if let Some(ip) = req.source {
                    self.login_limiter.failed(ip, &name, Instant::now());
                }
                self.login_refused(req, user, refusal).await;
                Ok(None)
            }
        }
    }

    /// Audits a failed login.
    async fn login_refused(&self, req: &Req, user: Option<UserRow>, refusal: Option<Refusal>) {
        let reason = refusal.unwrap_or(Refusal::WrongPassword).reason();
        // The name typed is recorded only when it is a user's: a failed login is often
        // a password typed into the name field.
        let target = user.as_ref().map(|u| u.username.as_str());
        self.audit(
            req,
            "-",
            "login.failed",
            target,
            serde_json::json!({ "reason": reason }),
        )
        .await;
    }

    /// 429 with `retry-after` while logins of `name` from the caller's address are held
    /// back (see `login_limit`).
    fn login_allowed(&self, req: &Req, name: &str) -> Result<(), ApiError> {
        let Some(ip) = req.source else {
            return Ok(());
        };
        self.login_limiter
            .check(ip, name, Instant::now())
            .map_err(|wait| {
                log::warn!("admin: login attempts from {ip} held back for {wait} s");
                let mut e = ApiError::new(429, "too many failed logins; try again later");
                e.headers.push(("retry-after", wait.to_string()));
                e
            })
    }

    /// The user named, if any, and why the login is refused, if it is (with
    /// `admins_only`, a member is refused: the admin API's login). Every path does one
    /// lookup and one argon2 verification, so that the answer takes as long for an
    /// unknown user as for a wrong password.
    async fn check_password(
        &self,
        username: String,
        password: Secret,
        admins_only: bool,
    ) -> Result<(Option<UserRow>, Option<Refusal>), ApiError> {
        let store = self.store.clone();
        let dummy = self.dummy_hash.clone();
        blocking(move || {
            let found = store.user_for_login(&username)?;
            let (user, refusal, hash) = match found {
                None => (None, Some(Refusal::UnknownUser), dummy),
                Some((u, _)) if admins_only && u.role != Role::Admin => {
                    (Some(u), Some(Refusal::NotAdmin), dummy)
                }
                Some((u, None)) => (Some(u), Some(Refusal::NoPassword), dummy),
                Some((u, Some(h))) => (Some(u), None, h),
            };
            let matches = password_matches(&password, &hash);
            let refusal = match (refusal, matches) {
                (Some(r), _) => Some(r),
                (None, false) => Some(Refusal::WrongPassword),
                (None, true) => None,
            };
            Ok::<_, crate::store::StoreError>((user, refusal))
        })
        .await
    }

    /// A new session for a user who logged in: stored (so it can be revoked), audited;
    /// its signed token and expiry (unix seconds).
    pub(crate) async fn open_session(
        &self,
        req: &Req,
        user: &UserRow,
    ) -> Result<(String, i64), ApiError> {
        let now = system_clock();
        let claims = SessionClaims {
            sid: new_session_id(),
            uid: user.id,
            user: user.username.clone(),
            role: user.role.as_str().to_owned(),
            exp: now.saturating_add(self.sessions.ttl_s()),
        };
        let store = self.store.clone();
        let (c, source) = (claims.clone(), req.source.map(|ip| ip.to_string()));
        blocking(move || {
            store.create_session(&NewSession {
                id: &c.sid,
                user_id: c.uid,
                created_at: now,
                expires_at: c.exp,
                source: source.as_deref(),
            })
        })
        .await?;
        self.audit(
            req,
            &user.username,
            "login",
            Some(&user.username),
            serde_json::json!({ "session": claims.sid, "expires_at": format_rfc3339(claims.exp) }),
        )
        .await;
        Ok((self.sessions.sign(&claims), claims.exp))
    }

    pub(crate) async fn logout(
        &self,
        req: &Req,
        caller: &Caller,
    ) -> Result<Response<Vec<u8>>, ApiError> {
        self.end_session(req, caller).await?;
        Ok(json_response(
            200,
            serde_json::json!({ "logged_out": true }),
        ))
    }

    /// Revokes the caller's session, audited.
    pub(crate) async fn end_session(&self, req: &Req, caller: &Caller) -> Result<(), ApiError> {
        let Some(sid) = caller.session.clone() else {
            return Err(ApiError::invalid(
                "logout ends a session: authenticate with a session token (a gateway key is revoked with DELETE /admin/keys/{id})",
            ));
        };
        let store = self.store.clone();
        let id = sid.clone();
        blocking(move || store.revoke_session(&id, system_clock())).await?;
        self.audit(
            req,
            &caller.username,
            "logout",
            Some(&caller.username),
            serde_json::json!({ "session": sid }),
        )
        .await;
        Ok(())
    }
}

/// Deletes expired and revoked sessions now and then, so the table holds only live ones.
pub struct SessionSweeper {
    pub store: Store,
    pub every: Duration,
}

#[async_trait]
impl BackgroundService for SessionSweeper {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick() => {
                    let store = self.store.clone();
                    match tokio::task::spawn_blocking(move || store.purge_sessions(system_clock())).await {
                        Ok(Ok(0)) => {}
                        Ok(Ok(n)) => log::debug!("deleted {n} expired or revoked admin sessions"),
                        Ok(Err(e)) => log::warn!("cannot delete expired admin sessions: {e}"),
                        Err(e) => log::warn!("session sweep did not complete: {e}"),
                    }
                }
            }
        }
    }
}
