//! Provider keys per user (CONTRACT §1 `provider-key set|delete`, `rotate-master-key`),
//! through the real binary: a user's stored key reaches the upstream for that user's
//! requests only, and a key stored for the upstream stands in for the configured ones,
//! each change reaching a running gateway within its refresh; the key is stored
//! encrypted; deletion brings the configured key back; a row copied to another user
//! does not decrypt and is ignored with one warning; rotating the master key (a key
//! file or a configured one) keeps every gateway and provider key working and refuses
//! the old master key. No secret reaches the logs or the command output.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{eventually, Gateway, GatewayBuilder, MockUpstream, Upstream, CHAT};

const CONFIGURED: &str = "sk-configured-key";
const ALICE_OWN: &str = "sk-alice-own-provider-key";
/// How long a change may take to reach the gateway (its refresh runs every second).
const PROPAGATION: Duration = Duration::from_secs(10);

fn builder(mock: &MockUpstream) -> GatewayBuilder {
    GatewayBuilder::new().only_upstream(Upstream::openai("main", mock).keys(&[CONFIGURED]))
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_ok(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        o.status,
        stdout(o),
        stderr(o)
    );
}

/// A user error: exit 1 and exactly one line on stderr, containing `needle`.
fn assert_user_error(o: &Output, needle: &str) {
    assert_eq!(o.status.code(), Some(1), "stdout: {}", stdout(o));
    let err = stderr(o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(needle), "expected {needle:?} in {err:?}");
}

