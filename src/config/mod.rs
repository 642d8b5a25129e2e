//! Tollgate's configuration (README "Configuration"): the YAML file's serde structs,
//! loading with `${VAR}` expansion, and validation that reports every problem at once.
//!
//! Pingora never reads this file: [`pingora_conf`] builds Pingora's `ServerConf` from it.

mod expand;
pub mod live;
pub mod prices;
pub mod runtime;
pub mod tls;
mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use expand::expand;
pub use runtime::{pingora_conf, AuthMode, Fixed, Reloadable, Runtime};
pub use tls::{TlsCerts, TlsFiles};
pub use validate::usd_per_million_to_nanos;

/// One problem found in a config file, located by its key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Dotted key path (`upstreams[0].kind`), or empty for the whole file.
    pub path: String,
    pub message: String,
}

impl ConfigProblem {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigProblem {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Every problem found in one config file.
#[derive(Debug, thiserror::Error)]
#[error("{}", render(.file, .problems))]
pub struct ConfigError {
    pub file: PathBuf,
    pub problems: Vec<ConfigProblem>,
}

fn render(file: &Path, problems: &[ConfigProblem]) -> String {
    render_lines(file, problems).join("\n")
}

/// One line per problem: `FILE: PATH: MESSAGE`. Also how warnings (an expired
/// certificate) are printed by `tollgate check` and logged by `serve` and reloads.
pub fn render_lines(file: &Path, problems: &[ConfigProblem]) -> Vec<String> {
    problems
        .iter()
        .map(|p| match p.path.as_str() {
            "" => format!("{}: {}", file.display(), p.message),
            path => format!("{}: {}: {}", file.display(), path, p.message),
        })
        .collect()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Config {
    pub server: ServerSection,
    pub admin: AdminSection,
    pub storage: StorageSection,
    pub limits: LimitsSection,
    pub secrets: SecretsSection,
    pub auth: AuthSection,
    pub upstreams: Vec<UpstreamConfig>,
    pub routes: Vec<RouteConfig>,
    pub aliases: BTreeMap<String, String>,
    /// In file order: the first matching pattern wins, like routes.
    pub pricing: serde_yaml::Mapping,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: ServerSection::default(),
            admin: AdminSection::default(),
            storage: StorageSection::default(),
            limits: LimitsSection::default(),
            secrets: SecretsSection::default(),
            auth: AuthSection::default(),
            upstreams: Vec::new(),
            routes: Vec::new(),
            aliases: BTreeMap::new(),
            pricing: serde_yaml::Mapping::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ServerSection {
    /// Proxy listen addresses; port 0 picks a free port (logged at start).
    pub listen: Vec<String>,
    /// Worker threads of the proxy service.
    pub threads: usize,
    /// On SIGTERM, the longest in-flight requests may take before exit.
    pub shutdown_grace_s: u64,
    pub max_body_bytes: u64,
    /// Total time allowed to receive a request body.
    pub body_timeout_ms: u64,
    /// Time allowed to receive each request head (slowloris defence).
    pub header_timeout_ms: u64,
    /// Connections one source address may hold open; 0 for no cap.
    pub max_connections_per_ip: u32,
    /// Pingora's pid file (for `-d`); default `<storage dir>/tollgate.pid`.
    pub pid_file: Option<String>,
    /// Pingora's graceful-upgrade socket (for `-u`); default `<storage dir>/upgrade.sock`.
    pub upgrade_sock: Option<String>,
    /// TLS on every proxy listener (ALPN h2 and http/1.1).
    pub tls: Option<TlsFiles>,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            listen: vec!["0.0.0.0:8080".into()],
            threads: 2,
            shutdown_grace_s: 30,
            max_body_bytes: 32 * 1024 * 1024,
            body_timeout_ms: 60_000,
            header_timeout_ms: 10_000,
            max_connections_per_ip: 1024,
            pid_file: None,
            upgrade_sock: None,
            tls: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct AdminSection {
    pub listen: String,
    /// How long an admin login session lasts (a session used past half of it is
    /// replaced by a fresh one).
    pub session_ttl_s: u64,
    /// TLS on the admin listener (then the session cookie is `Secure`).
    pub tls: Option<TlsFiles>,
    /// The web dashboard under `/ui/` on this listener.
    pub dashboard: bool,
}

/// Twelve hours: a working day, so an operator logs in about once a day.
pub const DEFAULT_SESSION_TTL_S: u64 = 43_200;

impl Default for AdminSection {
    fn default() -> Self {
        AdminSection {
            listen: "127.0.0.1:9090".into(),
            session_ttl_s: DEFAULT_SESSION_TTL_S,
            tls: None,
            dashboard: true,
        }
    }
}

#[derive(Clone, Deserialize)]
#[serde(default)]
pub struct StorageSection {
    /// SQLite file; relative paths are relative to the working directory. Absent:
    /// [`DEFAULT_STORAGE_PATH`] (or, with `url`, only the directory of local files).
    pub path: Option<String>,
    /// PostgreSQL instead of SQLite (`postgres://` or `postgresql://`): any number of
    /// gateways share it. Holds the password: never shown.
    pub url: String,
    /// Connections each gateway may hold to PostgreSQL.
    pub pool_size: usize,
    /// Usage events older than this many days are deleted once a day; 0 keeps them.
    pub usage_retention_days: u32,
}

/// `storage.path` when the file does not set it.
pub const DEFAULT_STORAGE_PATH: &str = "data/tollgate.db";

impl Default for StorageSection {
    fn default() -> Self {
        StorageSection {
            path: None,
            url: String::new(),
            pool_size: crate::store::pg::DEFAULT_POOL_SIZE,
            usage_retention_days: 0,
        }
    }
}

impl std::fmt::Debug for StorageSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageSection")
            .field("path", &self.path)
            .field("url", &if self.url.is_empty() { "" } else { "*****" })
            .field("pool_size", &self.pool_size)
            .field("usage_retention_days", &self.usage_retention_days)
            .finish()
    }
}

impl StorageSection {
    /// The SQLite file: `path`, or the default.
    pub fn sqlite_path(&self) -> &str {
        self.path.as_deref().unwrap_or(DEFAULT_STORAGE_PATH)
    }

    /// The directory holding the database (and `master.key`, the pid file...); with
    /// PostgreSQL, the default's directory (`data`), for the local files alone.
    pub fn dir(&self) -> PathBuf {
        match Path::new(self.sqlite_path()).parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }
}

#[derive(Clone, Default, Deserialize)]
#[serde(default)]
pub struct LimitsSection {
    /// Redis (or Valkey) holding the RPM, TPM and budget counters every instance shares;
    /// unset: each instance counts alone.
    pub redis_url: Option<String>,
    /// A PEM file of the roots a `rediss://` server's certificate must chain to;
    /// unset: the machine's trust store.
    pub redis_ca: Option<String>,
}

impl std::fmt::Debug for LimitsSection {
    // the URL may carry a password
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = self.redis_url.as_deref().map(crate::limits::redacted);
        f.debug_struct("LimitsSection")
            .field("redis_url", &url)
            .field("redis_ca", &self.redis_ca)
            .finish()
    }
}

#[derive(Clone, Default, Deserialize)]
#[serde(default)]
pub struct SecretsSection {
    /// Base64 of 32 bytes, or empty to use (and create once) `<storage dir>/master.key`.
    pub master_key: String,
}

impl std::fmt::Debug for SecretsSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretsSection { master_key: ***** }")
    }
}

