//! Runs the real `tollgate` binary (`CARGO_BIN_EXE_tollgate`) for integration tests;
//! [`super::config::GatewayBuilder`] writes its config into a fresh temporary directory.
//!
//! [`Gateway::start`] spawns `tollgate -c <cfg> serve` with `RUST_LOG=info` and reads its
//! stderr until it printed `proxy listening on <addr>` and `admin listening on <addr>`
//! (at most [`STARTUP_TIMEOUT`], then it panics with everything the process printed).
//! stdout and stderr are drained in background threads into [`Gateway::logs`] for the
//! life of the process. Dropping a [`Gateway`] kills the process (SIGKILL) and reaps it.
//! CLI subcommands run against the same config with [`Gateway::cli`], before or after
//! start. Requests to a running gateway are in [`super::calls`].
//!
//! These calls block the calling thread (they run processes): under
//! `#[tokio::test]`'s single-threaded runtime, in-process mocks make no progress while a
//! blocking call runs. Use the `_async` variants while requests are in flight.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::wait::eventually;

/// The binary under test.
pub const TOLLGATE: &str = env!("CARGO_BIN_EXE_tollgate");
/// How long `serve` may take to announce both listeners.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// What a process printed, shared with the threads that drain its pipes.
#[derive(Default)]
struct Logs {
    state: Mutex<LogState>,
    changed: Condvar,
    notify: tokio::sync::Notify,
}

#[derive(Default)]
struct LogState {
    text: String,
    /// stderr reached EOF (the process exited or closed it).
    eof: bool,
}

impl Logs {
    fn push(&self, line: &str) {
        // std Mutex: no `.await` happens under this lock.
        self.state.lock().unwrap().text.push_str(line);
        self.changed.notify_all();
        self.notify.notify_waiters();
    }

    fn set_eof(&self) {
        self.state.lock().unwrap().eof = true;
        self.changed.notify_all();
        self.notify.notify_waiters();
    }

    fn text(&self) -> String {
        self.state.lock().unwrap().text.clone()
    }

    fn eof(&self) -> bool {
        self.state.lock().unwrap().eof
    }

    /// Blocks until stderr's EOF or `limit`; returns whether EOF was seen.
    fn wait_eof(&self, limit: Duration) -> bool {
        let guard = self.state.lock().unwrap();
        let (guard, _) = self
            .changed
            .wait_timeout_while(guard, limit, |s| !s.eof)
            .unwrap();
        guard.eof
    }
}

/// Copies a pipe into `logs` line by line, forwarding each line to `tx` while the
/// receiver listens; marks EOF when `stderr`.
fn drain(
    pipe: impl Read + Send + 'static,
    logs: Arc<Logs>,
    tx: Option<mpsc::Sender<String>>,
    stderr: bool,
) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf).into_owned();
                    logs.push(&line);
                    if let Some(tx) = &tx {
                        let _ = tx.send(line);
                    }
                }
            }
        }
        if stderr {
            logs.set_eof();
        }
    });
}

/// The socket address printed after `phrase` on this line, if any.
fn addr_after(line: &str, phrase: &str) -> Option<SocketAddr> {
    let rest = &line[line.find(phrase)? + phrase.len()..];
    let token = rest.split_whitespace().next()?;
    let token = token.trim_end_matches(|c: char| !c.is_ascii_digit());
    token.parse().ok()
}

/// A gateway's temporary directory, config and (once started) its `serve` process.
pub struct Gateway {
    /// The first proxy listener's address (unspecified until started).
    pub proxy_addr: SocketAddr,
    /// The admin listener's address (unspecified until started).
    pub admin_addr: SocketAddr,
    /// Every announced proxy listener.
    pub proxy_addrs: Vec<SocketAddr>,
    /// Shared with [`Gateway::another`]s on the same store.
    dir: Arc<tempfile::TempDir>,
    config_path: PathBuf,
    env: Vec<(String, String)>,
    pending_users: Vec<(String, String)>,
    child: Option<Child>,
    logs: Arc<Logs>,
    past_logs: String,
    exit: Option<ExitStatus>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            if self.exit.is_none() && matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

impl Gateway {
    /// A gateway (not started) whose config `config` is written into `dir`; `users` are
    /// created at the first start.
    pub(super) fn new(
        dir: tempfile::TempDir,
        config: &str,
        env: Vec<(String, String)>,
        users: Vec<(String, String)>,
    ) -> Gateway {
        let config_path = dir.path().join("tollgate.yaml");
        std::fs::write(&config_path, config).expect("write the config");
        let unset: SocketAddr = ([0, 0, 0, 0], 0).into();
        Gateway {
            proxy_addr: unset,
            admin_addr: unset,
            proxy_addrs: Vec::new(),
            dir: Arc::new(dir),
            config_path,
            env,
            pending_users: users,
            child: None,
            logs: Arc::new(Logs::default()),
            past_logs: String::new(),
            exit: None,
        }
    }

