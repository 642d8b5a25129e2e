//! The config a test gateway runs with (CONTRACT §2), built from typed parts:
//! [`Upstream`]s (`Upstream::openai("o", &mock).keys(&["sk-o"])`), routes
//! (`.route(&["claude-*"], &["a"])`), aliases, prices and listener settings.
//!
//! [`GatewayBuilder::render_config`] writes proxy and admin listeners on `127.0.0.1:0`,
//! `shutdown_grace_s: 1`, the SQLite store in the gateway's temporary directory and an
//! empty `secrets.master_key` (the binary then generates its key there), unless a
//! setting given here replaces one of them. [`GatewayBuilder::full_config`] replaces the
//! whole file, for configs that must be wrong.

use std::fmt::Display;
use std::path::Path;
use std::process::ExitStatus;
use std::time::Duration;

use super::gateway::{Gateway, STARTUP_TIMEOUT};
use super::mock::scripted::Scripted;
use super::mock::MockUpstream;

/// Where an upstream listens: a mock, a scripted upstream or a URL.
pub trait BaseUrl {
    fn base_url(&self) -> String;
}

impl BaseUrl for MockUpstream {
    fn base_url(&self) -> String {
        MockUpstream::base_url(self)
    }
}

impl BaseUrl for Scripted {
    fn base_url(&self) -> String {
        Scripted::base_url(self)
    }
}

impl BaseUrl for str {
    fn base_url(&self) -> String {
        self.to_owned()
    }
}

impl BaseUrl for String {
    fn base_url(&self) -> String {
        self.clone()
    }
}

/// One entry of `upstreams:`.
#[derive(Debug, Clone)]
pub struct Upstream {
    name: String,
    kind: &'static str,
    base_url: String,
    keys: Vec<String>,
    /// Further keys of the entry, values as YAML.
    settings: Vec<(String, String)>,
}

impl Upstream {
    fn new(name: &str, kind: &'static str, at: &(impl BaseUrl + ?Sized)) -> Upstream {
        Upstream {
            name: name.to_owned(),
            kind,
            base_url: at.base_url(),
            keys: Vec::new(),
            settings: Vec::new(),
        }
    }

    /// `kind: openai`
    pub fn openai(name: &str, at: &(impl BaseUrl + ?Sized)) -> Upstream {
        Upstream::new(name, "openai", at)
    }

    /// `kind: anthropic`
    pub fn anthropic(name: &str, at: &(impl BaseUrl + ?Sized)) -> Upstream {
        Upstream::new(name, "anthropic", at)
    }

    /// `kind: gemini`
    pub fn gemini(name: &str, at: &(impl BaseUrl + ?Sized)) -> Upstream {
        Upstream::new(name, "gemini", at)
    }

    /// `keys: [...]`, the provider keys swapped in for the gateway key.
    pub fn keys(mut self, keys: &[&str]) -> Upstream {
        self.keys = keys.iter().map(|k| (*k).to_owned()).collect();
        self
    }

    /// Any other key of the entry, its value written as YAML:
    /// `.set("read_timeout_ms", 400)`, `.set("health_check", "{ path: /v1/models }")`.
    pub fn set(mut self, key: &str, value: impl Display) -> Upstream {
        self.settings.push((key.to_owned(), value.to_string()));
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn yaml(&self) -> String {
        let mut y = format!(
            "  - name: {}\n    kind: {}\n    base_url: {}\n",
            self.name,
            self.kind,
            quote(&self.base_url)
        );
        if !self.keys.is_empty() {
            y.push_str(&format!("    keys: {}\n", list(&self.keys)));
        }
        for (k, v) in &self.settings {
            y.push_str(&format!("    {k}: {v}\n"));
        }
        y
    }
}

/// A YAML (JSON) string literal.
fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// A YAML (JSON) flow list of strings.
fn list<S: AsRef<str>>(items: &[S]) -> String {
    let items: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
    serde_json::to_string(&items).unwrap()
}

/// `secrets.master_key` (YAML) of the gateways [`GatewayBuilder::postgres`] makes:
/// "0123456789abcdef0123456789abcdef", base64.
pub const TEST_MASTER_KEY: &str = "\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\"";

/// Builds a config and starts a gateway.
#[derive(Debug, Clone, Default)]
pub struct GatewayBuilder {
    upstreams: Vec<Upstream>,
    /// (models, upstreams) of each route, in order: the first match wins.
    routes: Vec<(Vec<String>, Vec<String>)>,
    aliases: Vec<(String, String)>,
    pricing: Vec<(String, String)>,
    server: Vec<(String, String)>,
    admin: Vec<(String, String)>,
    storage: Vec<(String, String)>,
    limits: Vec<(String, String)>,
    /// `storage.url` instead of `storage.path` (a PostgreSQL store).
    storage_url: Option<String>,
    auth: Vec<(String, String)>,
    master_key: Option<String>,
    full_config: Option<String>,
    env: Vec<(String, String)>,
    users: Vec<(String, String)>,
}

impl GatewayBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// One more entry of `upstreams:`.
    pub fn upstream(mut self, upstream: Upstream) -> Self {
        self.upstreams.push(upstream);
        self
    }

