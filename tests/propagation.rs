//! CONTRACT section 8: gateways on one PostgreSQL store, each in a directory of its own
//! (as on machines of their own: no control socket in common), see a change made
//! through another one's admin API within 1 s: a key created or revoked, a price set, a
//! provider key set, a user deleted. The store announces each change with NOTIFY in the
//! change's own transaction; every gateway LISTENs. Needs the PostgreSQL server
//! `.ci/setup` starts (a test database of its own per test).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::{eventually, Gateway, GatewayBuilder, MockUpstream, Upstream, CHAT};
use serde_json::json;
use tollgate::store::pg::test_db::TestDatabase;

/// The bound CONTRACT section 8 sets.
const WITHIN: Duration = Duration::from_secs(1);

fn on_postgres(mock: &MockUpstream, db: &TestDatabase) -> GatewayBuilder {
    GatewayBuilder::new()
        .only_upstream(Upstream::openai("o", mock).keys(&["sk-configured"]))
        .postgres(db.url())
}

/// Two gateways on the store, each in a directory of its own; `user` (with `role`) is
/// created before the first starts.
fn two_instances(
    mock: &MockUpstream,
    db: &TestDatabase,
    user: &str,
    role: &str,
) -> (Gateway, Gateway) {
    let a = on_postgres(mock, db).user(user, role).start();
    let b = on_postgres(mock, db).start();
    assert_ne!(a.dir(), b.dir());
    (a, b)
}

async fn status(gw: &Gateway, key: &str) -> u16 {
    gw.chat(key, CHAT).await.status
}

#[tokio::test]
async fn a_change_through_one_instance_is_in_force_on_the_other_within_a_second() {
    let db = TestDatabase::create();
    let mock = MockUpstream::start().await;
    let (a, b) = two_instances(&mock, &db, "root", "admin");
    let root_key = a.create_key("root", &[]);
    let (api_a, api_b) = (a.admin_as(&root_key), b.admin_as(&root_key));
    let r = api_a
        .post(
            "/admin/users",
            json!({"username": "alice", "role": "member"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let alice = r.json()["id"].as_i64().unwrap();

    // A key created through A authenticates on B.
    let r = api_a.post("/admin/keys", json!({"user": "alice"})).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let (key, id) = (
        r.json()["key"].as_str().unwrap().to_owned(),
        r.json()["id"].as_str().unwrap().to_owned(),
    );
    eventually(
        "the key created through A to work on B",
        WITHIN,
        async || status(&b, &key).await == 200,
    )
    .await;
    assert_eq!(status(&a, &key).await, 200);

    // Revoked through B: refused on A.
    let r = api_b.delete(&format!("/admin/keys/{id}")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    eventually("the revocation through B to reach A", WITHIN, async || {
        status(&a, &key).await == 401
    })
    .await;
    assert_eq!(status(&b, &key).await, 401);

    // A price set through A is B's.
    let r = api_a
        .put(
            "/admin/prices/gpt-propagated*",
            json!({"input": 1, "output": 2}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    eventually("the price set through A to be B's", WITHIN, async || {
        let prices = api_b.get("/admin/prices").await.json();
        prices
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["pattern"] == "gpt-propagated*" && p["output"] == 2.0)
    })
    .await;

    // A provider key set through B is used by A.
    let alice_key = a.create_key("alice", &[]);
    assert_eq!(status(&a, &alice_key).await, 200);
    let r = api_b
        .put(
            "/admin/provider-keys/o?user=alice",
            json!({"key": "sk-stored-alice"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    eventually(
        "the provider key set through B to be used by A",
        WITHIN,
        async || {
            assert_eq!(status(&a, &alice_key).await, 200);
            mock.last_request().unwrap().header("authorization") == Some("Bearer sk-stored-alice")
        },
    )
    .await;

    // A user deleted through A: its keys are refused by B.
    assert_eq!(status(&b, &alice_key).await, 200);
    let r = api_a.delete(&format!("/admin/users/{alice}")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    eventually(
        "the user deleted through A to lose its keys on B",
        WITHIN,
        async || status(&b, &alice_key).await == 401,
    )
    .await;
}

#[tokio::test]
async fn the_cli_on_another_machine_reaches_every_instance() {
    let db = TestDatabase::create();
    let mock = MockUpstream::start().await;
    let (a, b) = two_instances(&mock, &db, "alice", "member");
    // A CLI with a config of its own (a third directory): no control socket reaches
    // either gateway, the store's NOTIFY does.
    let cli = on_postgres(&mock, &db).build();
    let key = cli.create_key("alice", &[]);
    for gw in [&a, &b] {
        eventually("the key created by the CLI to work", WITHIN, async || {
            status(gw, &key).await == 200
        })
        .await;
    }
    let id = key.split('_').nth(1).unwrap();
    let out = cli.cli(&["key", "revoke", id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for gw in [&a, &b] {
        eventually(
            "the revocation by the CLI to reach the gateway",
            WITHIN,
            async || status(gw, &key).await == 401,
        )
        .await;
    }
}
