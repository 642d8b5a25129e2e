//! Keys and users changed in place (README "Users and keys", "Admin listener"):
//! `tollgate key update` / `user update` and `PATCH /admin/keys/{id}` /
//! `PATCH /admin/users/{id}` follow the rules of creation, are audited, and are in force
//! from the very next request on every gateway running on the store.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use common::{messages_body, Gateway, Scenario, CHAT};
use serde_json::{json, Value};

/// The three-dialect scenario with prices and an admin `root` (and its key), plus a
/// second gateway on the same store.
async fn setup() -> (Scenario, Gateway, String) {
    let s = Scenario::start_with(|config| {
        config
            .price(
                "claude-sonnet-4*",
                "{ input: 3.0, output: 15.0, cache_read: 0.30, cache_write: 3.75 }",
            )
            .user("root", "admin")
    })
    .await;
    let admin = s.gw.create_key("root", &[]);
    let mut other = s.gw.another();
    other.start();
    (s, other, admin)
}

fn key_id(key: &str) -> &str {
    key.split('_').nth(1).unwrap()
}

/// The key's listing (`key list --json`), but for when it was last used.
fn listed(gw: &Gateway, id: &str) -> Value {
    let all: Value = serde_json::from_str(&gw.cli_ok(&["key", "list", "--json"])).unwrap();
    let mut key = all
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id)
        .unwrap()
        .clone();
    key.as_object_mut().unwrap().remove("last_used_at");
    key
}