    /// One more route: these model patterns go to these upstreams, in fallback order.
    pub fn route(mut self, models: &[&str], upstreams: &[&str]) -> Self {
        let owned = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect();
        self.routes.push((owned(models), owned(upstreams)));
        self
    }

    /// `upstream`, serving every model (`models: ["*"]`).
    pub fn only_upstream(self, upstream: Upstream) -> Self {
        let name = upstream.name().to_owned();
        self.upstream(upstream).route(&["*"], &[&name])
    }

    /// `aliases: NAME: MODEL`
    pub fn alias(mut self, name: &str, model: &str) -> Self {
        self.aliases.push((name.to_owned(), model.to_owned()));
        self
    }

    /// `pricing: PATTERN: PRICES`, the prices as YAML (`"{ input: 1.1, output: 4.4 }"`).
    pub fn price(mut self, pattern: &str, prices: &str) -> Self {
        self.pricing.push((quote(pattern), prices.to_owned()));
        self
    }

    /// A key under `server:`, its value as YAML; `listen` and `shutdown_grace_s`
    /// replace the defaults.
    pub fn server(mut self, key: &str, value: impl Display) -> Self {
        self.server.push((key.to_owned(), value.to_string()));
        self
    }

    /// A key under `admin:`, its value as YAML; `listen` replaces the default.
    pub fn admin(mut self, key: &str, value: impl Display) -> Self {
        self.admin.push((key.to_owned(), value.to_string()));
        self
    }

    /// A key under `storage:` besides `path`, its value as YAML.
    pub fn storage(mut self, key: &str, value: impl Display) -> Self {
        self.storage.push((key.to_owned(), value.to_string()));
        self
    }

    /// A key under `limits:`, its value as YAML (`.limits("redis_url", ..)`).
    pub fn limits(mut self, key: &str, value: impl Display) -> Self {
        self.limits.push((key.to_owned(), value.to_string()));
        self
    }

    /// `storage.url: URL` instead of the SQLite file: a PostgreSQL store, with the
    /// master key such a store requires ([`TEST_MASTER_KEY`] unless one is given),
    /// the same for every gateway and CLI of the test.
    pub fn postgres(mut self, url: &str) -> Self {
        self.storage_url = Some(url.to_owned());
        self.master_key
            .get_or_insert_with(|| TEST_MASTER_KEY.to_owned());
        self
    }

    /// A key under `auth:`, its value as YAML (`.auth("mode", "both")`).
    pub fn auth(mut self, key: &str, value: impl Display) -> Self {
        self.auth.push((key.to_owned(), value.to_string()));
        self
    }

    /// `secrets.master_key` as YAML (default `""`: a key file in the directory).
    pub fn master_key(mut self, yaml: &str) -> Self {
        self.master_key = Some(yaml.to_owned());
        self
    }

    /// Replaces the whole config file; `{dir}` in it becomes the temporary directory.
    pub fn full_config(mut self, yaml: &str) -> Self {
        self.full_config = Some(yaml.to_owned());
        self
    }

    /// An environment variable for every process this gateway runs (`serve` and the
    /// CLI), for `${VAR}` expansion or `SSL_CERT_FILE`.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// A user created with `user add NAME --role ROLE` before `serve` starts.
    pub fn user(mut self, name: &str, role: &str) -> Self {
        self.users.push((name.to_owned(), role.to_owned()));
        self
    }

