//! How a gateway ends: after a clean stop (SIGTERM, SIGINT, or the old process of a
//! graceful upgrade) the pid file is gone (unless it names the process that took over)
//! and the SQLite store is checkpointed and closed, so no `-wal` or `-shm` file is left
//! beside it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::{eventually, fixed_port, Gateway, Scenario, CHAT};

/// `<db>-wal` and `<db>-shm` that exist now.
fn wal_files(db: &Path) -> Vec<PathBuf> {
    ["-wal", "-shm"]
        .iter()
        .map(|s| PathBuf::from(format!("{}{s}", db.display())))
        .filter(|p| p.exists())
        .collect()
}

fn pid_file(gw: &Gateway) -> PathBuf {
    gw.dir().join("tollgate.pid")
}

/// A gateway that served one request and stored its usage event: the store has
/// written through its WAL. Fixed ports, so that an upgraded process takes them over.
async fn served_once() -> Scenario {
    let (proxy, admin) = (fixed_port(), fixed_port());
    let s = Scenario::start_with(|c| {
        c.user("root", "admin")
            .server("listen", format!("[\"127.0.0.1:{proxy}\"]"))
            .admin("listen", format!("\"127.0.0.1:{admin}\""))
    })
    .await;
    let r = s.gw.chat(&s.key, CHAT).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let admin = s.gw.create_key("root", &[]);
    s.gw.usage_after(&admin, "model", 1).await;
    let pid = std::fs::read_to_string(pid_file(&s.gw)).unwrap();
    assert_eq!(pid.trim(), s.gw.pid().to_string());
    assert!(
        !wal_files(&s.gw.db_path()).is_empty(),
        "a serving gateway keeps its WAL open"
    );
    s
}

async fn stops_cleanly_on(signal: &str) {
    let mut s = served_once().await;
    s.gw.signal(signal);
    let status = s.gw.exit_status(Duration::from_secs(20)).await;
    assert!(status.success(), "{status:?}\n{}", s.gw.logs());
    assert!(
        !pid_file(&s.gw).exists(),
        "the pid file outlived a clean stop on SIG{signal}"
    );
    assert_eq!(
        wal_files(&s.gw.db_path()),
        Vec::<PathBuf>::new(),
        "SQLite files left behind after SIG{signal}"
    );
    // What was written before the stop is in the main database file.
    let out = s.gw.cli_ok(&["usage", "--json"]);
    assert!(out.contains("\"requests\":1"), "{out}");
}

#[tokio::test]
async fn sigterm_removes_the_pid_file_and_the_wal() {
    stops_cleanly_on("TERM").await;
}

#[tokio::test]
async fn sigint_removes_the_pid_file_and_the_wal() {
    stops_cleanly_on("INT").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_process_of_an_upgrade_leaves_the_new_ones_pid_file() {
    let mut s = served_once().await;
    let sock = s.gw.dir().join("upgrade.sock");
    let mut new =
        s.gw.command(&["serve", "-u"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
    let what = format!("the new process to open {}", sock.display());
    eventually(&what, Duration::from_secs(10), async || sock.exists()).await;
    s.gw.signal("QUIT");
    let status = s.gw.exit_status(Duration::from_secs(30)).await;
    assert!(status.success(), "{status:?}\n{}", s.gw.logs());
    let pid_path = pid_file(&s.gw);
    let new_pid = new.id().to_string();
    eventually(
        "the pid file to name the new process",
        Duration::from_secs(10),
        async || {
            let text = std::fs::read_to_string(&pid_path).unwrap_or_default();
            if text.trim() == new_pid {
                Ok(())
            } else {
                Err(format!("{text:?}"))
            }
        },
    )
    .await;
    // The new process serves on the same port and ends cleanly in turn.
    let r = s.gw.chat(&s.key, CHAT).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &new_pid])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = eventually(
        "the new process to exit",
        Duration::from_secs(20),
        async || new.try_wait().unwrap(),
    )
    .await;
    assert!(status.success(), "{status:?}");
    assert!(!pid_path.exists(), "the new process left its pid file");
    assert_eq!(wal_files(&s.gw.db_path()), Vec::<PathBuf>::new());
}
