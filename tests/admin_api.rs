//! The admin API (CONTRACT §4) through the real binary: every endpoint and every
//! refusal (401 before anything is told, 403 for members, 404 and 405 for admins, 422
//! naming the bad field), users and keys created, listed, revoked and deleted with the
//! proxy seeing each change at once, admin login sessions (signature, expiry, sliding
//! refresh, logout, rate limit), provider keys set through the API, and the audit log,
//! which, like the process's logs, never holds a secret.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::time::{Duration, Instant};

use common::calls::Admin;
use common::http::Response;
use common::{eventually, Gateway, GatewayBuilder, MockUpstream, Upstream, CHAT};
use serde_json::{json, Value};

const ROOT_PASSWORD: &str = "root-password-7f3a9c";
const REFRESH_HEADER: &str = "x-tollgate-session-token";

fn builder(mock: &MockUpstream) -> GatewayBuilder {
    GatewayBuilder::new().only_upstream(Upstream::openai("main", mock).keys(&["sk-configured"]))
}

/// Starts a gateway whose user `root` is an admin with [`ROOT_PASSWORD`].
fn start_with_root(b: GatewayBuilder) -> Gateway {
    let mut gw = b.build();
    let out = gw.cli_with_stdin(
        &["user", "add", "root", "--role", "admin", "--password-stdin"],
        format!("{ROOT_PASSWORD}\n").as_bytes(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    gw.start();
    gw
}

/// Asserts a JSON error with this status; returns its message.
#[track_caller]
fn assert_error(r: &Response, status: u16) -> String {
    assert_eq!(r.status, status, "{}", r.text());
    let len: usize = r
        .header("content-length")
        .expect("content-length")
        .parse()
        .unwrap();
    assert_eq!(len, r.body.len());
    let v = r.json();
    v["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message in {v}"))
        .to_owned()
}

async fn login(gw: &Gateway, user: &str, password: &str) -> Response {
    let body = json!({"username": user, "password": password});
    gw.admin_anonymous().post("/admin/login", body).await
}

async fn login_ok(gw: &Gateway) -> String {
    let r = login(gw, "root", ROOT_PASSWORD).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["token"].as_str().unwrap().to_owned()
}

/// The token with one character changed at `at`.
fn tamper(token: &str, at: usize) -> String {
    let mut b = token.as_bytes().to_vec();
    b[at] = if b[at] == b'A' { b'B' } else { b'A' };
    String::from_utf8(b).unwrap()
}

/// The id of the user called `name`, from `GET /admin/users`.
async fn user_id(admin: &Admin<'_>, name: &str) -> i64 {
    let r = admin.get("/admin/users").await;
    r.json()
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == name)
        .unwrap()["id"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn open_endpoints_and_authentication_refusals() {
    let mock = MockUpstream::start().await;
    let gw = start_with_root(builder(&mock).user("alice", "member"));
    let admin_key = gw.create_key("root", &[]);
    let member_key = gw.create_key("alice", &[]);
    let anon = gw.admin_anonymous();
    let member = gw.admin_as(&member_key);

    for path in ["/healthz", "/readyz"] {
        let r = anon.get(path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
    let r = anon.get("/metrics").await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    let r = anon.send("POST", "/healthz", b"").await;
    assert_error(&r, 405);
    assert_eq!(r.header("allow"), Some("GET"));
    assert_error(&anon.get("/nope").await, 404);

    // 401 without credentials or with bad ones, 403 for a member.
    for (caller, what) in [
        (gw.admin_anonymous(), "none"),
        (gw.admin_as("garbage"), "not a key or token"),
        (
            gw.admin_as("tg_aaaaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"),
            "unknown key",
        ),
        (gw.admin_as("e30.AAAA"), "unsigned token"),
    ] {
        let r = caller.get("/admin/users").await;
        assert_error(&r, 401);
        assert_eq!(r.header("www-authenticate"), Some("Bearer"), "{what}");
    }
    assert_error(&member.get("/admin/users").await, 403);
    // Even for a path that does not exist: nothing is told before authentication.
    assert_error(&anon.get("/admin/nope").await, 401);
    assert_error(&member.get("/admin/nope").await, 403);

    // As an admin: 404 for unknown paths, 405 for wrong methods.
    let admin = gw.admin_as(&admin_key);
    assert_error(&admin.get("/admin/nope").await, 404);
    assert_error(&admin.get("/admin/users/1/keys").await, 404);
    let r = admin.send("PATCH", "/admin/users", b"").await;
    assert_error(&r, 405);
    assert_eq!(r.header("allow"), Some("GET, POST"));
    assert_error(&admin.get("/admin/keys/abc").await, 405);
    assert_error(&anon.get("/admin/login").await, 405);
    assert_error(&admin.send("POST", "/admin/audit", b"{}").await, 405);

    // Usage, as before.
    let r = admin.get("/admin/usage?by=user").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["by"], "user");
    assert_error(&admin.get("/admin/usage?by=colour").await, 422);

    // The proxy listener serves none of the admin paths.
    for path in ["/admin/users", "/admin/login", "/metrics"] {
        let r = gw.get(path, &admin_key).await;
        assert_ne!(r.status, 200, "{path} on the proxy listener: {}", r.text());
    }
}

#[tokio::test]
async fn users_and_keys_through_the_api() {
    let mock = MockUpstream::start().await;
    let gw = start_with_root(builder(&mock));
    let admin_key = gw.create_key("root", &[]);
    let root = gw.admin_as(&admin_key);

    // Users: create, list, refusals.
    let r = root
        .post("/admin/users", json!({"username": "bob", "role": "member"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let bob = r.json();
    assert_eq!(
        (bob["username"].as_str(), bob["role"].as_str()),
        (Some("bob"), Some("member"))
    );
    let bob_id = bob["id"].as_i64().unwrap();
    let ops = json!({"username": "ops", "role": "admin", "password": "ops-password-1"});
    let r = root.post("/admin/users", ops).await;
    assert_eq!(r.status, 201, "{}", r.text());

    let again = root
        .post("/admin/users", json!({"username": "bob", "role": "member"}))
        .await;
    let m = assert_error(&again, 409);
    assert!(m.contains("already exists"), "{m}");
    for (body, needle) in [
        (
            json!({"username": "carol", "role": "owner"}),
            "invalid role 'owner'",
        ),
        (json!({"username": "carol"}), "missing field `role`"),
        (
            json!({"username": "carol", "role": "member", "colour": "red"}),
            "unknown field `colour`",
        ),
        (
            json!({"username": "no spaces", "role": "member"}),
            "invalid user name",
        ),
        (
            json!({"username": "carol", "role": "member", "password": "short"}),
            "at least 8",
        ),
        (
            json!({"username": "carol", "role": "admin", "password": "short"}),
            "at least 8",
        ),
        (
            json!({"username": "carol", "role": "member", "password": 12345678}),
            "invalid JSON body",
        ),
        (json!(["carol"]), "invalid JSON body"),
        (
            json!({"username": "carol", "role": "member", "budget_usd": "5", "budget_period": "week"}),
            "invalid budget period 'week'",
        ),
        (
            json!({"username": "carol", "role": "member", "budget_period": "day"}),
            "needs a budget amount",
        ),
        (
            json!({"username": "carol", "role": "member", "budget_usd": "lots"}),
            "lots",
        ),
    ] {
        let m = assert_error(&root.post("/admin/users", body.clone()).await, 422);
        assert!(m.contains(needle), "{body}: {m}");
        assert!(!m.contains("12345678"), "a refused password is echoed: {m}");
    }
    let r = root.send("POST", "/admin/users", b"{\"username\": ").await;
    assert!(assert_error(&r, 422).starts_with("invalid JSON body"));
    let big = vec![b' '; 70 * 1024];
    assert_error(&root.send("POST", "/admin/users", &big).await, 413);
    let r = root.get("/admin/users").await;
    let names: Vec<String> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["root", "bob", "ops"]);
    assert!(!r.text().contains("argon2"), "{}", r.text());
    // A member may have a password (to sign in to the dashboard), yet the admin API's
    // login stays for admins: refused with the one message of every failed login.
    let dev = json!({"username": "dev", "role": "member", "password": "dev-password-1"});
    assert_eq!(root.post("/admin/users", dev).await.status, 201);
    let member_login = login(&gw, "dev", "dev-password-1").await;
    let wrong_login = login(&gw, "root", "not-the-password").await;
    assert_error(&member_login, 401);
    assert_eq!(member_login.text(), wrong_login.text());

    // Keys: create with every option; the secret is in the creation answer only.
    let every_option = json!({"user": "bob", "name": "ci", "models": ["gpt-*"], "budget_usd": "5", "budget_period": "day", "rpm": 60, "tpm": 100000, "expires_in": "30d"});
    let r = root.post("/admin/keys", every_option).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let created = r.json();
    let (key_id, secret) = (
        created["id"].as_str().unwrap().to_owned(),
        created["key"].as_str().unwrap().to_owned(),
    );
    assert!(secret.starts_with(&format!("tg_{key_id}_")), "{created}");
    assert_eq!(created["budget_usd"], "5.00");
    assert_eq!(created["budget_period"], "day");
    assert_eq!(
        (created["rpm"].as_i64(), created["tpm"].as_i64()),
        (Some(60), Some(100_000))
    );
    assert!(created["expires_at"].is_string());
    let r = root
        .post("/admin/keys", json!({"user": "bob", "budget_usd": 0.5}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        (
            r.json()["budget_usd"].as_str(),
            r.json()["budget_period"].as_str()
        ),
        (Some("0.50"), Some("month"))
    );

    let r = root.get("/admin/keys?user=bob").await;
    assert_eq!(r.status, 200);
    let listed = r.json();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let ours = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == key_id.as_str())
        .unwrap();
    assert_eq!(
        (ours["name"].as_str(), ours["rpm"].as_i64()),
        (Some("ci"), Some(60))
    );
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .all(|k| k.get("key").is_none()));
    assert!(
        !r.text().contains(&secret[secret.len() - 20..]),
        "a secret is listed: {}",
        r.text()
    );
    let r = root.get("/admin/keys").await;
    assert_eq!(
        r.json().as_array().unwrap().len(),
        3,
        "bob's two and root's"
    );
    assert_error(&root.get("/admin/keys?user=nobody").await, 404);

    for (body, needle) in [
        (json!({"user": "nobody"}), "unknown user 'nobody'"),
        (
            json!({"user": "bob", "expires_in": "soon"}),
            "invalid duration 'soon'",
        ),
        (
            json!({"user": "bob", "budget_usd": "1", "budget_period": "week"}),
            "invalid budget period 'week'",
        ),
        (json!({"user": "bob", "budget_usd": "-1"}), "invalid amount"),
        (json!({"user": "bob", "rpm": 0}), "greater than 0"),
        (json!({"user": "bob", "rpm": -5}), "invalid JSON body"),
        (
            json!({"user": "bob", "models": ["gpt 4"]}),
            "invalid model pattern",
        ),
        (
            json!({"user": "bob", "scopes": ["x"]}),
            "unknown field `scopes`",
        ),
        (json!({"name": "x"}), "missing field `user`"),
    ] {
        let m = assert_error(&root.post("/admin/keys", body.clone()).await, 422);
        assert!(m.contains(needle), "{body}: {m}");
    }

    // Revoke: 200 with the revocation time; again is fine; an unknown id is 404.
    let key_path = format!("/admin/keys/{key_id}");
    let r = root.delete(&key_path).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let revoked_at = r.json()["revoked_at"].clone();
    assert!(revoked_at.is_string());
    let r = root.delete(&key_path).await;
    assert_eq!(r.json()["revoked_at"], revoked_at);
    assert_error(&root.delete("/admin/keys/nope").await, 404);

    // Delete users: not yourself; bob's keys are revoked with him.
    let root_id = user_id(&root, "root").await;
    let m = assert_error(&root.delete(&format!("/admin/users/{root_id}")).await, 409);
    assert!(m.contains("yourself"), "{m}");
    let bob_path = format!("/admin/users/{bob_id}");
    let r = root.delete(&bob_path).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["keys_revoked"],
        1,
        "the other one was revoked already"
    );
    assert_error(&root.delete(&bob_path).await, 404);
    assert_error(&root.delete("/admin/users/abc").await, 404);
    assert_error(&root.delete("/admin/users/999").await, 404);
    let r = root.get("/admin/keys").await;
    assert!(r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .all(|key| key["user"] != "bob" || key["revoked_at"].is_string()));
    let r = root.get("/admin/users").await;
    assert!(!r.text().contains("\"bob\""), "{}", r.text());
    // A deleted user's name stays taken (its usage still names it).
    let taken = root
        .post("/admin/users", json!({"username": "bob", "role": "member"}))
        .await;
    assert_error(&taken, 409);
}

#[tokio::test]
async fn keys_made_and_revoked_through_the_api_take_effect_on_the_next_request() {
    let mock = MockUpstream::start().await;
    let gw = start_with_root(builder(&mock));
    let token = login_ok(&gw).await;
    let root = gw.admin_as(&token);
    let r = root
        .post("/admin/users", json!({"username": "dev", "role": "member"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = root.post("/admin/keys", json!({"user": "dev"})).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let (id, key) = (
        r.json()["id"].as_str().unwrap().to_owned(),
        r.json()["key"].as_str().unwrap().to_owned(),
    );

    let r = gw.chat(&key, CHAT).await;
    assert_eq!(r.status, 200, "a new key works at once: {}", r.text());
    let r = root.delete(&format!("/admin/keys/{id}")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = gw.chat(&key, CHAT).await;
    assert_eq!(
        r.status,
        401,
        "a revoked key is refused on the next request: {}",
        r.text()
    );

    // A user deleted through the API: its keys stop at once too.
    let r = root.post("/admin/keys", json!({"user": "dev"})).await;
    let key2 = r.json()["key"].as_str().unwrap().to_owned();
    assert_eq!(gw.chat(&key2, CHAT).await.status, 200);
    let dev = user_id(&root, "dev").await;
    let r = root.delete(&format!("/admin/users/{dev}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(gw.chat(&key2, CHAT).await.status, 401);

    // An expiring key: refused once its time has passed (the wait is the point).
    let r = root
        .post("/admin/users", json!({"username": "tmp", "role": "member"}))
        .await;
    assert_eq!(r.status, 201);
    // Timed from before the key exists: its expiry (whole seconds) cannot be earlier.
    let started = Instant::now();
    let r = root
        .post("/admin/keys", json!({"user": "tmp", "expires_in": "2s"}))
        .await;
    let short = r.json()["key"].as_str().unwrap().to_owned();
    assert_eq!(gw.chat(&short, CHAT).await.status, 200);
    let left = (started + Duration::from_secs(10)).saturating_duration_since(Instant::now());
    eventually("the key to expire", left, async || {
        let status = gw.chat(&short, CHAT).await.status;
        assert!(status == 401 || status == 200, "{status}");
        status == 401
    })
    .await;
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "expired too early"
    );
}

#[tokio::test]
async fn login_tokens_logout_and_tampering() {
    let mock = MockUpstream::start().await;
    let gw = start_with_root(builder(&mock).user("alice", "member"));

    let r = login(&gw, "root", ROOT_PASSWORD).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let token = v["token"].as_str().unwrap().to_owned();
    assert!(v["expires_at"].as_str().unwrap().ends_with('Z'), "{v}");
    assert_eq!(
        r.header("content-length").unwrap(),
        r.body.len().to_string()
    );

    let session = gw.admin_as(&token);
    let r = session.get("/admin/users").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.header(REFRESH_HEADER).is_none(),
        "a young session is not refreshed"
    );

    // One byte changed anywhere (payload or signature) is refused.
    let dot = token.find('.').unwrap();
    for at in [2, dot / 2, dot - 1, dot + 1, dot + 10, token.len() - 2] {
        let tampered = tamper(&token, at);
        assert_error(&gw.admin_as(&tampered).get("/admin/users").await, 401);
    }

    // Wrong password, unknown user, member, bad bodies.
    let wrong = login(&gw, "root", "not-the-password").await;
    let unknown = login(&gw, "nobody", ROOT_PASSWORD).await;
    let member = login(&gw, "alice", "whatever-password").await;
    assert_error(&wrong, 401);
    assert_eq!(
        (wrong.status, wrong.text()),
        (unknown.status, unknown.text())
    );
    assert_eq!((wrong.status, wrong.text()), (member.status, member.text()));
    for body in [
        &b"{\"username\":\"root\"}"[..],
        b"not json",
        b"{\"username\":\"root\",\"password\":\"x\",\"otp\":1}",
    ] {
        let r = gw
            .admin_anonymous()
            .send("POST", "/admin/login", body)
            .await;
        assert_error(&r, 422);
    }

    // Logout needs a session; afterwards the token is refused.
    let admin_key = gw.create_key("root", &[]);
    let by_key = gw.admin_as(&admin_key);
    assert_error(&by_key.send("POST", "/admin/logout", b"").await, 422);
    let r = session.send("POST", "/admin/logout", b"").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let m = assert_error(&session.get("/admin/users").await, 401);
    assert!(m.contains("revoked"), "{m}");
    assert_error(&session.send("POST", "/admin/logout", b"").await, 401);
    // Another session is unaffected by the first one's logout.
    let other = login_ok(&gw).await;
    assert_eq!(gw.admin_as(&other).get("/admin/keys").await.status, 200);
}

#[tokio::test]
async fn sessions_expire_and_are_refreshed_past_half_life() {
    let mock = MockUpstream::start().await;
    let gw = start_with_root(builder(&mock).admin("session_ttl_s", 4));
    // Timed from before the login: the session's expiry (whole seconds) cannot be earlier.
    let logged_in = Instant::now();
    let token = login_ok(&gw).await;
    let session = gw.admin_as(&token);
    // What is left of the 10 s each wait below may take, counted from `from`.
    let left =
        |from: Instant| (from + Duration::from_secs(10)).saturating_duration_since(Instant::now());

    // Ask until the refresh header appears: past half of the 4 s lifetime.
    let fresh = eventually("a refresh header", left(logged_in), async || {
        let r = session.get("/admin/users").await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.header(REFRESH_HEADER).map(str::to_owned)
    })
    .await;
    let refreshed_after = logged_in.elapsed();
    assert!(
        refreshed_after >= Duration::from_millis(900),
        "refreshed after {refreshed_after:?}"
    );
    assert_ne!(fresh, token);
    let r = gw.admin_as(&fresh).get("/admin/users").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.header(REFRESH_HEADER).is_none(),
        "the new session is young"
    );

    // The old token stays valid only until its own expiry, then is refused; the wait
    // for time to pass is what is tested.
    let refused = eventually("the old token to expire", left(logged_in), async || {
        let r = session.get("/admin/users").await;
        if r.status == 401 {
            return Some(r);
        }
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(
            r.header(REFRESH_HEADER).is_none(),
            "a replaced session is refreshed only once"
        );
        None
    })
    .await;
    let m = assert_error(&refused, 401);
    assert!(m.contains("expired"), "{m}");
    assert!(
        logged_in.elapsed() >= Duration::from_secs(3),
        "expired after {:?}",
        logged_in.elapsed()
    );

    // An unused token expires too.
    let idle = login_ok(&gw).await;
    let issued = Instant::now();
    eventually("the idle token to expire", left(issued), async || {
        // No request before its expiry: one past half-life would only refresh it.
        if issued.elapsed() < Duration::from_secs(4) {
            return false;
        }
        gw.admin_as(&idle).get("/admin/users").await.status == 401
    })
    .await;
}

#[tokio::test]
async fn a_bad_session_lifetime_is_refused_at_start() {
    let (status, out) = GatewayBuilder::new()
        .admin("session_ttl_s", 0)
        .start_expect_failure();
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("admin.session_ttl_s"), "{out}");
}

#[tokio::test]
async fn failed_logins_are_rate_limited_per_address_and_name() {
    let mock = MockUpstream::start().await;
    let gw = start_with_root(builder(&mock));

    // A failed login takes as long for an unknown user as for a wrong password: both
    // run one argon2 verification. Compared loosely (minimum of three each) so that a
    // busy machine does not fail it.
    let mut wrong = Duration::MAX;
    let mut unknown = Duration::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        assert_eq!(login(&gw, "root", "wrong-password").await.status, 401);
        wrong = wrong.min(t.elapsed());
        let t = Instant::now();
        assert_eq!(
            login(&gw, "nobody-at-all", "wrong-password").await.status,
            401
        );
        unknown = unknown.min(t.elapsed());
    }
    assert!(
        unknown * 2 >= wrong,
        "unknown user answered in {unknown:?}, wrong password in {wrong:?}"
    );
    for _ in 0..2 {
        assert_eq!(login(&gw, "root", "wrong-password").await.status, 401);
    }
    // After root's fifth failure from this address, root's logins from it wait, even
    // with the right password (README "Admin listener" says why; the back-off itself is
    // tested in tests/admin_logins.rs).
    let r = login(&gw, "root", ROOT_PASSWORD).await;
    assert_error(&r, 429);
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");

    // Failed logins are audited, without the name typed when it is nobody's.
    let admin_key = gw.create_key("root", &[]);
    let audit = gw.admin_as(&admin_key).get("/admin/audit").await.json();
    let failed: Vec<&Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "login.failed")
        .collect();
    assert_eq!(failed.len(), 8, "{audit}");
    assert!(failed
        .iter()
        .all(|e| e["actor"] == "-" && e["source"] == "127.0.0.1"));
    assert!(!audit.to_string().contains("nobody-at-all"), "{audit}");
    assert!(!audit.to_string().contains("wrong-password"), "{audit}");
}

#[tokio::test]
async fn provider_keys_and_the_audit_log() {
    let mock = MockUpstream::start().await;
    let gw = start_with_root(builder(&mock).user("alice", "member"));
    let admin_key = gw.create_key("root", &[]);
    let alice_key = gw.create_key("alice", &[]);
    let token = login_ok(&gw).await;
    let t = token.as_str();
    let (admin, session) = (gw.admin_as(&admin_key), gw.admin_as(t));
    let provider_secret = "sk-provider-secret-9d8e7f";
    let ops_password = "ops-password-5b6c7d";

    // Provider keys: status, set (used at once), refusals, delete.
    let r = session.get("/admin/provider-keys/main?user=alice").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["set"], false);
    let body = json!({"key": provider_secret});
    let r = session
        .put("/admin/provider-keys/main?user=alice", body.clone())
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(
        (
            v["upstream"].as_str(),
            v["user"].as_str(),
            v["set"].as_bool()
        ),
        (Some("main"), Some("alice"), Some(true))
    );
    assert!(v["updated_at"].is_string());
    assert_eq!(gw.chat(&alice_key, CHAT).await.status, 200);
    assert_eq!(
        mock.last_request().unwrap().header("authorization"),
        Some(format!("Bearer {provider_secret}").as_str()),
        "a key set through the API is used from the next request"
    );
    let r = session.get("/admin/provider-keys/main?user=alice").await;
    assert_eq!(r.json()["set"], true);
    assert!(!r.text().contains(provider_secret));
    let r = session.get("/admin/provider-keys/main").await;
    assert_eq!(r.json()["set"], false, "the global key is another one");

    assert_error(
        &session
            .put("/admin/provider-keys/nosuch", body.clone())
            .await,
        404,
    );
    assert_error(&session.get("/admin/provider-keys/nosuch").await, 404);
    assert_error(&session.delete("/admin/provider-keys/nosuch").await, 404);
    assert_error(
        &session
            .put("/admin/provider-keys/main?user=nobody", body.clone())
            .await,
        404,
    );
    for bad in [
        json!({"key": ""}),
        json!({"key": "has space"}),
        json!({"key": 5}),
        json!({"secret": "x"}),
    ] {
        let m = assert_error(
            &session.put("/admin/provider-keys/main", bad.clone()).await,
            422,
        );
        assert!(!m.contains("has space"), "{m}");
    }
    let r = session.delete("/admin/provider-keys/main?user=alice").await;
    assert_eq!((r.status, r.json()["deleted"].as_bool()), (200, Some(true)));
    let r = session.delete("/admin/provider-keys/main?user=alice").await;
    assert_eq!(
        (r.status, r.json()["deleted"].as_bool()),
        (200, Some(false)),
        "idempotent"
    );
    assert_eq!(gw.chat(&alice_key, CHAT).await.status, 200);
    assert_eq!(
        mock.last_request().unwrap().header("authorization"),
        Some("Bearer sk-configured")
    );

    // More actions: a user with a password, a key, its revocation, the user's deletion,
    // a failed login, a logout.
    let r = session
        .post(
            "/admin/users",
            json!({"username": "ops", "role": "admin", "password": ops_password}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let ops_id = r.json()["id"].as_i64().unwrap();
    let ops_token = login(&gw, "ops", ops_password).await.json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = gw
        .admin_as(&ops_token)
        .post("/admin/keys", json!({"user": "alice", "name": "laptop"}))
        .await;
    assert_eq!(r.status, 201);
    let (new_id, new_key) = (
        r.json()["id"].as_str().unwrap().to_owned(),
        r.json()["key"].as_str().unwrap().to_owned(),
    );
    assert_eq!(
        admin.delete(&format!("/admin/keys/{new_id}")).await.status,
        200
    );
    assert_eq!(
        session
            .delete(&format!("/admin/users/{ops_id}"))
            .await
            .status,
        200
    );
    // The deleted admin's session died with it.
    assert_error(&gw.admin_as(&ops_token).get("/admin/users").await, 401);
    assert_eq!(login(&gw, "root", "wrong-password").await.status, 401);
    assert_eq!(session.send("POST", "/admin/logout", b"").await.status, 200);

    let r = admin.get("/admin/audit").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let entries = r.json();
    let actions: Vec<(&str, &str, &str)> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap(),
                e["action"].as_str().unwrap(),
                e["target"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("root", "logout", "root"),
            ("-", "login.failed", "root"),
            ("root", "user.delete", "ops"),
            ("root", "key.revoke", new_id.as_str()),
            ("ops", "key.create", new_id.as_str()),
            ("ops", "login", "ops"),
            ("root", "user.create", "ops"),
            ("root", "provider_key.delete", "main"),
            ("root", "provider_key.delete", "main"),
            ("root", "provider_key.set", "main"),
            ("root", "login", "root"),
        ],
        "{entries:#}"
    );
    for e in entries.as_array().unwrap() {
        assert_eq!(e["source"], "127.0.0.1", "{e}");
        assert!(e["time"].as_str().unwrap().ends_with('Z'), "{e}");
    }
    assert_eq!(
        entries[9]["detail"],
        json!({"upstream": "main", "user": "alice", "replaced": false})
    );
    assert_eq!(entries[4]["detail"]["user"], "alice");
    let r = admin.get("/admin/audit?limit=2").await;
    assert_eq!(r.json().as_array().unwrap().len(), 2);
    for bad in ["0", "abc", "1001", "-1"] {
        assert_error(&admin.get(&format!("/admin/audit?limit={bad}")).await, 422);
    }

    // No secret anywhere: not in the audit log, not in the process's logs.
    let audit_text = r.text() + &entries.to_string();
    let logs = gw.logs();
    for secret in [
        ROOT_PASSWORD,
        ops_password,
        provider_secret,
        admin_key.as_str(),
        alice_key.as_str(),
        new_key.as_str(),
        t,
        ops_token.as_str(),
        &t[t.find('.').unwrap() + 1..],
    ] {
        assert!(
            !audit_text.contains(secret),
            "secret in the audit log: {audit_text}"
        );
        assert!(!logs.contains(secret), "secret in the logs:\n{logs}");
    }
    assert!(logs.contains("admin: root user.delete ops"), "{logs}");
}
