//! Changes that must hold at once (README "Users and keys"): once `tollgate key revoke`
//! or `user delete` returns, or the admin API of any gateway answers, no gateway running
//! on the store accepts the key, not even the one request after; with several gateways
//! on one store (a graceful upgrade runs two side by side) each one is told. The CLI
//! succeeds when no gateway runs, removes what a killed one left, and says so (exit 1)
//! when a live one does not acknowledge.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use common::{eventually, Gateway, GatewayBuilder, MockUpstream, Upstream, CHAT};

/// A gateway routing everything to `mock`, a member `alice` with a key, and a second
/// gateway on the same store.
fn two_gateways(mock: &MockUpstream) -> (Gateway, Gateway, String) {
    let (a, key) = GatewayBuilder::new()
        .only_upstream(Upstream::openai("o", mock).keys(&["sk"]))
        .start_with_key("alice");
    let mut b = a.another();
    b.start();
    (a, b, key)
}

fn key_id(key: &str) -> &str {
    key.split('_').nth(1).unwrap()
}

/// Asserts that the key works on each gateway, twice (the second time from what the
/// gateway remembers of the verified secret).
async fn works_on(gateways: &[&Gateway], key: &str) {
    for gw in gateways {
        for _ in 0..2 {
            let r = gw.chat(key, CHAT).await;
            assert_eq!(r.status, 200, "{}", r.text());
        }
    }
}

/// Asserts that the very next request with the key is refused by each gateway with a
/// message containing `why`.
async fn refused_by(gateways: &[&Gateway], key: &str, why: &str) {
    for gw in gateways {
        let r = gw.chat(key, CHAT).await;
        assert_eq!(r.status, 401, "{}", r.text());
        let m = r.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(m.contains(why), "{m}");
    }
}

#[track_caller]
fn succeeded_quietly(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.is_empty(), "{stderr}");
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// The control sockets of the gateways on `gw`'s store.
fn sockets(gw: &Gateway) -> Vec<PathBuf> {
    match std::fs::read_dir(gw.dir().join("control")) {
        Ok(d) => d.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

#[tokio::test]
async fn a_revoked_key_is_refused_by_every_gateway_on_the_next_request() {
    let mock = MockUpstream::start().await;
    let (a, b, key) = two_gateways(&mock);
    assert_eq!(sockets(&a).len(), 2);
    works_on(&[&a, &b], &key).await;
    let out = a.cli(&["key", "revoke", key_id(&key)]);
    assert_eq!(
        succeeded_quietly(&out),
        format!("revoked key {}\n", key_id(&key))
    );
    refused_by(&[&a, &b], &key, "revoked").await;
}

#[tokio::test]
async fn a_deleted_users_keys_are_refused_by_every_gateway_on_the_next_request() {
    let mock = MockUpstream::start().await;
    let (a, b, key) = two_gateways(&mock);
    a.add_user("bob", "member");
    let bobs = [a.create_key("bob", &[]), a.create_key("bob", &[])];
    for k in &bobs {
        works_on(&[&a, &b], k).await;
    }
    let out = a.cli(&["user", "delete", "bob"]);
    assert_eq!(
        succeeded_quietly(&out),
        "deleted user bob (2 keys and 0 sessions revoked)\n"
    );
    for k in &bobs {
        refused_by(&[&a, &b], k, "revoked").await;
    }
    // Alice's key is untouched.
    works_on(&[&a, &b], &key).await;
    let out = a.cli(&["user", "delete", "bob"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "tollgate: unknown user 'bob'\n"
    );
}

#[tokio::test]
async fn an_expiry_change_holds_on_every_gateway_at_once() {
    let mock = MockUpstream::start().await;
    let (a, b, _) = two_gateways(&mock);
    let key = a
        .cli_ok(&["key", "create", "--user", "alice", "--expires-in", "1s"])
        .trim()
        .to_owned();
    // Both gateways see the key expire; the wait for time to pass is what is awaited.
    for gw in [&a, &b] {
        eventually("the key to expire", Duration::from_secs(10), async || {
            let r = gw.chat(&key, CHAT).await;
            assert!(matches!(r.status, 200 | 401), "{}", r.text());
            r.status == 401
        })
        .await;
    }
    refused_by(&[&a, &b], &key, "expired").await;
    // A new expiry is in force on both from the very next request.
    let out = a.cli(&["key", "update", key_id(&key), "--expires-in", "1h"]);
    succeeded_quietly(&out);
    works_on(&[&a, &b], &key).await;
}

#[tokio::test]
async fn a_revocation_through_one_gateways_admin_api_holds_on_the_others_at_once() {
    let mock = MockUpstream::start().await;
    let (a, b, key) = two_gateways(&mock);
    a.add_user("root", "admin");
    let admin = a.create_key("root", &[]);
    works_on(&[&a, &b], &key).await;
    let r = a
        .admin_as(&admin)
        .delete(&format!("/admin/keys/{}", key_id(&key)))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    refused_by(&[&b, &a], &key, "revoked").await;
}

#[tokio::test]
async fn a_gateway_that_does_not_acknowledge_is_reported() {
    let mock = MockUpstream::start().await;
    let (a, mut b, key) = two_gateways(&mock);
    works_on(&[&a, &b], &key).await;
    // A stopped process: its socket accepts the connection, nobody answers.
    b.signal("STOP");
    let started = Instant::now();
    let out = a.cli(&["key", "revoke", key_id(&key)]);
    let took = started.elapsed();
    b.signal("CONT");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // The change itself is done, and said so on stdout; stderr names the gateway.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("revoked key {}\n", key_id(&key))
    );
    assert!(
        stderr.starts_with("tollgate: the gateway listening on ")
            && stderr.contains(&format!("/control/{}-", b.pid()))
            && stderr.contains("did not acknowledge within 5 s"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(8),
        "{took:?}"
    );
    refused_by(&[&a], &key, "revoked").await;
    // Resumed, the other one applies the change it was sent.
    eventually(
        "the resumed gateway to refuse the key",
        Duration::from_secs(5),
        async || b.chat(&key, CHAT).await.status == 401,
    )
    .await;
}

#[tokio::test]
async fn with_no_gateway_running_the_cli_succeeds_and_clears_what_a_killed_one_left() {
    let mock = MockUpstream::start().await;
    let mut gw = GatewayBuilder::new()
        .only_upstream(Upstream::openai("o", &mock).keys(&["sk"]))
        .build();
    // Never started: nothing to tell.
    gw.add_user("alice", "member");
    let key = gw.create_key("alice", &[]);
    succeeded_quietly(&gw.cli(&["key", "revoke", key_id(&key)]));
    // Killed without its clean exit: its socket stays behind, and is removed by the
    // next command that finds nobody listening.
    gw.start();
    let key = gw.create_key("alice", &[]);
    let left = sockets(&gw);
    assert_eq!(left.len(), 1);
    gw.kill();
    assert!(left[0].exists());
    succeeded_quietly(&gw.cli(&["key", "revoke", key_id(&key)]));
    assert!(!left[0].exists());
    assert!(sockets(&gw).is_empty());
}

#[tokio::test]
async fn a_clean_stop_removes_the_control_socket() {
    let mock = MockUpstream::start().await;
    let (mut gw, _key) = GatewayBuilder::new()
        .only_upstream(Upstream::openai("o", &mock).keys(&["sk"]))
        .start_with_key("alice");
    let socket = sockets(&gw).pop().unwrap();
    gw.terminate();
    let status = gw.exit_status(Duration::from_secs(10)).await;
    assert!(status.success(), "{status:?}");
    assert!(!socket.exists());
}
