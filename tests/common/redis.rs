//! A private `redis-server` for one test (Debian's package, installed by `.ci/setup`):
//! on a free loopback port, without persistence, killed when dropped. A test can kill it
//! and start it again on the same port ([`TestRedis::kill`], [`TestRedis::restart`]) to
//! play an outage or a restart that lost every counter. [`TestRedis::start_tls`] serves
//! TLS only (`rediss://`), with the test certificate for `localhost` of
//! `tests/fixtures/tls` ([`TestRedis::ca`] signed it).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct TestRedis {
    pub port: u16,
    child: Option<Child>,
    tls: bool,
}

/// A file of `tests/fixtures/tls`.
fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/tls/{name}", env!("CARGO_MANIFEST_DIR"))
}

impl TestRedis {
    pub fn start() -> TestRedis {
        Self::start_on(false)
    }

    /// A server that speaks TLS only, as `localhost`.
    pub fn start_tls() -> TestRedis {
        Self::start_on(true)
    }

    fn start_on(tls: bool) -> TestRedis {
        let mut r = TestRedis {
            port: 0,
            child: None,
            tls,
        };
        // A port found free can be taken before the server binds it: then another.
        for _ in 0..5 {
            r.port = super::fixed_port();
            if r.try_start() {
                return r;
            }
        }
        panic!("redis-server could not bind a free port five times");
    }

    /// The CA that signed the TLS server's certificate (a PEM file).
    pub fn ca() -> String {
        fixture("ca.pem")
    }

    /// `redis://127.0.0.1:PORT/0`, or `rediss://localhost:PORT/0` for a TLS server
    pub fn url(&self) -> String {
        if self.tls {
            format!("rediss://localhost:{}/0", self.port)
        } else {
            format!("redis://127.0.0.1:{}/0", self.port)
        }
    }

    /// Starts the server (again) on its port, empty, and waits until it answers.
    pub fn restart(&mut self) {
        assert!(
            self.try_start(),
            "redis-server could not bind port {} again (taken while it was down)",
            self.port
        );
    }

    /// Starts the server on its port and waits until it answers: false when it exited
    /// instead (the port was taken). Only our own server's answer counts (its pid).
    fn try_start(&mut self) -> bool {
        assert!(self.child.is_none(), "already running");
        let port = self.port.to_string();
        let mut cmd = Command::new("redis-server");
        if self.tls {
            cmd.args(["--port", "0", "--tls-port", &port])
                .args(["--tls-cert-file", &fixture("leaf.pem")])
                .args(["--tls-key-file", &fixture("leaf.key")])
                .args(["--tls-ca-cert-file", &fixture("ca.pem")])
                .args(["--tls-auth-clients", "no"]);
        } else {
            cmd.args(["--port", &port]);
        }
        let mut child = cmd
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (installed by .ci/setup)");
        let started = Instant::now();
        loop {
            if child.try_wait().unwrap().is_some() {
                return false;
            }
            if self.process_id() == Some(child.id()) {
                self.child = Some(child);
                return true;
            }
            if started.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                panic!("redis-server did not answer on port {}", self.port);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The answering server's process id (`INFO server`), if one answers.
    fn process_id(&self) -> Option<u32> {
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query(&mut self.connection().ok()?)
            .ok()?;
        let pid = info.lines().find_map(|l| l.strip_prefix("process_id:"))?;
        pid.trim().parse().ok()
    }

    /// The server's clock (`TIME`), in Unix seconds: the clock its scripts count
    /// minutes by.
    pub fn now(&self) -> i64 {
        let (now, _): (i64, i64) = redis::cmd("TIME")
            .query(&mut self.connection().unwrap())
            .unwrap();
        now
    }

    /// SIGKILL: everything it held is gone.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGSTOP / SIGCONT: a server that holds its connections and answers nothing.
    pub fn pause(&self, paused: bool) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let signal = if paused { "-STOP" } else { "-CONT" };
        let status = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(status.success());
    }

    pub fn connection(&self) -> redis::RedisResult<redis::Connection> {
        let client = if self.tls {
            let certs = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(std::fs::read(Self::ca()).unwrap()),
            };
            redis::Client::build_with_tls(self.url(), certs)?
        } else {
            redis::Client::open(self.url())?
        };
        client.get_connection_with_timeout(Duration::from_secs(1))
    }

    /// An integer counter (0 when missing).
    pub fn get(&self, key: &str) -> i64 {
        let v: Option<i64> = redis::cmd("GET")
            .arg(key)
            .query(&mut self.connection().unwrap())
            .unwrap();
        v.unwrap_or(0)
    }

    pub fn exists(&self, key: &str) -> bool {
        redis::cmd("EXISTS")
            .arg(key)
            .query(&mut self.connection().unwrap())
            .unwrap()
    }

    /// Seconds to live of `key` (-1 without expiry, -2 missing).
    pub fn ttl(&self, key: &str) -> i64 {
        redis::cmd("TTL")
            .arg(key)
            .query(&mut self.connection().unwrap())
            .unwrap()
    }

    /// Every key matching `pattern`, sorted.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let mut k: Vec<String> = redis::cmd("KEYS")
            .arg(pattern)
            .query(&mut self.connection().unwrap())
            .unwrap();
        k.sort();
        k
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.pause(false); // a stopped process still dies of SIGKILL; be tidy anyway
        }
        self.kill();
    }
}
