//! Backup and retention (README "Backup, restore and retention"): `tollgate backup FILE`
//! and `GET /admin/backup` take a consistent snapshot while the gateway serves, and a
//! restore done as the README says brings back every row; usage events older than
//! `storage.usage_retention_days` go by themselves, and `usage prune` /
//! `POST /admin/usage/prune` delete them on demand.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::calls::stored_requests;
use common::http::try_request;
use common::{eventually, Gateway, GatewayBuilder, MockUpstream, Upstream, CHAT};
use serde_json::json;

/// `SELECT COUNT(*) FROM <table>` in the SQLite file at `db`.
fn count(db: &Path, table: &str) -> i64 {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap();
    c.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A gateway with one upstream (`sk-configured`), an admin `root` and a member `alice`
/// whose own provider key for it is `sk-alice-own` (set before the start, so it is in
/// force at once): (gateway, alice's key, root's key).
async fn gateway(
    mock: &MockUpstream,
    configure: impl FnOnce(GatewayBuilder) -> GatewayBuilder,
) -> (Gateway, String, String) {
    let mut gw = configure(
        GatewayBuilder::new().only_upstream(Upstream::openai("o", mock).keys(&["sk-configured"])),
    )
    .build();
    gw.add_user("root", "admin");
    gw.add_user("alice", "member");
    let out = gw.cli_with_stdin(
        &["provider-key", "set", "--upstream", "o", "--user", "alice"],
        b"sk-alice-own",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    gw.start();
    let (alice, root) = (gw.create_key("alice", &[]), gw.create_key("root", &[]));
    (gw, alice, root)
}

/// Sends a chat request as `key`, which must answer 200, and checks the provider key
/// that went upstream.
async fn chat_reaches_upstream_with(
    gw: &Gateway,
    mock: &MockUpstream,
    key: &str,
    provider_key: &str,
) {
    let r = gw.chat(key, CHAT).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let sent = mock.last_request().unwrap();
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {provider_key}").as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_serving_restores_every_row() {
    let mock = MockUpstream::start().await;
    let (mut gw, alice, root) = gateway(&mock, |c| c).await;
    for _ in 0..10 {
        chat_reaches_upstream_with(&gw, &mock, &alice, "sk-alice-own").await;
    }
    gw.usage_after(&root, "model", 10).await;

    // Requests keep coming while the backup runs.
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let traffic = {
        let (stop, served, addr) = (stop.clone(), served.clone(), gw.proxy_addr);
        let auth = format!("Bearer {alice}");
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let h = [("authorization", auth.as_str())];
                let r =
                    try_request(addr, "POST", "/v1/chat/completions", &h, CHAT.as_bytes()).await;
                assert_eq!(r.unwrap().status, 200);
                served.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    eventually("traffic to flow", Duration::from_secs(10), async || {
        served.load(Ordering::SeqCst) >= 5
    })
    .await;
    let file = gw.dir().join("snapshot.db");
    let mut cmd = gw.command(&["backup", file.to_str().unwrap()]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    stop.store(true, Ordering::SeqCst);
    traffic.await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode(&file), 0o600);
    assert!(!Path::new(&format!("{}-wal", file.display())).exists());

    // The snapshot holds what was there when it was taken, nothing later.
    let in_backup = count(&file, "usage_events");
    assert!(in_backup >= 10, "{in_backup}");
    assert_eq!(count(&file, "users"), 2);
    assert_eq!(count(&file, "api_keys"), 2);
    assert_eq!(count(&file, "provider_keys"), 1);
    let later = gw.create_key("alice", &[]);

    // An existing file is not overwritten, unless asked.
    let before = std::fs::read(&file).unwrap();
    let again = gw.cli(&["backup", file.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1));
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("exists") && err.contains("--force"), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), before);
    let forced = gw.dir().join("forced.db");
    std::fs::write(&forced, "old").unwrap();
    gw.cli_ok(&["backup", "--force", forced.to_str().unwrap()]);
    assert_eq!(count(&forced, "api_keys"), 3);
    assert_eq!(mode(&forced), 0o600);

    // Restore as the README says: stop, put the file at storage.path, start.
    gw.terminate();
    assert!(gw.exit_status(Duration::from_secs(20)).await.success());
    std::fs::copy(&file, gw.db_path()).unwrap();
    gw.start();
    chat_reaches_upstream_with(&gw, &mock, &alice, "sk-alice-own").await;
    let doc = gw.usage_after(&root, "model", in_backup as u64 + 1).await;
    assert_eq!(stored_requests(&doc), in_backup as u64 + 1);
    let r = gw.chat(&later, CHAT).await;
    assert_eq!(r.status, 401, "a key created after the backup is not in it");
    let users = gw.cli_ok(&["user", "list"]);
    assert!(users.contains("alice") && users.contains("root"), "{users}");
}

#[tokio::test]
async fn admins_download_the_same_snapshot_and_it_is_audited() {
    let mock = MockUpstream::start().await;
    let (gw, alice, root) = gateway(&mock, |c| c).await;
    chat_reaches_upstream_with(&gw, &mock, &alice, "sk-alice-own").await;
    gw.usage_after(&root, "model", 1).await;

    let member = gw.admin_as(&alice).get("/admin/backup").await;
    assert_eq!(member.status, 403);
    let r = gw.admin_as(&root).get("/admin/backup").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );
    assert!(r
        .header("content-disposition")
        .unwrap()
        .starts_with("attachment"));
    assert!(r.body.starts_with(b"SQLite format 3\0"));
    let file = gw.dir().join("download.db");
    std::fs::write(&file, &r.body).unwrap();
    assert_eq!(count(&file, "users"), 2);
    assert_eq!(count(&file, "provider_keys"), 1);
    assert_eq!(count(&file, "usage_events"), 1);
    // The connection stays usable, and nothing is left behind in the storage directory.
    let post = gw.admin_as(&root).send("POST", "/admin/backup", b"").await;
    assert_eq!(post.status, 405);
    let left: Vec<String> = std::fs::read_dir(gw.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("backup"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let audit = gw.admin_as(&root).get("/admin/audit").await.json();
    assert_eq!(audit[0]["action"], "backup", "{audit}");
    assert_eq!(audit[0]["actor"], "root");
}

/// Stores `n` usage events `age_days` old for the key `key`, as the gateway would have.
fn store_old_events(gw: &Gateway, key: &str, age_days: i64, n: usize) {
    let db = rusqlite::Connection::open(gw.db_path()).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    let key_id = key.split('_').nth(1).unwrap();
    for i in 0..n {
        db.execute(
            "INSERT INTO usage_events (request_id, ts, key_id, dialect, endpoint, streamed, status, total_ms, model_served) \
             VALUES (?1, (unixepoch() - ?2 * 86400) * 1000, ?3, 'openai', 'chat_completions', 0, 200, 1, 'gpt-4o-mini')",
            rusqlite::params![format!("old-{age_days}-{i}"), age_days, key_id],
        )
        .unwrap();
    }
}

#[tokio::test]
async fn events_past_the_retention_period_go_by_themselves() {
    let mock = MockUpstream::start().await;
    let (mut gw, alice, root) = gateway(&mock, |c| c.storage("usage_retention_days", 2)).await;
    chat_reaches_upstream_with(&gw, &mock, &alice, "sk-alice-own").await;
    gw.usage_after(&root, "model", 1).await;
    store_old_events(&gw, &alice, 1, 3);
    store_old_events(&gw, &alice, 5, 1200);
    // The daily pass runs at start, then every day.
    gw.terminate();
    assert!(gw.exit_status(Duration::from_secs(20)).await.success());
    gw.start();
    eventually(
        "old events to be pruned",
        Duration::from_secs(20),
        async || match count(&gw.db_path(), "usage_events") {
            4 => Ok(()),
            n => Err(format!("{n} events")),
        },
    )
    .await;
    assert!(
        gw.wait_for_log(
            "retention: deleted 1200 usage events",
            Duration::from_secs(5)
        ),
        "{}",
        gw.logs()
    );
}

#[tokio::test]
async fn usage_is_pruned_on_demand_from_the_cli_and_the_admin_api() {
    let mock = MockUpstream::start().await;
    let (gw, alice, root) = gateway(&mock, |c| c).await;
    store_old_events(&gw, &alice, 10, 4);
    store_old_events(&gw, &alice, 3, 2);
    store_old_events(&gw, &alice, 0, 1);
    let out = gw.cli_ok(&["usage", "prune", "--older-than", "7d"]);
    assert!(out.starts_with("deleted 4 usage events"), "{out}");
    assert_eq!(count(&gw.db_path(), "usage_events"), 3);

    let api = gw.admin_as(&root);
    let r = api
        .post("/admin/usage/prune", json!({"older_than": "2d"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"deleted": 2}));
    assert_eq!(count(&gw.db_path(), "usage_events"), 1);
    let r = api
        .post("/admin/usage/prune", json!({"older_than": "soon"}))
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("soon"));
    let r = api.post("/admin/usage/prune", json!({"older": "2d"})).await;
    assert_eq!(r.status, 422);
    let r = gw
        .admin_as(&alice)
        .post("/admin/usage/prune", json!({"older_than": "1s"}))
        .await;
    assert_eq!(r.status, 403);
    let audit = api.get("/admin/audit").await.json();
    assert_eq!(audit[0]["action"], "usage.prune", "{audit}");
    assert_eq!(
        audit[0]["detail"],
        json!({"older_than": "2d", "deleted": 2})
    );
}