/// How callers of the proxy authenticate: gateway keys (`keys`, the default), static
/// shared keys (`legacy`, for migrating from a single-key proxy), or either (`both`).
#[derive(Clone, Deserialize)]
#[serde(default)]
pub struct AuthSection {
    pub mode: String,
    /// The static keys of `legacy` and `both` (empty strings, as from an unset
    /// `${VAR:-}`, are left out).
    pub legacy_keys: Vec<String>,
}

impl Default for AuthSection {
    fn default() -> Self {
        AuthSection {
            mode: "keys".into(),
            legacy_keys: Vec::new(),
        }
    }
}

impl std::fmt::Debug for AuthSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSection")
            .field("mode", &self.mode)
            .field(
                "legacy_keys",
                &format_args!("[{} redacted]", self.legacy_keys.len()),
            )
            .finish()
    }
}

#[derive(Clone, Deserialize)]
#[serde(default)]
pub struct UpstreamConfig {
    pub name: String,
    pub kind: String,
    pub base_url: String,
    pub keys: Vec<String>,
    pub connect_timeout_ms: u64,
    pub read_timeout_ms: u64,
    /// For OpenAI-kind upstreams: ask for stream usage on the client's behalf.
    pub stream_include_usage: bool,
    /// For OpenAI-kind upstreams: whether the upstream serves `/v1/responses` itself
    /// (false: Responses API clients are translated to chat completions).
    pub responses_api: bool,
    /// How requests of another dialect are translated for this upstream (README
    /// "Translation").
    pub translation: TranslationConfig,
    /// The longest a key rests after a 429 asking for `retry-after` (0: never rests).
    pub max_retry_after_s: u64,
    /// How long a key's open circuit stays open before a probe.
    pub circuit_cool_down_s: u64,
    /// An optional active health check.
    pub health_check: Option<HealthCheckConfig>,
}