    /// Spawns `serve` without waiting for its listeners (it is expected to fail).
    pub(super) fn spawn_without_waiting(&mut self) {
        let (child, logs) = self.spawn_serve(None);
        self.child = Some(child);
        self.logs = logs;
    }

    /// Blocks until the process closed its stderr or `limit` passed.
    pub(super) fn wait_output_closed(&self, limit: Duration) {
        self.logs.wait_eof(limit);
    }

    /// Another gateway (not started) with the same config, store and environment, as
    /// when two run side by side during a graceful upgrade; each is a `serve` process of
    /// its own, on ports of its own.
    pub fn another(&self) -> Gateway {
        let unset: SocketAddr = ([0, 0, 0, 0], 0).into();
        Gateway {
            proxy_addr: unset,
            admin_addr: unset,
            proxy_addrs: Vec::new(),
            dir: self.dir.clone(),
            config_path: self.config_path.clone(),
            env: self.env.clone(),
            pending_users: Vec::new(),
            child: None,
            logs: Arc::new(Logs::default()),
            past_logs: String::new(),
            exit: None,
        }
    }

    /// The temporary directory holding the config, the store and `master.key`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Rewrites the config file through `edit` (the running gateway reads it again on
    /// `reload`).
    pub fn edit_config(&self, edit: impl FnOnce(String) -> String) {
        let text = std::fs::read_to_string(&self.config_path).expect("read the config");
        std::fs::write(&self.config_path, edit(text)).expect("write the config");
    }

    /// `<dir>/tollgate.db`
    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("tollgate.db")
    }

    /// `http://<proxy_addr>`
    pub fn proxy_url(&self) -> String {
        format!("http://{}", self.proxy_addr)
    }

