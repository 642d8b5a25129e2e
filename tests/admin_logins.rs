//! Admin logins and their sessions (issue 11, item 21; README "Admin listener"): a logout
//! ends the whole login session, the token a sliding refresh replaced included; failed
//! logins are held back per address and user name with a growing back-off, so that
//! failures for other names never lock an admin out.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::http::Response;
use common::{eventually, Gateway, GatewayBuilder};
use serde_json::json;

const ROOT_PASSWORD: &str = "root-password-7f3a9c";
const OPS_PASSWORD: &str = "ops-password-2b8d4e";
const REFRESH_HEADER: &str = "x-tollgate-session-token";

/// A gateway whose admins `root` and `ops` have passwords; sessions last `ttl_s`.
fn start(ttl_s: u32) -> Gateway {
    let mut gw = GatewayBuilder::new().admin("session_ttl_s", ttl_s).build();
    gw.add_admin_with_password("root", ROOT_PASSWORD);
    gw.add_admin_with_password("ops", OPS_PASSWORD);
    gw.start();
    gw
}

async fn login(gw: &Gateway, user: &str, password: &str) -> Response {
    let body = json!({"username": user, "password": password});
    gw.admin_anonymous().post("/admin/login", body).await
}

async fn login_ok(gw: &Gateway, user: &str, password: &str) -> String {
    let r = login(gw, user, password).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["token"].as_str().unwrap().to_owned()
}

/// A session token and the one a sliding refresh gave in its place (past half of the
/// session's lifetime).
async fn refreshed_pair(gw: &Gateway) -> (String, String) {
    let old = login_ok(gw, "root", ROOT_PASSWORD).await;
    let fresh = eventually("a refresh header", Duration::from_secs(30), async || {
        let r = gw.admin_as(&old).get("/admin/users").await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.header(REFRESH_HEADER).map(str::to_owned)
    })
    .await;
    assert_ne!(old, fresh);
    // Both work: the old one for its grace period (30 s, far longer than this test).
    assert_eq!(gw.admin_as(&old).get("/admin/users").await.status, 200);
    assert_eq!(gw.admin_as(&fresh).get("/admin/users").await.status, 200);
    (old, fresh)
}

#[tokio::test]
async fn a_logout_ends_the_whole_session_whichever_token_it_uses() {
    // Long enough that the replaced token outlives the checks on a busy machine (it
    // works until its own expiry, 5 s after the refresh at the earliest).
    let gw = start(10);

    // Logging out with the new token ends the replaced one at once.
    let (old, fresh) = refreshed_pair(&gw).await;
    let r = gw.admin_as(&fresh).send("POST", "/admin/logout", b"").await;
    assert_eq!(r.status, 200, "{}", r.text());
    for token in [&old, &fresh] {
        let r = gw.admin_as(token).get("/admin/users").await;
        assert_eq!(r.status, 401, "{}", r.text());
    }

    // Logging out with the replaced token (in its grace period) ends the new one.
    let (old, fresh) = refreshed_pair(&gw).await;
    let bystander = login_ok(&gw, "ops", OPS_PASSWORD).await;
    let r = gw.admin_as(&old).send("POST", "/admin/logout", b"").await;
    assert_eq!(r.status, 200, "{}", r.text());
    for token in [&old, &fresh] {
        let r = gw.admin_as(token).get("/admin/users").await;
        assert_eq!(r.status, 401, "{}", r.text());
    }

    // Other logins carry on.
    let r = gw.admin_as(&bystander).get("/admin/users").await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test]
async fn failures_for_other_names_never_lock_an_admin_out() {
    let gw = start(3600);
    // Many failures from this address, for names other than root's...
    for i in 0..12 {
        let r = login(&gw, &format!("guess{}", i % 3), "wrong-password").await;
        assert_eq!(r.status, 401, "{}", r.text());
    }
    for _ in 0..3 {
        assert_eq!(login(&gw, "ops", "wrong-password").await.status, 401);
    }
    // ...and root's right password still opens a session.
    login_ok(&gw, "root", ROOT_PASSWORD).await;
    login_ok(&gw, "ops", OPS_PASSWORD).await;
}

#[tokio::test]
async fn repeated_failures_back_off_and_a_success_clears_them() {
    let gw = start(3600);
    for _ in 0..5 {
        assert_eq!(login(&gw, "root", "wrong-password").await.status, 401);
    }
    // The fifth failure closed the pair for a second; once it is open again, a sixth
    // failure closes it for two.
    eventually(
        "the first back-off to end",
        Duration::from_secs(10),
        async || {
            let r = login(&gw, "root", "wrong-password").await;
            assert!(matches!(r.status, 401 | 429), "{}", r.text());
            r.status == 401
        },
    )
    .await;
    // Even the right password waits (answering it would tell a guesser which guess was
    // right), without an argon2 verification.
    let r = login(&gw, "root", ROOT_PASSWORD).await;
    assert_eq!(r.status, 429, "{}", r.text());
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "{wait}");
    assert!(r.text().contains("too many failed logins"), "{}", r.text());
    // Another admin from the same address is not held back.
    login_ok(&gw, "ops", OPS_PASSWORD).await;

    // Once the back-off has passed, the right password works; the wait is what is tested.
    let token = eventually("the back-off to end", Duration::from_secs(10), async || {
        let r = login(&gw, "root", ROOT_PASSWORD).await;
        if r.status == 429 {
            return None;
        }
        assert_eq!(r.status, 200, "{}", r.text());
        Some(r.json()["token"].as_str().unwrap().to_owned())
    })
    .await;
    assert_eq!(gw.admin_as(&token).get("/admin/users").await.status, 200);
    // The success cleared the failures: a mistake now is one mistake, not a lock.
    assert_eq!(login(&gw, "root", "wrong-password").await.status, 401);
    assert_eq!(login(&gw, "root", "wrong-password").await.status, 401);
    login_ok(&gw, "root", ROOT_PASSWORD).await;

    // The audit log has each verified failure, not the refusals.
    let audit = gw.admin_as(&token).get("/admin/audit").await.json();
    let failed = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "login.failed")
        .count();
    assert_eq!(failed, 8, "{audit}");
}