/// `upstreams[].translation`: the choices a translation to this upstream makes where
/// more than one is faithful (`tollgate_filters::translate::Options`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TranslationConfig {
    /// `max_tokens` for an Anthropic upstream when the client gave none.
    pub default_max_tokens: u32,
    /// Gemini tool schemas as the OpenAPI-subset `parameters`.
    pub gemini_openapi_schema: bool,
    /// Thinking to OpenAI Chat clients as `reasoning_content`.
    pub reasoning_content: bool,
    /// The legacy `max_tokens` instead of `max_completion_tokens` (OpenAI kind).
    pub openai_legacy_max_tokens: bool,
    /// Members of a translated Chat Completions request the upstream refuses (OpenAI
    /// kind): names of `tollgate_filters::translate::ChatMember::ALL`.
    pub omit: Vec<String>,
    /// An assistant turn's thinking back to the upstream as `reasoning_content` (OpenAI
    /// kind).
    pub send_reasoning_content: bool,
    /// Tool-call ids as Mistral takes them (nine letters and digits; OpenAI kind).
    pub mistral_tool_call_ids: bool,
}

impl Default for TranslationConfig {
    fn default() -> Self {
        let o = tollgate_filters::translate::Options::default();
        TranslationConfig {
            default_max_tokens: o.default_max_tokens,
            gemini_openapi_schema: o.gemini_openapi_schema,
            reasoning_content: o.reasoning_content,
            openai_legacy_max_tokens: o.openai_legacy_max_tokens,
            omit: Vec::new(),
            send_reasoning_content: o.send_reasoning_content,
            mistral_tool_call_ids: o.mistral_tool_call_ids,
        }
    }
}

/// `upstreams[].health_check`: `GET path` every `interval_s`; down while it fails.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct HealthCheckConfig {
    /// Appended to the base URL's path.
    pub path: String,
    pub interval_s: u64,
    pub timeout_ms: u64,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        HealthCheckConfig {
            path: "/v1/models".into(),
            interval_s: 10,
            timeout_ms: 2_000,
        }
    }
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            name: String::new(),
            kind: String::new(),
            base_url: String::new(),
            keys: Vec::new(),
            connect_timeout_ms: 5_000,
            read_timeout_ms: 600_000,
            stream_include_usage: true,
            responses_api: true,
            translation: TranslationConfig::default(),
            max_retry_after_s: 60,
            circuit_cool_down_s: 30,
            health_check: None,
        }
    }
}

impl std::fmt::Debug for UpstreamConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamConfig")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("keys", &format_args!("[{} redacted]", self.keys.len()))
            .finish()
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RouteConfig {
    pub models: Vec<String>,
    pub upstreams: Vec<String>,
}

/// USD per million tokens. Kept as YAML numbers here and turned into exact integers
/// (nano-dollars per token) by validation, since f64 cannot hold 0.075 exactly.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PriceConfig {
    pub input: Option<serde_yaml::Number>,
    pub output: Option<serde_yaml::Number>,
    pub cache_read: Option<serde_yaml::Number>,
    pub cache_write: Option<serde_yaml::Number>,
}

/// Reads, expands and validates a config file: the config, or every problem in it.
pub fn load(path: &Path) -> Result<Runtime, ConfigError> {
    load_with_env(path, &|name| std::env::var(name).ok())
}

/// [`load`] with an explicit environment (tests).
pub fn load_with_env(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Runtime, ConfigError> {
    let fail = |problems| ConfigError {
        file: path.to_path_buf(),
        problems,
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        fail(vec![ConfigProblem::new(
            "",
            format!("cannot read the file: {e}"),
        )])
    })?;
    let (config, mut problems) = parse_lenient(&text, env);
    // Check what did parse too, so that one run lists every problem; a key already
    // reported (an unset variable, say) is not reported again for its consequence.
    let Some(config) = config else {
        return Err(fail(problems));
    };
    match validate::validate(config) {
        Ok(rt) if problems.is_empty() => Ok(rt),
        Ok(_) => Err(fail(problems)),
        Err(semantic) => {
            let known: Vec<String> = problems.iter().map(|p| p.path.clone()).collect();
            let fresh = semantic.into_iter().filter(|p| {
                !known
                    .iter()
                    .any(|k| !k.is_empty() && p.path.starts_with(k.as_str()))
            });
            problems.extend(fresh);
            Err(fail(problems))
        }
    }
}

