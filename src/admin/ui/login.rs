//! `/ui/login` and `/ui/logout`: the same login as `POST /admin/login` (the limit on
//! failures per address and name, one argon2 verification whatever happens, the audit
//! entry, a stored session),
//! open to members too, answered with the session cookie instead of JSON. A failed
//! sign-in shows one message whichever part was wrong.

use http::Response;
use maud::{html, Markup};
use pingora::protocols::http::ServerSession;
use tollgate_filters::clock::system_clock;
use tollgate_filters::Secret;

use super::http::{html, read_form, redirect, same_origin, session_cookie, set_cookie};
use super::layout::{bare_page, flash};
use super::viewer::Viewer;
use crate::admin::{AdminApp, ApiError, Req};

/// The one message of every failed sign-in.
const SIGN_IN_FAILED: &str = "Invalid username or password.";

fn login_form(message: Option<&str>, username: &str) -> Markup {
    bare_page(
        "Sign in",
        html! {
            @if let Some(m) = message { (flash("error", m)) }
            form.stack method="post" action="/ui/login" {
                label { "Username" input name="username" autocomplete="username" required value=(username); }
                label { "Password" input name="password" type="password" autocomplete="current-password" required; }
                button type="submit" { "Sign in" }
            }
        },
    )
}

/// The form again, with how long sign-ins from this address as this name are held back.
fn held_back(e: &ApiError) -> Response<Vec<u8>> {
    let wait = e
        .headers
        .iter()
        .find(|h| h.0 == "retry-after")
        .map_or("60", |h| h.1.as_str());
    let msg = format!("Too many failed sign-ins; try again in {wait} s.");
    let mut resp = html(429, login_form(Some(&msg), ""));
    if let Ok(v) = http::HeaderValue::from_str(wait) {
        resp.headers_mut().insert("retry-after", v);
    }
    resp
}

impl AdminApp {
    /// `GET /ui/login`
    pub(crate) fn login_page(&self) -> Response<Vec<u8>> {
        html(200, login_form(None, ""))
    }

    /// `POST /ui/login`: on success the cookie and a redirect to the overview.
    pub(crate) async fn ui_login(
        &self,
        session: &mut ServerSession,
        req: &Req,
    ) -> Result<Response<Vec<u8>>, ApiError> {
        if !same_origin(session, self.ui.tls) {
            return Err(ApiError::new(
                403,
                "refused: sign in from the dashboard's own page",
            ));
        }
        let form = read_form(session).await?;
        let username = form.get("username").unwrap_or("").to_owned();
        let password = Secret::new(form.raw("password").unwrap_or(""));
        match self
            .authenticate(req, username.clone(), password, false)
            .await
        {
            Ok(Some(user)) => {
                let (token, exp) = self.open_session(req, &user).await?;
                let mut resp = redirect("/ui/");
                let cookie = session_cookie(&token, exp - system_clock(), self.ui.tls);
                set_cookie(&mut resp, &cookie);
                Ok(resp)
            }
            // The name is kept in the form only as typed by this browser.
            Ok(None) => Ok(html(401, login_form(Some(SIGN_IN_FAILED), &username))),
            Err(e) if e.status == 429 => Ok(held_back(&e)),
            Err(e) => Err(e),
        }
    }

    /// `POST /ui/logout` (past the CSRF check): ends the session, clears the cookie.
    pub(crate) async fn ui_logout(
        &self,
        req: &Req,
        viewer: &Viewer,
    ) -> Result<Response<Vec<u8>>, ApiError> {
        if viewer.caller.session.is_some() {
            self.end_session(req, &viewer.caller).await?;
        }
        let mut resp = redirect("/ui/login");
        set_cookie(&mut resp, &session_cookie("", 0, self.ui.tls));
        Ok(resp)
    }
}
