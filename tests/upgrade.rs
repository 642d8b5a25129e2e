//! Pingora's graceful upgrade (`tollgate serve -u`, then SIGQUIT to the running
//! instance): the listening sockets pass to the new process and no request fails, under
//! continuous load; each process tells the service manager (`NOTIFY_SOCKET`) when it is
//! ready and that it is the main process.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::http::try_request;
use common::{eventually, fixed_port, messages_body, GatewayBuilder, MockUpstream, Upstream};

/// The next datagram sent to the notify socket (bounded wait).
async fn next_notice(sock: &tokio::net::UnixDatagram) -> String {
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(20), sock.recv(&mut buf))
        .await
        .expect("a readiness notice within 20 s")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_under_load_fails_no_request() {
    let mock = MockUpstream::start().await;
    let (proxy_port, admin_port) = (fixed_port(), fixed_port());
    // Stands in for systemd's notify socket (`Type=notify`, `NotifyAccess=all`).
    let notify_dir = tempfile::tempdir().unwrap();
    let notify_path = notify_dir.path().join("notify.sock");
    let notify = tokio::net::UnixDatagram::bind(&notify_path).unwrap();
    let (mut old, key) = GatewayBuilder::new()
        .env("NOTIFY_SOCKET", notify_path.to_str().unwrap())
        .only_upstream(Upstream::anthropic("a", &mock))
        .server("listen", format!("[\"127.0.0.1:{proxy_port}\"]"))
        .server("shutdown_grace_s", 10)
        .admin("listen", format!("\"127.0.0.1:{admin_port}\""))
        .start_with_key("alice");
    let addr = old.proxy_addr;
    let ready = next_notice(&notify).await;
    assert!(
        ready.contains("READY=1\n") && ready.contains(&format!("MAINPID={}\n", old.pid())),
        "{ready:?}"
    );

    // Continuous load: sequential requests on fresh connections until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (stop, ok, failed, key) = (stop.clone(), ok.clone(), failed.clone(), key.clone());
        workers.push(tokio::spawn(async move {
            let body = messages_body("claude-sonnet-4-5");
            let h = [("x-api-key", key.as_str())];
            while !stop.load(Ordering::SeqCst) {
                match try_request(addr, "POST", "/v1/messages", &h, body.as_bytes()).await {
                    Ok(r) if r.status == 200 && r.complete => ok.fetch_add(1, Ordering::SeqCst),
                    other => {
                        eprintln!(
                            "FAILED REQUEST: {:?}",
                            other.map(|r| (
                                r.status,
                                r.complete,
                                String::from_utf8_lossy(&r.body).to_string()
                            ))
                        );
                        failed.fetch_add(1, Ordering::SeqCst)
                    }
                };
            }
        }));
    }
    let wait_for = |n: usize| {
        let ok = ok.clone();
        async move {
            let what = format!("{n} requests served");
            eventually(&what, Duration::from_secs(20), async || {
                let served = ok.load(Ordering::SeqCst);
                if served >= n {
                    Ok(())
                } else {
                    Err(format!("load stalled at {served}"))
                }
            })
            .await
        }
    };
    wait_for(20).await;

    // The new process waits for the sockets on the upgrade socket...
    let sock = old.dir().join("upgrade.sock");
    let mut new = old
        .command(&["serve", "-u"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let what = format!("the new process to open {}", sock.display());
    eventually(&what, Duration::from_secs(10), async || sock.exists()).await;
    // ...and the running one hands them over on SIGQUIT, then drains and exits.
    old.signal("QUIT");
    let status = old.exit_status(Duration::from_secs(30)).await;
    assert!(status.success(), "{status:?}");
    // The new process names itself the service's main process once it serves.
    let ready = next_notice(&notify).await;
    assert!(
        ready.contains("READY=1\n") && ready.contains(&format!("MAINPID={}\n", new.id())),
        "{ready:?}"
    );
    let served_before_exit = ok.load(Ordering::SeqCst);
    wait_for(served_before_exit + 20).await; // the new process serves on the same port
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "{} requests failed during the upgrade",
        failed.load(Ordering::SeqCst)
    );
    assert!(
        new.try_wait().unwrap().is_none(),
        "the new process is serving"
    );
    let _ = new.kill();
    let _ = new.wait();
}