/// [`parse`], also returning the config when the only problems were unknown keys or unset
/// variables (the type of every known key was right).
fn parse_lenient(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> (Option<Config>, Vec<ConfigProblem>) {
    match parse_inner(text, env) {
        Ok((config, problems)) => (Some(config), problems),
        Err(problems) => (None, problems),
    }
}

/// Parses YAML text into [`Config`], collecting unset variables, unknown keys and the
/// first type error together.
pub fn parse(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Vec<ConfigProblem>> {
    match parse_inner(text, env)? {
        (config, problems) if problems.is_empty() => Ok(config),
        (_, problems) => Err(problems),
    }
}

/// The config (when every known key had the right type) and the problems found.
fn parse_inner(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Config, Vec<ConfigProblem>), Vec<ConfigProblem>> {
    let mut value: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(" at line {}, column {}", l.line(), l.column()))
            .unwrap_or_default();
        vec![ConfigProblem::new("", format!("invalid YAML{at}: {e}"))]
    })?;
    if value.is_null() {
        value = serde_yaml::Value::Mapping(Default::default());
    }
    let mut problems = Vec::new();
    expand_values(&mut value, String::new(), env, &mut problems);
    let mut unknown = Vec::new();
    let mut on_unknown = |p: serde_ignored::Path| unknown.push(key_path(&p));
    let ignored = serde_ignored::Deserializer::new(value, &mut on_unknown);
    let parsed: Result<Config, _> = serde_path_to_error::deserialize(ignored);
    for path in unknown {
        problems.push(ConfigProblem::new(path, "unknown key"));
    }
    match parsed {
        Ok(c) => Ok((c, problems)),
        Err(e) => {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            problems.push(ConfigProblem::new(path, e.into_inner().to_string()));
            Err(problems)
        }
    }
}

/// `upstreams[0].colour` from serde_ignored's path (which prints `upstreams.0.colour`).
fn key_path(p: &serde_ignored::Path) -> String {
    use serde_ignored::Path;
    match p {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", key_path(parent)),
        Path::Map { parent, key } => match key_path(parent) {
            s if s.is_empty() => key.clone(),
            s => format!("{s}.{key}"),
        },
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => key_path(parent),
    }
}

/// Expands variables in every string value. A value that was exactly one `${...}` and
/// expands to a number or boolean becomes one, so `threads: ${THREADS:-2}` works.
fn expand_values(
    v: &mut serde_yaml::Value,
    path: String,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<ConfigProblem>,
) {
    use serde_yaml::Value;
    match v {
        Value::String(s) if s.contains("${") => match expand(s, env) {
            Ok(new) => {
                let whole = s.starts_with("${") && s.ends_with('}') && s.matches("${").count() == 1;
                let typed = whole
                    .then(|| serde_yaml::from_str::<Value>(&new).ok())
                    .flatten()
                    .filter(|t| t.is_number() || t.is_bool());
                *v = typed.unwrap_or(Value::String(new));
            }
            Err(msg) => problems.push(ConfigProblem::new(path, msg)),
        },
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_values(item, format!("{path}[{i}]"), env, problems);
            }
        }
        Value::Mapping(map) => {
            for (k, item) in map.iter_mut() {
                let key = k
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("{k:?}"));
                let sub = if path.is_empty() {
                    key
                } else {
                    format!("{path}.{key}")
                };
                expand_values(item, sub, env, problems);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "THREADS").then(|| "4".to_owned())
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let text = "server:\n  threads: 2\n  bogus: 1\nupstreams:\n  - name: a\n    kind: openai\n    base_url: ${NOPE}\n    colour: red\nextra: 1\n";
        let problems = parse(text, &env).err().unwrap_or_default();
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert!(paths.contains(&"upstreams[0].base_url"), "{problems:?}");
        assert!(paths.contains(&"server.bogus"), "{problems:?}");
        assert!(paths.contains(&"upstreams[0].colour"), "{problems:?}");
        assert!(paths.contains(&"extra"), "{problems:?}");
    }

    #[test]
    fn whole_value_variables_become_numbers() {
        let c = parse("server:\n  threads: ${THREADS:-2}\n", &env).map_err(|p| format!("{p:?}"));
        assert_eq!(c.map(|c| c.server.threads), Ok(4));
    }

    #[test]
    fn type_errors_name_the_key() {
        let problems = parse("server:\n  threads: many\n", &env)
            .err()
            .unwrap_or_default();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].path, "server.threads");
    }
}
