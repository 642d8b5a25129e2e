//! Pingora's graceful upgrade (`tollgate serve -u`, then SIGQUIT to the running
//! instance): the listening sockets pass to the new process and no request fails, under
//! continuous load.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::gateway::GatewayBuilder;
use common::http::try_request;
use common::mock_upstream::MockUpstream;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

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
    let ups = format!(
        "  - name: a\n    kind: anthropic\n    base_url: \"{}\"\n",
        mock.base_url()
    );
    let (proxy_port, admin_port) = (free_port(), free_port());
    // Stands in for systemd's notify socket (`Type=notify`, `NotifyAccess=all`).
    let notify_dir = tempfile::tempdir().unwrap();
    let notify_path = notify_dir.path().join("notify.sock");
    let notify = tokio::net::UnixDatagram::bind(&notify_path).unwrap();
    let mut old = GatewayBuilder::new()
        .env("NOTIFY_SOCKET", notify_path.to_str().unwrap())
        .upstreams_yaml(ups)
        .routes_yaml("  - models: [\"*\"]\n    upstreams: [a]\n".into())
        .server_extra(format!(
            "  listen: [\"127.0.0.1:{proxy_port}\"]\n  shutdown_grace_s: 10\n"
        ))
        .admin_extra(format!("  listen: \"127.0.0.1:{admin_port}\"\n"))
        .start_with_user("alice");
    let key = old.create_key("alice", &[]);
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
            let body = br#"{"model":"claude-sonnet-4-5","max_tokens":9,"messages":[]}"#;
            while !stop.load(Ordering::SeqCst) {
                match try_request(
                    addr,
                    "POST",
                    "/v1/messages",
                    &[("x-api-key", key.as_str())],
                    body,
                )
                .await
                {
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
            let deadline = Instant::now() + Duration::from_secs(20);
            while ok.load(Ordering::SeqCst) < n {
                assert!(
                    Instant::now() < deadline,
                    "load stalled at {}",
                    ok.load(Ordering::SeqCst)
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
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
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() {
        assert!(
            Instant::now() < deadline,
            "the new process never opened {}",
            sock.display()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // ...and the running one hands them over on SIGQUIT, then drains and exits.
    old.signal("QUIT");
    let status = old
        .wait_exit_async(Duration::from_secs(30))
        .await
        .expect("the old process exits");
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