    /// `http://<admin_addr>`
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin_addr)
    }

    /// A `tollgate -c <config> ARGS...` command with this gateway's environment (working
    /// directory: the temporary directory; `TOLLGATE_CONFIG`, `TOLLGATE_MASTER_KEY` and
    /// `RUST_LOG` removed from the inherited environment).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(TOLLGATE);
        cmd.arg("-c")
            .arg(&self.config_path)
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("TOLLGATE_CONFIG")
            .env_remove("TOLLGATE_MASTER_KEY")
            .env_remove("RUST_LOG");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs a CLI subcommand (`&["key", "list", "--json"]`) to completion; stdin empty.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.command(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {TOLLGATE} {args:?}: {e}"))
    }

    /// Runs a CLI subcommand with `input` on its stdin (`provider-key set`,
    /// `user add --password-stdin`).
    pub fn cli_with_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("run {TOLLGATE} {args:?}: {e}"));
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let out = child.wait_with_output().unwrap();
        let _ = writer.join();
        out
    }

    /// Runs a CLI subcommand that must succeed; returns its stdout. Panics with stderr.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "tollgate {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("stdout is UTF-8")
    }

    /// `user add NAME --role admin --password-stdin` with `password`, which must succeed
    /// (an admin who can log in to the admin API).
    pub fn add_admin_with_password(&self, name: &str, password: &str) {
        let args = ["user", "add", name, "--role", "admin", "--password-stdin"];
        let out = self.cli_with_stdin(&args, format!("{password}\n").as_bytes());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `user add NAME --role ROLE`, which must succeed.
    pub fn add_user(&self, name: &str, role: &str) {
        self.cli_ok(&["user", "add", name, "--role", role]);
    }

    /// `key create --user USER EXTRA...`, which must succeed and print exactly one line:
    /// the key, returned without its newline.
    pub fn create_key(&self, user: &str, extra: &[&str]) -> String {
        let mut args = vec!["key", "create", "--user", user];
        args.extend_from_slice(extra);
        let stdout = self.cli_ok(&args);
        let lines: Vec<&str> = stdout.lines().collect();
        assert!(
            lines.len() == 1 && !lines[0].trim().is_empty(),
            "`key create` must print only the key, on one line; it printed {stdout:?}"
        );
        lines[0].trim().to_owned()
    }

    fn spawn_serve(&self, tx: Option<mpsc::Sender<String>>) -> (Child, Arc<Logs>) {
        let mut child = self
            .command(&["serve"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {TOLLGATE} serve: {e}"));
        let logs = Arc::new(Logs::default());
        drain(child.stdout.take().unwrap(), logs.clone(), None, false);
        drain(child.stderr.take().unwrap(), logs.clone(), tx, true);
        (child, logs)
    }

    /// Creates the builder's users (first start only), spawns `serve` and waits until it
    /// announced both listeners. Also restarts a gateway that has exited (same directory
    /// and store; the ports change). Panics after [`STARTUP_TIMEOUT`] or when the process
    /// exits first, with all it printed.
    pub fn start(&mut self) {
        assert!(!self.is_running(), "the gateway is already running");
        for (name, role) in std::mem::take(&mut self.pending_users) {
            self.add_user(&name, &role);
        }
        if self.child.is_some() {
            self.past_logs.push_str(&self.logs.text());
            self.past_logs.push_str("----- restart -----\n");
        }
        let (tx, rx) = mpsc::channel();
        let (child, logs) = self.spawn_serve(Some(tx));
        self.child = Some(child);
        self.logs = logs;
        self.exit = None;
        self.proxy_addrs.clear();
        let mut admin = None;
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while self.proxy_addrs.is_empty() || admin.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(a) = addr_after(&line, "proxy listening on ") {
                        assert!(a.port() != 0, "the gateway announced port 0; it must print the bound address:\n{line}");
                        self.proxy_addrs.push(a);
                    }
                    if let Some(a) = addr_after(&line, "admin listening on ") {
                        assert!(a.port() != 0, "the gateway announced port 0; it must print the bound address:\n{line}");
                        admin = Some(a);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = self.kill();
                    panic!(
                        "tollgate serve did not announce `proxy listening on` and `admin listening on` within {STARTUP_TIMEOUT:?}; output:\n{}",
                        self.logs()
                    );
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.wait_exit(Duration::from_secs(5));
                    panic!(
                        "tollgate serve exited ({status:?}) before listening; output:\n{}",
                        self.logs()
                    );
                }
            }
        }
        self.proxy_addr = self.proxy_addrs[0];
        self.admin_addr = admin.unwrap();
    }

    /// The `serve` process id; panics when it was never started.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .expect("the gateway was not started")
            .id()
    }

    /// Whether the `serve` process runs (reaps it when it has exited).
    pub fn is_running(&mut self) -> bool {
        self.child.is_some() && self.try_exit().is_none()
    }

    fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            if let Some(child) = &mut self.child {
                if let Ok(Some(status)) = child.try_wait() {
                    self.exit = Some(status);
                }
            }
        }
        self.exit
    }

    /// Sends a signal by name (`"TERM"`, `"QUIT"`, `"HUP"`) with `kill(1)`; does nothing
    /// when the process has already exited (so never signals a reused pid).
    pub fn signal(&mut self, name: &str) {
        if !self.is_running() {
            return;
        }
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill(1)");
        assert!(status.success(), "kill -{name} {} failed", self.pid());
    }

    /// SIGTERM: graceful shutdown.
    pub fn terminate(&mut self) {
        self.signal("TERM");
    }

    /// SIGKILL, then reap; returns the exit status.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        if let Some(child) = &mut self.child {
            if self.exit.is_none() {
                let _ = child.kill();
                self.exit = child.wait().ok();
            }
        }
        self.exit
    }

    /// Blocks until the process exits (its status) or `timeout` passes (`None`). Wakes as
    /// soon as its stderr closes.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit() {
                return Some(status);
            }
            let now = Instant::now();
            if now >= deadline || self.child.is_none() {
                return None;
            }
            let slice = (deadline - now).min(Duration::from_millis(20));
            if self.logs.eof() {
                // stderr closed: the exit is a moment away (or the pipe was handed on).
                std::thread::sleep(slice.min(Duration::from_millis(2)));
            } else {
                self.logs.wait_eof(slice);
            }
        }
    }

    /// Waits (yielding to the tokio runtime, so in-process mocks and client tasks keep
    /// running) until the process exits; its status. Fails the test after `limit`.
    pub async fn exit_status(&mut self, limit: Duration) -> ExitStatus {
        eventually("the gateway to exit", limit, async || self.try_exit()).await
    }

    /// Everything the process printed so far, stdout and stderr interleaved by line
    /// (earlier runs first, when restarted).
    pub fn logs(&self) -> String {
        format!("{}{}", self.past_logs, self.logs.text())
    }

    /// Blocks until the current run's output contains `needle`; `false` after `timeout`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut guard = self.logs.state.lock().unwrap();
        loop {
            if guard.text.contains(needle) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline || guard.eof {
                return guard.text.contains(needle);
            }
            guard = self
                .logs
                .changed
                .wait_timeout(guard, deadline - now)
                .unwrap()
                .0;
        }
    }

    /// [`Self::wait_for_log`] that yields to the tokio runtime while it waits.
    pub async fn wait_for_log_async(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.logs.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.logs.text().contains(needle) {
                return true;
            }
            if self.logs.eof() || tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.logs.text().contains(needle);
            }
        }
    }
}