/// `(status, stderr)` of a CLI command expected to fail.
fn refused(gw: &Gateway, args: &[&str]) -> (Option<i32>, String) {
    let out = gw.cli(args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The statuses of one chat request with `key` on each gateway.
async fn chat_statuses(gateways: &[&Gateway], key: &str) -> Vec<u16> {
    let mut out = Vec::new();
    for gw in gateways {
        out.push(gw.chat(key, CHAT).await.status);
    }
    out
}

#[tokio::test]
async fn key_update_changes_scopes_and_limits_at_once_everywhere() {
    let (s, other, admin) = setup().await;
    let gw = &s.gw;
    let both = [gw, &other];
    let key = gw.create_key("alice", &["--name", "laptop"]);
    let id = key_id(&key);
    assert_eq!(chat_statuses(&both, &key).await, [200, 200]);

    // Scopes: the very next request on either gateway is out of scope.
    let out = gw.cli_ok(&["key", "update", id, "--models", "claude-*"]);
    assert_eq!(out, format!("updated key {id}\n"));
    assert_eq!(chat_statuses(&both, &key).await, [403, 403]);
    for g in both {
        let r = g.messages(&key, messages_body("claude-sonnet-4-5")).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // Back to every model, and a rate limit of one request per minute.
    gw.cli_ok(&["key", "update", id, "--models", "", "--rpm", "1"]);
    assert_eq!(chat_statuses(&[&other], &key).await, [200]);
    assert_eq!(chat_statuses(&[&other], &key).await, [429]);
    gw.cli_ok(&["key", "update", id, "--rpm", "none"]);
    assert_eq!(chat_statuses(&[&other], &key).await, [200]);

    // What was not given stays; the listing shows the rest.
    gw.cli_ok(&[
        "key",
        "update",
        id,
        "--budget-usd",
        "0.5",
        "--tpm",
        "1000",
        "--expires-in",
        "30d",
    ]);
    let k = listed(gw, id);
    assert_eq!(
        (&k["name"], &k["models"], &k["rpm"], &k["tpm"]),
        (&json!("laptop"), &json!([]), &Value::Null, &json!(1000))
    );
    assert_eq!(
        (&k["budget_usd"], &k["budget_period"]),
        (&json!("0.50"), &json!("month"))
    );
    assert!(k["expires_at"].is_string());
    gw.cli_ok(&["key", "update", id, "--expires-in", "never", "--name", ""]);
    let k = listed(gw, id);
    assert_eq!((&k["expires_at"], &k["name"]), (&Value::Null, &Value::Null));

    // The rules of `key create`, one line each; nothing changes.
    let before = listed(gw, id);
    for (args, status, message) in [
        (
            vec!["--rpm", "0"],
            1,
            "--rpm and --tpm must be greater than 0",
        ),
        (
            vec!["--models", "gpt 4"],
            1,
            "invalid model pattern \"gpt 4\"",
        ),
        (vec!["--expires-in", "soon"], 1, "invalid duration 'soon'"),
        (vec!["--budget-usd=-1"], 1, "invalid amount '-1'"),
        (vec![], 1, "nothing to change"),
        (vec!["--rpm", "lots"], 2, "(or `none` to remove it)"),
    ] {
        let mut full = vec!["key", "update", id];
        full.extend(args.iter().copied());
        let (code, stderr) = refused(gw, &full);
        assert_eq!(code, Some(status), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    let (code, stderr) = refused(gw, &["key", "update", "nope", "--rpm", "5"]);
    assert_eq!(
        (code, stderr.as_str()),
        (Some(1), "tollgate: no key with id 'nope'\n")
    );
    assert_eq!(listed(gw, id), before);

    // Audited, naming what changed.
    let audit = gw.admin_as(&admin).get("/admin/audit").await.json();
    let updates: Vec<&Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "key.update")
        .collect();
    assert_eq!(updates.len(), 5, "{audit}");
    assert_eq!(
        (&updates[4]["actor"], &updates[4]["target"]),
        (&json!("cli"), &json!(id))
    );
    assert_eq!(
        updates[4]["detail"],
        json!({"user": "alice", "models": ["claude-*"]})
    );
}

#[tokio::test]
async fn a_budget_removed_through_the_api_lets_the_next_request_through() {
    let (s, other, admin) = setup().await;
    let gw = &s.gw;
    let api = gw.admin_as(&admin);
    // claude messages.json costs 9,242,400 nano-dollars: over a budget of 0.001.
    let key = gw.create_key(
        "alice",
        &["--budget-usd", "0.001", "--budget-period", "day"],
    );
    let id = key_id(&key);
    let body = messages_body("claude-sonnet-4-5");
    assert_eq!(gw.messages(&key, &body).await.status, 200);
    gw.usage_after(&admin, "day", 1).await;
    assert_eq!(gw.messages(&key, &body).await.status, 429);

    let path = format!("/admin/keys/{id}");
    let r = api
        .send("PATCH", &path, br#"{"budget_usd": null, "name": "ci"}"#)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(
        (&v["id"], &v["name"], &v["budget_usd"], &v["budget_period"]),
        (&json!(id), &json!("ci"), &Value::Null, &Value::Null)
    );
    assert!(v.get("key").is_none(), "no secret in an update's answer");
    for g in [gw, &other] {
        assert_eq!(g.messages(&key, &body).await.status, 200);
    }
    // Scopes through the API hold on the other gateway at once.
    let r = api
        .send("PATCH", &path, br#"{"models": ["gemini-*"]}"#)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(other.messages(&key, &body).await.status, 403);

    // Refusals: the rules of creation (422), unknown fields (422), no key (404).
    for (body, status) in [
        (r#"{"rpm": 0}"#, 422),
        (r#"{"user": "bob"}"#, 422),
        (r#"{"expires_in": "soon"}"#, 422),
        ("{}", 422),
        ("not json", 422),
    ] {
        let r = api.send("PATCH", &path, body.as_bytes()).await;
        assert_eq!(r.status, status, "{body}: {}", r.text());
    }
    let r = api
        .send("PATCH", "/admin/keys/nope", br#"{"rpm": 5}"#)
        .await;
    assert_eq!(r.status, 404, "{}", r.text());
    let audit = api.get("/admin/audit?limit=2").await.json();
    assert_eq!(
        (&audit[0]["actor"], &audit[0]["action"], &audit[0]["detail"]),
        (
            &json!("root"),
            &json!("key.update"),
            &json!({"user": "alice", "models": ["gemini-*"]})
        )
    );
    assert_eq!(audit[1]["detail"]["budget_usd"], Value::Null);
}

#[tokio::test]
async fn user_update_changes_budget_role_and_password_at_once() {
    let (s, other, admin) = setup().await;
    let gw = &s.gw;
    let api = gw.admin_as(&admin);
    // A user budget under one request's cost: the second request is refused.
    gw.cli_ok(&["user", "add", "bob", "--budget-usd", "0.001"]);
    let key = gw.create_key("bob", &[]);
    let body = messages_body("claude-sonnet-4-5");
    assert_eq!(gw.messages(&key, &body).await.status, 200);
    gw.usage_after(&admin, "day", 1).await;
    // (Spend is counted by each gateway alone: the one that served it refuses.)
    assert_eq!(gw.messages(&key, &body).await.status, 429);
    let out = gw.cli_ok(&["user", "update", "bob", "--budget-usd", "none"]);
    assert_eq!(out, "updated user bob\n");
    assert_eq!(gw.messages(&key, &body).await.status, 200);

    // The role through the API: bob's key opens the admin API from the next request.
    let users = api.get("/admin/users").await.json();
    let bob = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "bob")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    assert_eq!(other.admin_as(&key).get("/admin/users").await.status, 403);
    let r = api
        .send(
            "PATCH",
            &format!("/admin/users/{bob}"),
            br#"{"role": "admin", "password": "bob-password-1", "budget_usd": "20", "budget_period": "day"}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"id": bob, "username": "bob", "role": "admin", "budget_usd": "20.00",
               "budget_period": "day", "created_at": r.json()["created_at"]})
    );
    assert_eq!(other.admin_as(&key).get("/admin/users").await.status, 200);
    let login = |pw: &str| json!({"username": "bob", "password": pw});
    let r = gw
        .admin_anonymous()
        .post("/admin/login", login("bob-password-1"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let token = r.json()["token"].as_str().unwrap().to_owned();

    // A new password from stdin ends bob's sessions.
    let out = gw.cli_with_stdin(
        &["user", "update", "bob", "--password-stdin"],
        b"bob-password-2\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "updated user bob (1 session ended)\n"
    );
    assert_eq!(gw.admin_as(&token).get("/admin/users").await.status, 401);
    let r = gw
        .admin_anonymous()
        .post("/admin/login", login("bob-password-2"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());

    // The rules of `user add`, and the last admin kept.
    let api_patch = async |id: i64, body: &str| {
        api.send("PATCH", &format!("/admin/users/{id}"), body.as_bytes())
            .await
    };
    assert_eq!(api_patch(bob, r#"{"role": "owner"}"#).await.status, 422);
    let r = api_patch(bob, r#"{"password": "short"}"#).await;
    assert_eq!(r.status, 422);
    assert!(!r.text().contains("short"), "{}", r.text());
    assert_eq!(api_patch(bob, "{}").await.status, 422);
    assert_eq!(api_patch(999, r#"{"role": "admin"}"#).await.status, 404);
    gw.cli_ok(&["user", "update", "bob", "--role", "member"]);
    let (code, stderr) = refused(gw, &["user", "update", "root", "--role", "member"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("the last admin"), "{stderr}");
    let root = api.get("/admin/users").await.json()[0]["id"]
        .as_i64()
        .unwrap();
    assert_eq!(api_patch(root, r#"{"role": "member"}"#).await.status, 409);
    let (code, stderr) = refused(gw, &["user", "update", "nobody", "--role", "admin"]);
    assert_eq!(
        (code, stderr.as_str()),
        (Some(1), "tollgate: unknown user 'nobody'\n")
    );

    let audit = api.get("/admin/audit").await.json();
    let updates: Vec<(&str, &Value)> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "user.update")
        .map(|e| (e["actor"].as_str().unwrap(), &e["detail"]))
        .collect();
    assert_eq!(updates.len(), 4, "{audit}");
    assert_eq!(
        updates[1],
        (
            "cli",
            &json!({"id": bob, "password": true, "sessions_ended": 1})
        )
    );
    assert_eq!(updates[2].0, "root");
    assert_eq!(updates[2].1["role"], "admin");
    assert!(!audit.to_string().contains("bob-password"), "{audit}");
}