    /// The config text for a gateway whose temporary directory is `dir`.
    pub fn render_config(&self, dir: &Path) -> String {
        if let Some(full) = &self.full_config {
            return full.replace("{dir}", &dir.display().to_string());
        }
        let db = dir.join("tollgate.db").display().to_string();
        let master_key = self.master_key.as_deref().unwrap_or("\"\"");
        let server = [("listen", "[\"127.0.0.1:0\"]"), ("shutdown_grace_s", "1")];
        let mut y = settings_section("server", &with_defaults(&self.server, &server));
        let admin = [("listen", "\"127.0.0.1:0\"")];
        y += &settings_section("admin", &with_defaults(&self.admin, &admin));
        let store = match &self.storage_url {
            Some(url) => format!("url: {}", quote(url)),
            None => format!("path: {}", quote(&db)),
        };
        y += &format!("storage:\n  {store}\n{}", entries(&self.storage));
        y += &format!("secrets:\n  master_key: {master_key}\n");
        if !self.auth.is_empty() {
            y += &settings_section("auth", &self.auth);
        }
        if !self.limits.is_empty() {
            y += &settings_section("limits", &self.limits);
        }
        let upstreams: String = self.upstreams.iter().map(Upstream::yaml).collect();
        y += &section("upstreams", &upstreams, "[]");
        let routes: String = self
            .routes
            .iter()
            .map(|(m, u)| format!("  - models: {}\n    upstreams: {}\n", list(m), list(u)))
            .collect();
        y += &section("routes", &routes, "[]");
        y += &settings_section("aliases", &self.aliases);
        y += &settings_section("pricing", &self.pricing);
        y
    }

    /// Writes the config into a new temporary directory; nothing runs yet.
    pub fn build(self) -> Gateway {
        let dir = tempfile::Builder::new()
            .prefix("tollgate-test-")
            .tempdir()
            .expect("create a temporary directory");
        let config = self.render_config(dir.path());
        Gateway::new(dir, &config, self.env, self.users)
    }

    /// Builds, creates the users given with [`Self::user`], and starts `serve`.
    pub fn start(self) -> Gateway {
        let mut gw = self.build();
        gw.start();
        gw
    }

    /// [`Self::start`] with one more user, `NAME` (role member), created first.
    pub fn start_with_user(self, name: &str) -> Gateway {
        self.user(name, "member").start()
    }

    /// [`Self::start_with_user`], and a new gateway key of that user.
    pub fn start_with_key(self, name: &str) -> (Gateway, String) {
        let gw = self.start_with_user(name);
        let key = gw.create_key(name, &[]);
        (gw, key)
    }

    /// Runs `serve` expecting it to fail at startup: returns its exit status and all it
    /// printed. Panics when it is still running after [`STARTUP_TIMEOUT`].
    pub fn start_expect_failure(self) -> (ExitStatus, String) {
        let mut gw = self.build();
        gw.spawn_without_waiting();
        match gw.wait_exit(STARTUP_TIMEOUT) {
            Some(status) => {
                gw.wait_output_closed(Duration::from_secs(5));
                (status, gw.logs())
            }
            None => {
                let logs = gw.logs();
                drop(gw);
                panic!("expected `tollgate serve` to fail, but it still runs after {STARTUP_TIMEOUT:?}; output:\n{logs}");
            }
        }
    }
}

/// `settings` after the `defaults` they do not replace.
fn with_defaults(
    settings: &[(String, String)],
    defaults: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = defaults
        .iter()
        .filter(|(k, _)| !settings.iter().any(|(s, _)| s == k))
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    out.extend_from_slice(settings);
    out
}

/// `  KEY: VALUE` lines.
fn entries(pairs: &[(String, String)]) -> String {
    pairs.iter().map(|(k, v)| format!("  {k}: {v}\n")).collect()
}

/// `NAME:` and its indented body, or `NAME: EMPTY` when it has none.
fn section(name: &str, body: &str, empty: &str) -> String {
    if body.is_empty() {
        format!("{name}: {empty}\n")
    } else {
        format!("{name}:\n{body}")
    }
}

/// [`section`] of settings.
fn settings_section(name: &str, pairs: &[(String, String)]) -> String {
    section(name, &entries(pairs), "{}")
}