/// Runs `cmd` with `input` on stdin.
fn run_with_stdin(mut cmd: Command, input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// `provider-key ACTION --upstream main [--user USER]`.
fn provider_key_args<'a>(action: &'a str, user: Option<&'a str>) -> Vec<&'a str> {
    let mut args = vec!["provider-key", action, "--upstream", "main"];
    if let Some(user) = user {
        args.extend(["--user", user]);
    }
    args
}

/// `provider-key set` for upstream `main` (and `user`), the key on stdin.
fn set_key(gw: &Gateway, user: Option<&str>, key: &[u8]) -> Output {
    gw.cli_with_stdin(&provider_key_args("set", user), key)
}

/// `provider-key delete` for upstream `main` (and `user`).
fn delete_key(gw: &Gateway, user: Option<&str>) -> Output {
    gw.cli(&provider_key_args("delete", user))
}

/// Sends one chat request with `key`, expects 200, and returns the `authorization`
/// header the upstream received for it.
async fn upstream_auth(gw: &Gateway, mock: &MockUpstream, key: &str) -> String {
    let before = mock.request_count();
    let resp = gw.chat(key, CHAT).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen = mock.requests();
    assert_eq!(seen.len(), before + 1);
    let values = seen[before].header_all("authorization");
    assert_eq!(values.len(), 1, "{:?}", seen[before].headers);
    values[0].to_owned()
}

/// Asserts that a request with `key` goes upstream as `Bearer <expected>`.
async fn assert_upstream_gets(gw: &Gateway, mock: &MockUpstream, key: &str, expected: &str) {
    assert_eq!(
        upstream_auth(gw, mock, key).await,
        format!("Bearer {expected}")
    );
}

/// Sends requests with `key` until the upstream receives `Bearer <expected>`, failing
/// after `limit`.
async fn wait_for_upstream_key(
    gw: &Gateway,
    mock: &MockUpstream,
    key: &str,
    expected: &str,
    limit: Duration,
) {
    let want = format!("Bearer {expected}");
    let what = format!("the upstream to receive {want:?}");
    eventually(&what, limit, async || {
        let got = upstream_auth(gw, mock, key).await;
        if got == want {
            Ok(())
        } else {
            Err(got)
        }
    })
    .await;
}

/// A process started by the test itself, killed if the test fails while it runs.
struct KillOnDrop(Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn assert_no_secret_in_logs(gw: &Gateway, secrets: &[&str]) {
    let logs = gw.logs();
    for s in secrets {
        assert!(!logs.contains(s), "a secret reached the logs:\n{logs}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_stored_key_is_used_for_that_user_only_until_deleted() {
    let mock = MockUpstream::start().await;
    let (gw, alice) = builder(&mock).user("bob", "member").start_with_key("alice");
    let bob = gw.create_key("bob", &[]);
    assert_upstream_gets(&gw, &mock, &alice, CONFIGURED).await;

    // Set while the gateway runs: reaches it with the next key refresh.
    let out = set_key(&gw, Some("alice"), format!("{ALICE_OWN}\n").as_bytes());
    assert_ok(&out, "provider-key set");
    assert_eq!(
        stdout(&out),
        "stored the provider key of user 'alice' for upstream 'main'\n"
    );
    assert!(!stdout(&out).contains(ALICE_OWN) && !stderr(&out).contains(ALICE_OWN));
    wait_for_upstream_key(&gw, &mock, &alice, ALICE_OWN, PROPAGATION).await;
    // Bob still goes out with the configured key.
    assert_upstream_gets(&gw, &mock, &bob, CONFIGURED).await;
    // The key is stored encrypted, not as text.
    let db = std::fs::read(gw.db_path()).unwrap();
    let wal = std::fs::read(gw.db_path().with_extension("db-wal")).unwrap_or_default();
    for bytes in [&db, &wal] {
        assert!(!bytes
            .windows(ALICE_OWN.len())
            .any(|w| w == ALICE_OWN.as_bytes()));
    }

    // Refusals, each one line, exit 1, nothing stored.
    let set = |args: &[&str], input: &[u8]| {
        let mut all = vec!["provider-key", "set"];
        all.extend_from_slice(args);
        gw.cli_with_stdin(&all, input)
    };
    assert_user_error(
        &set(&["--upstream", "nope", "--user", "bob"], b"sk-x"),
        "unknown upstream 'nope'",
    );
    assert_user_error(&set_key(&gw, Some("bob"), b""), "no provider key given");
    assert_user_error(&set_key(&gw, Some("bob"), b"\n"), "no provider key given");
    assert_user_error(
        &set_key(&gw, Some("carol"), b"sk-x"),
        "unknown user 'carol'",
    );
    let usage = gw.cli(&["provider-key", "set", "--user", "bob"]);
    assert_eq!(usage.status.code(), Some(2));

    // Delete: back to the configured key; deleting again still succeeds.
    let out = delete_key(&gw, Some("alice"));
    assert_ok(&out, "provider-key delete");
    assert_eq!(
        stdout(&out),
        "Deleted the provider key of user 'alice' for upstream 'main'\n"
    );
    wait_for_upstream_key(&gw, &mock, &alice, CONFIGURED, PROPAGATION).await;
    let out = delete_key(&gw, Some("alice"));
    assert_ok(&out, "a second provider-key delete");
    assert!(
        stdout(&out).contains("nothing to delete"),
        "{}",
        stdout(&out)
    );
    assert_user_error(&delete_key(&gw, Some("carol")), "unknown user 'carol'");

    // A key stored for the upstream itself (no --user) stands in for the configured keys.
    let global = "sk-global-stored";
    assert_ok(
        &set_key(&gw, None, global.as_bytes()),
        "global provider-key set",
    );
    let five = Duration::from_secs(5);
    wait_for_upstream_key(&gw, &mock, &alice, global, five).await;
    assert_ok(&delete_key(&gw, None), "global provider-key delete");
    wait_for_upstream_key(&gw, &mock, &alice, CONFIGURED, five).await;
    assert_no_secret_in_logs(&gw, &[ALICE_OWN, CONFIGURED, global]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_copied_to_another_user_does_not_decrypt_and_is_ignored() {
    let mock = MockUpstream::start().await;
    let (gw, alice) = builder(&mock).user("bob", "member").start_with_key("alice");
    let bob = gw.create_key("bob", &[]);
    assert_ok(
        &set_key(&gw, Some("alice"), ALICE_OWN.as_bytes()),
        "provider-key set",
    );
    wait_for_upstream_key(&gw, &mock, &alice, ALICE_OWN, PROPAGATION).await;

    // Someone with write access to the database copies alice's row to bob.
    {
        let conn = rusqlite::Connection::open(gw.db_path()).unwrap();
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        let id = |name: &str| -> i64 {
            conn.query_row("SELECT id FROM users WHERE username = ?1", [name], |r| {
                r.get(0)
            })
            .unwrap()
        };
        let (alice_id, bob_id) = (id("alice"), id("bob"));
        let copied = conn
            .execute(
                "INSERT INTO provider_keys (upstream, user_id, nonce, ciphertext, created_at, updated_at) \
                 SELECT upstream, ?1, nonce, ciphertext, created_at, updated_at FROM provider_keys WHERE user_id = ?2",
                [bob_id, alice_id],
            )
            .unwrap();
        assert_eq!(copied, 1);
    }
    assert!(
        gw.wait_for_log_async("is ignored", PROPAGATION).await,
        "no warning about the copied row:\n{}",
        gw.logs()
    );
    // Not used for bob, still used for alice.
    assert_upstream_gets(&gw, &mock, &bob, CONFIGURED).await;
    assert_upstream_gets(&gw, &mock, &alice, ALICE_OWN).await;
    // Warned about once, not at every refresh: through 2.5 s of refreshes, bob keeps
    // the configured key and no second warning comes.
    let lines = |gw: &Gateway| gw.logs().matches("is ignored").count();
    let first = lines(&gw);
    let started = Instant::now();
    let window = Duration::from_millis(2500);
    eventually("2.5 s of refreshes to pass", window * 2, async || {
        assert_upstream_gets(&gw, &mock, &bob, CONFIGURED).await;
        started.elapsed() >= window
    })
    .await;
    assert_eq!(lines(&gw), first, "{}", gw.logs());
    assert_no_secret_in_logs(&gw, &[ALICE_OWN, CONFIGURED]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_a_key_file_master_key_keeps_gateway_and_provider_keys() {
    let mock = MockUpstream::start().await;
    let mut gw = builder(&mock).build();
    gw.add_user("alice", "member");
    let alice = gw.create_key("alice", &[]);
    // Set before the start: loaded at startup.
    assert_ok(
        &set_key(&gw, Some("alice"), ALICE_OWN.as_bytes()),
        "provider-key set",
    );
    gw.start();
    assert_upstream_gets(&gw, &mock, &alice, ALICE_OWN).await;
    gw.kill();

    let key_file = gw.dir().join("master.key");
    let old_master = std::fs::read_to_string(&key_file).unwrap();
    let out = gw.cli(&["rotate-master-key", "--generate"]);
    assert_ok(&out, "rotate-master-key --generate");
    let text = stdout(&out);
    let printed = text
        .lines()
        .next()
        .and_then(|l| {
            l.strip_prefix("new master key (shown only now; keep a copy somewhere safe): ")
        })
        .unwrap_or_else(|| panic!("no new key line in {text:?}"))
        .to_owned();
    assert!(text.contains("re-wrapped 2 data keys"), "{text}");
    assert!(text.contains("master.key (mode 0600)"), "{text}");
    let new_master = std::fs::read_to_string(&key_file).unwrap();
    assert_eq!(new_master.trim(), printed);
    assert_ne!(new_master, old_master);
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    gw.start();
    // The gateway key created under the old master key still authenticates, and the
    // stored provider key still decrypts.
    assert_upstream_gets(&gw, &mock, &alice, ALICE_OWN).await;
    // So does a rotation from a key given on stdin, while the gateway runs (it keeps
    // its unwrapped keys until restarted).
    let given = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=\n";
    let out = gw.cli_with_stdin(&["rotate-master-key"], given.as_bytes());
    assert_ok(&out, "rotate-master-key from stdin");
    assert!(!stdout(&out).contains(given.trim()), "{}", stdout(&out));
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), given.trim());
    assert_upstream_gets(&gw, &mock, &alice, ALICE_OWN).await;
    gw.kill();
    gw.start();
    assert_upstream_gets(&gw, &mock, &alice, ALICE_OWN).await;

    // A bad new key is refused with one line and changes nothing.
    assert_user_error(
        &gw.cli_with_stdin(&["rotate-master-key"], b"too short"),
        "stdin must hold the new master key",
    );
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), given.trim());
    assert_no_secret_in_logs(
        &gw,
        &[ALICE_OWN, CONFIGURED, printed.as_str(), given.trim()],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_a_configured_master_key_tells_the_operator_and_refuses_the_old_one() {
    const OLD: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    const NEW: &str = "AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM=";
    let mock = MockUpstream::start().await;
    // The server runs with the new key; commands before the rotation pass the old one.
    let gw = builder(&mock)
        .master_key("\"${TOLLGATE_MASTER_KEY}\"")
        .env("TOLLGATE_MASTER_KEY", NEW)
        .build();
    let with_old = |args: &[&str]| {
        let mut c = gw.command(args);
        c.env("TOLLGATE_MASTER_KEY", OLD);
        c
    };
    assert_ok(
        &with_old(&["user", "add", "alice"]).output().unwrap(),
        "user add",
    );
    let out = with_old(&["key", "create", "--user", "alice"])
        .output()
        .unwrap();
    assert_ok(&out, "key create");
    let alice = stdout(&out).trim().to_owned();
    let set_with_old = with_old(&provider_key_args("set", Some("alice")));
    assert_ok(
        &run_with_stdin(set_with_old, ALICE_OWN.as_bytes()),
        "provider-key set",
    );

    let out = run_with_stdin(with_old(&["rotate-master-key"]), NEW.as_bytes());
    assert_ok(&out, "rotate-master-key");
    assert!(
        stdout(&out).contains("set TOLLGATE_MASTER_KEY"),
        "{}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains(NEW));
    assert!(!gw.dir().join("master.key").exists());

    // The old key is refused, by the CLI and by serve, with one clear line.
    assert_user_error(
        &with_old(&["key", "create", "--user", "alice"])
            .output()
            .unwrap(),
        "the master key does not match this store",
    );
    let mut serve = KillOnDrop(Some(
        with_old(&["serve"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    let what = "`serve` with the old master key to exit without starting";
    eventually(what, Duration::from_secs(20), async || {
        serve.0.as_mut().unwrap().try_wait().unwrap()
    })
    .await;
    let out = serve.0.take().unwrap().wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("the master key does not match this store"),
        "{}",
        stderr(&out)
    );

    // With the new key, everything made under the old one works.
    let mut gw = gw;
    gw.start();
    assert_upstream_gets(&gw, &mock, &alice, ALICE_OWN).await;
    assert_no_secret_in_logs(&gw, &[ALICE_OWN, CONFIGURED, OLD, NEW]);
}
