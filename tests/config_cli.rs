//! The command line and config validation through the real binary: `check` reports every
//! problem at once with its key path and refuses a master key that does not open the
//! store; `serve` refuses a bad config or a busy port with exit 1; the shipped config is
//! valid; the user and key commands print what CONTRACT §1 promises and never a secret;
//! and a body that arrives too slowly gets a 408 within its deadline.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use common::http::{request, send_raw};
use common::{GatewayBuilder, MockUpstream, Upstream};

const BAD: &str = r#"server:
  listen: ["not-an-address"]
  threads: 0
  colour: blue
admin:
  listen: "127.0.0.1:0"
storage:
  path: "{dir}/t.db"
secrets:
  master_key: "${TOLLGATE_TEST_UNSET_VAR}"
upstreams:
  - name: a
    kind: llama
    base_url: "ftp://example.com"
routes:
  - models: ["gpt-*"]
    upstreams: [missing]
aliases:
  fast: "claude-x"
pricing:
  "gpt-*": { input: 0.0001, output: 1 }
"#;

#[test]
fn check_prints_every_problem_with_its_path_and_exits_1() {
    let gw = GatewayBuilder::new().full_config(BAD).build();
    let out = gw.cli(&["check"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for path in [
        "server.listen[0]",
        "server.colour: unknown key",
        "secrets.master_key: environment variable TOLLGATE_TEST_UNSET_VAR is not set",
    ] {
        assert!(err.contains(path), "missing {path:?} in:\n{err}");
    }
    assert!(
        err.lines()
            .all(|l| l.starts_with("tollgate: ") || l.contains("tollgate.yaml")),
        "{err}"
    );

    // With the syntax problems fixed, every semantic problem is listed at once.
    let semantic = BAD
        .replace("  colour: blue\n", "")
        .replace("${TOLLGATE_TEST_UNSET_VAR}", "");
    let gw = GatewayBuilder::new().full_config(&semantic).build();
    let out = gw.cli(&["check"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for path in [
        "server.listen[0]",
        "server.threads",
        "upstreams[0].kind",
        "upstreams[0].base_url",
        "routes[0].upstreams[0]: no upstream named 'missing'",
        "aliases.fast",
        "pricing.gpt-*.input",
    ] {
        assert!(err.contains(path), "missing {path:?} in:\n{err}");
    }
    assert!(!gw.db_path().exists(), "check must not create the store");
}

#[test]
fn serve_refuses_a_bad_config_and_a_busy_port() {
    let (status, out) = GatewayBuilder::new()
        .full_config(BAD)
        .start_expect_failure();
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("unknown key"), "{out}");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let (status, out) = GatewayBuilder::new()
        .server("listen", format!("[\"127.0.0.1:{port}\"]"))
        .start_expect_failure();
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(
        out.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{out}"
    );
    assert!(!out.contains("panicked"), "{out}");
}

#[test]
fn shipped_config_is_valid() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/tollgate.yaml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["check", "-c", shipped])
        .env_remove("OPENAI_API_KEY")
        .env_remove("TOLLGATE_MASTER_KEY")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK"));
}

#[test]
fn users_and_keys_from_the_cli() {
    let gw = GatewayBuilder::new().build();
    assert_eq!(gw.cli_ok(&["user", "add", "alice"]).lines().count(), 1);
    let dup = gw.cli(&["user", "add", "alice"]);
    assert_eq!(dup.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&dup.stderr).trim(),
        "tollgate: user 'alice' already exists"
    );
    let usage = gw.cli(&["user", "add"]);
    assert_eq!(usage.status.code(), Some(2), "usage errors exit 2");
    let key = gw.cli_ok(&[
        "key",
        "create",
        "--user",
        "alice",
        "--name",
        "laptop",
        "--models",
        "gpt-*,claude-*",
        "--rpm",
        "60",
    ]);
    assert_eq!(key.lines().count(), 1, "only the key is printed");
    let key = key.trim();
    assert!(key.starts_with("tg_"));
    let listed =
        gw.cli_ok(&["key", "list"]) + &gw.cli_ok(&["key", "list", "--user", "alice", "--json"]);
    assert!(!listed.contains(&key[16..]), "the secret was listed");
    assert!(
        listed.contains("laptop") && listed.contains("gpt-*"),
        "{listed}"
    );
    let users: serde_json::Value =
        serde_json::from_str(&gw.cli_ok(&["user", "list", "--json"])).unwrap();
    assert_eq!(users[0]["username"], "alice");
    let bad = gw.cli(&["key", "create", "--user", "bob"]);
    assert_eq!(
        String::from_utf8_lossy(&bad.stderr).trim(),
        "tollgate: unknown user 'bob'"
    );
    let bad = gw.cli(&["key", "create", "--user", "alice", "--expires-in", "soon"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("soon"));
    let id = key.split('_').nth(1).unwrap();
    assert!(gw.cli_ok(&["key", "revoke", id]).contains(id));
    assert_eq!(gw.cli(&["key", "revoke", "nope"]).status.code(), Some(1));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(gw.dir().join("master.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test]
async fn a_slow_body_gets_408_within_the_deadline() {
    let mock = MockUpstream::start().await;
    let (gw, key) = GatewayBuilder::new()
        .only_upstream(Upstream::openai("o", &mock))
        .server("body_timeout_ms", 300)
        .start_with_key("alice");
    // Announce 100 bytes, send 10, then nothing.
    let raw = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"model\":"
    );
    let started = std::time::Instant::now();
    let r = send_raw(gw.proxy_addr, raw.as_bytes()).await.unwrap();
    assert_eq!(r.status, 408, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "body_timeout");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert!(mock.requests().is_empty());
    let ok = request(gw.proxy_addr, "GET", "/healthz", &[], b"").await;
    assert_eq!(ok.status, 200);
}

#[test]
fn check_refuses_a_master_key_that_does_not_open_the_store() {
    let gw = GatewayBuilder::new().build();
    gw.add_user("alice", "member");
    gw.create_key("alice", &[]);
    let ok = gw.cli(&["check"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    // Another store's master key, as after a lost or swapped key file.
    let other = GatewayBuilder::new().build();
    other.add_user("bob", "member");
    other.create_key("bob", &[]);
    std::fs::copy(other.dir().join("master.key"), gw.dir().join("master.key")).unwrap();
    let out = gw.cli(&["check"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the master key does not match this store"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one clear line: {err}");
}
