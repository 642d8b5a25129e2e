//! Cross-field checks of a parsed [`Config`], turning it into a [`Runtime`] or returning
//! every problem found.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use tollgate_filters::pattern::ModelPattern;
use tollgate_filters::router::{Route, Router};
use tollgate_filters::translate::ChatMember;
use tollgate_filters::upstream::{HealthCheckSpec, ProviderKind, UpstreamSpec, UpstreamTarget};
use tollgate_filters::Secret;

use tollgate_filters::usage::Price;

use crate::store::pg::PgOptions;

use super::runtime::{AuthMode, Fixed, Reloadable, Runtime};
use super::tls::{TlsCerts, TlsFiles};
use super::{Config, ConfigProblem, PriceConfig, UpstreamConfig};

/// The longest admin session: a stolen token must not stay good for months.
const MAX_SESSION_TTL_S: u64 = 30 * 86_400;

/// Every problem found so far, in the order the file's sections are checked.
#[derive(Default)]
struct Problems(Vec<ConfigProblem>);

impl Problems {
    fn bad(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigProblem::new(path, message));
    }
}

/// The config turned into what the server runs with, or every problem in it. Each
/// section is checked on its own, in file order, so problems are reported in that order.
pub fn validate(c: Config) -> Result<Runtime, Vec<ConfigProblem>> {
    let mut p = Problems::default();
    check_listeners(&c, &mut p);
    let (tls, warnings) = tls(&c, &mut p);
    check_limits(&c, &mut p);
    check_storage_and_secrets(&c, &mut p);
    check_redis_url(&c, &mut p);
    check_auth(&c, &mut p);
    let upstreams = upstreams(&c, &mut p);
    let routes = routes(&c, &upstreams, &mut p);
    check_aliases(&c, &routes, &mut p);
    let pricing = pricing(&c, &mut p);
    if !p.0.is_empty() {
        return Err(p.0);
    }
    let mut rt = runtime(&c, upstreams, routes, pricing);
    rt.tls = tls;
    rt.warnings = warnings;
    Ok(rt)
}

/// `server.tls` and `admin.tls`: their files read and checked (`super::tls`); the
/// certificates, and the warnings.
fn tls(c: &Config, p: &mut Problems) -> (TlsCerts, Vec<ConfigProblem>) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let mut warnings = Vec::new();
    let mut read = |files: &Option<TlsFiles>, at: &str| {
        let check = super::tls::load(files.as_ref()?, at, now);
        p.0.extend(check.errors);
        warnings.extend(check.warnings);
        check.loaded.map(Arc::new)
    };
    let certs = TlsCerts {
        proxy: read(&c.server.tls, "server.tls"),
        admin: read(&c.admin.tls, "admin.tls"),
    };
    (certs, warnings)
}

/// `server.listen` and `admin.listen`.
fn check_listeners(c: &Config, p: &mut Problems) {
    if c.server.listen.is_empty() {
        p.bad("server.listen", "at least one listen address is required");
    }
    for (i, l) in c.server.listen.iter().enumerate() {
        if l.parse::<SocketAddr>().is_err() {
            p.bad(
                format!("server.listen[{i}]"),
                format!("'{l}' is not an IP:port address"),
            );
        }
    }
    if c.admin.listen.parse::<SocketAddr>().is_err() {
        p.bad(
            "admin.listen",
            format!("'{}' is not an IP:port address", c.admin.listen),
        );
    }
}

/// The admin session lifetime, then the server's threads and request bounds.
fn check_limits(c: &Config, p: &mut Problems) {
    if c.admin.session_ttl_s == 0 || c.admin.session_ttl_s > MAX_SESSION_TTL_S {
        p.bad(
            "admin.session_ttl_s",
            format!("must be between 1 and {MAX_SESSION_TTL_S} (30 days)"),
        );
    }
    if c.server.threads == 0 || c.server.threads > 1024 {
        p.bad("server.threads", "must be between 1 and 1024");
    }
    let positive = [
        ("server.max_body_bytes", c.server.max_body_bytes),
        ("server.body_timeout_ms", c.server.body_timeout_ms),
        ("server.header_timeout_ms", c.server.header_timeout_ms),
    ];
    for (key, value) in positive {
        if value == 0 {
            p.bad(key, "must be greater than 0");
        }
    }
}

/// `storage.*` and `secrets.*`.
fn check_storage_and_secrets(c: &Config, p: &mut Problems) {
    if c.storage
        .path
        .as_deref()
        .is_some_and(|p| p.trim().is_empty())
    {
        p.bad("storage.path", "must not be empty");
    }
    if !c.storage.url.is_empty() {
        check_storage_url(c, p);
    }
    if !c.secrets.master_key.is_empty() {
        let decoded = base64::engine::general_purpose::STANDARD.decode(c.secrets.master_key.trim());
        if decoded.map(|k| k.len()) != Ok(32) {
            p.bad(
                "secrets.master_key",
                "must be the base64 encoding of exactly 32 bytes",
            );
        }
    }
}

/// `limits.redis_url`: a URL the Redis client accepts (never echoed: it may carry a
/// password).
fn check_redis_url(c: &Config, p: &mut Problems) {
    if let Some(url) = &c.limits.redis_url {
        if let Err(why) = crate::limits::check_url(url) {
            p.bad("limits.redis_url", why);
        }
    }
    if let Some(ca) = &c.limits.redis_ca {
        match &c.limits.redis_url {
            Some(url) if crate::limits::is_tls(url) => {
                if let Err(why) = crate::limits::read_ca(ca) {
                    p.bad("limits.redis_ca", why);
                }
            }
            _ => p.bad(
                "limits.redis_ca",
                "is for a rediss:// limits.redis_url: without TLS nothing would check it",
            ),
        }
    }
}

/// `storage.url` (PostgreSQL): well-formed, not beside `storage.path`, a pool of at
/// least one connection, and a master key given in the file, since every instance
/// must unwrap the same data keys (a key generated into one machine's storage
/// directory would lock the others out).
fn check_storage_url(c: &Config, p: &mut Problems) {
    if let Err(why) = PgOptions::parse(&c.storage.url, c.storage.pool_size) {
        p.bad("storage.url", why);
    }
    if c.storage.path.is_some() {
        p.bad(
            "storage.path",
            "storage.path (SQLite) and storage.url (PostgreSQL) are alternatives: set one",
        );
    }
    if c.storage.pool_size == 0 {
        p.bad("storage.pool_size", "must be greater than 0");
    }
    if c.secrets.master_key.trim().is_empty() {
        p.bad(
            "secrets.master_key",
            "must be set with storage.url: every instance sharing the store needs the same master key",
        );
    }
}

/// `auth.mode` and `auth.legacy_keys`: a mode that accepts legacy keys needs one.
fn check_auth(c: &Config, p: &mut Problems) {
    let mode = AuthMode::parse(&c.auth.mode);
    if mode.is_none() {
        p.bad(
            "auth.mode",
            format!(
                "unknown mode '{}' (expected keys, legacy or both)",
                c.auth.mode
            ),
        );
    }
    for (i, key) in c.auth.legacy_keys.iter().enumerate() {
        if !key.is_empty() && (http::HeaderValue::from_str(key).is_err() || key.trim() != key) {
            p.bad(
                format!("auth.legacy_keys[{i}]"),
                "contains characters not allowed in a header",
            );
        }
    }
    let none = c.auth.legacy_keys.iter().all(String::is_empty);
    if let Some(m) = mode.filter(|m| m.accepts_legacy() && none) {
        p.bad(
            "auth.legacy_keys",
            format!("auth.mode {} needs at least one legacy key", m.as_str()),
        );
    }
}

/// `upstreams[]`: each one checked, and built when it has no problem.
fn upstreams(c: &Config, p: &mut Problems) -> Vec<Arc<UpstreamTarget>> {
    let mut built: Vec<Arc<UpstreamTarget>> = Vec::new();
    let mut named: HashSet<&str> = HashSet::new();
    for (i, u) in c.upstreams.iter().enumerate() {
        let at = |k: &str| format!("upstreams[{i}].{k}");
        if u.name.is_empty()
            || !u
                .name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch))
        {
            p.bad(
                at("name"),
                "must be non-empty letters, digits, '-', '_' or '.'",
            );
        } else if named.contains(u.name.as_str()) {
            p.bad(at("name"), format!("duplicate upstream name '{}'", u.name));
        }
        let kind = upstream_kind(u, &at, p);
        let url = parse_base_url(&u.base_url)
            .map_err(|m| p.bad(at("base_url"), m))
            .ok();
        let keys = upstream_keys(i, u, p);
        check_upstream_limits(u, &at, p);
        check_translation(u, kind, &at, p);
        if let (Some(kind), Some(url)) = (kind, url) {
            named.insert(u.name.as_str());
            built.push(upstream_target(u, kind, url, keys));
        }
    }
    built
}

/// `upstreams[i].kind`.
fn upstream_kind(
    u: &UpstreamConfig,
    at: &dyn Fn(&str) -> String,
    p: &mut Problems,
) -> Option<ProviderKind> {
    let kind = ProviderKind::parse(&u.kind);
    if kind.is_none() {
        let expected = ProviderKind::names();
        p.bad(
            at("kind"),
            format!("unknown kind '{}' (expected {expected})", u.kind),
        );
    }
    kind
}

/// `upstreams[i].keys`: the configured provider keys, each usable in a header.
fn upstream_keys(i: usize, u: &UpstreamConfig, p: &mut Problems) -> Vec<Secret> {
    let mut keys = Vec::new();
    for (k, key) in u.keys.iter().enumerate() {
        if key.is_empty() {
            continue; // an unset `${VAR:-}`: the upstream simply has one key fewer
        }
        if http::HeaderValue::from_str(key).is_err() || key.trim() != key {
            p.bad(
                format!("upstreams[{i}].keys[{k}]"),
                "contains characters not allowed in a header",
            );
        } else {
            keys.push(Secret::new(key.clone()));
        }
    }
    keys
}

/// An upstream's timeouts, circuit, health check and retry bounds.
fn check_upstream_limits(u: &UpstreamConfig, at: &dyn Fn(&str) -> String, p: &mut Problems) {
    if u.connect_timeout_ms == 0 {
        p.bad(at("connect_timeout_ms"), "must be greater than 0");
    }
    if u.read_timeout_ms == 0 {
        p.bad(at("read_timeout_ms"), "must be greater than 0");
    }
    if !(1..=3600).contains(&u.circuit_cool_down_s) {
        p.bad(at("circuit_cool_down_s"), "must be between 1 and 3600");
    }
    if let Some(h) = &u.health_check {
        if !h.path.starts_with('/') || h.path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            p.bad(at("health_check.path"), "must be a path starting with /");
        }
        if !(1..=3600).contains(&h.interval_s) {
            p.bad(at("health_check.interval_s"), "must be between 1 and 3600");
        }
        if !(1..=60_000).contains(&h.timeout_ms) {
            p.bad(at("health_check.timeout_ms"), "must be between 1 and 60000");
        }
    }
    if u.max_retry_after_s > 86_400 {
        p.bad(at("max_retry_after_s"), "must be at most 86400 (a day)");
    }
}

/// `upstreams[i].translation`: the member names `omit` takes, and the keys that edit a
/// translated Chat Completions request set only on an OpenAI-kind upstream.
fn check_translation(
    u: &UpstreamConfig,
    kind: Option<ProviderKind>,
    at: &dyn Fn(&str) -> String,
    p: &mut Problems,
) {
    let t = &u.translation;
    if t.default_max_tokens == 0 {
        p.bad(at("translation.default_max_tokens"), "must be at least 1");
    }
    for (k, name) in t.omit.iter().enumerate() {
        if ChatMember::named(name).is_none() {
            let names: Vec<&str> = ChatMember::ALL.iter().map(|(n, _)| *n).collect();
            p.bad(
                at(&format!("translation.omit[{k}]")),
                format!(
                    "`{name}` is not a member Tollgate can leave out (one of: {})",
                    names.join(", ")
                ),
            );
        }
    }
    if kind == Some(ProviderKind::OpenAi) {
        return;
    }
    for (set, key) in [
        (!t.omit.is_empty(), "omit"),
        (t.send_reasoning_content, "send_reasoning_content"),
        (t.mistral_tool_call_ids, "mistral_tool_call_ids"),
    ] {
        if set {
            p.bad(
                at(&format!("translation.{key}")),
                "applies to OpenAI-kind upstreams only (it edits translated Chat Completions requests)",
            );
        }
    }
}

/// The upstream as requests use it, from a checked entry.
fn upstream_target(
    u: &UpstreamConfig,
    kind: ProviderKind,
    (tls, host, port, base_path): (bool, String, u16, String),
    keys: Vec<Secret>,
) -> Arc<UpstreamTarget> {
    Arc::new(
        UpstreamTarget::new(UpstreamSpec {
            name: u.name.clone(),
            kind,
            host,
            port,
            tls,
            base_path,
            keys,
            connect_timeout: Duration::from_millis(u.connect_timeout_ms),
            read_timeout: Duration::from_millis(u.read_timeout_ms),
        })
        .with_include_usage(u.stream_include_usage)
        .with_responses_api(u.responses_api)
        .with_translation(tollgate_filters::translate::Options {
            default_max_tokens: u.translation.default_max_tokens,
            gemini_openapi_schema: u.translation.gemini_openapi_schema,
            reasoning_content: u.translation.reasoning_content,
            openai_legacy_max_tokens: u.translation.openai_legacy_max_tokens,
            stream_include_usage: u.stream_include_usage,
            omit: u
                .translation
                .omit
                .iter()
                .filter_map(|m| ChatMember::named(m))
                .collect(),
            send_reasoning_content: u.translation.send_reasoning_content,
            mistral_tool_call_ids: u.translation.mistral_tool_call_ids,
        })
        .with_max_rest(Duration::from_secs(u.max_retry_after_s))
        .with_circuit_cool_down(Duration::from_secs(u.circuit_cool_down_s))
        .with_health_check(u.health_check.as_ref().map(|h| HealthCheckSpec {
            path: h.path.clone(),
            interval: Duration::from_secs(h.interval_s),
            timeout: Duration::from_millis(h.timeout_ms),
        })),
    )
}

/// `routes[]`: model patterns and the upstream chain each names.
fn routes(c: &Config, upstreams: &[Arc<UpstreamTarget>], p: &mut Problems) -> Vec<Route> {
    let mut routes = Vec::new();
    for (i, r) in c.routes.iter().enumerate() {
        if r.models.is_empty() || r.models.iter().any(|m| m.trim().is_empty()) {
            p.bad(
                format!("routes[{i}].models"),
                "must list at least one non-empty model pattern",
            );
        }
        if r.upstreams.is_empty() {
            p.bad(
                format!("routes[{i}].upstreams"),
                "must name at least one upstream",
            );
        }
        let mut chain = Vec::new();
        for (j, name) in r.upstreams.iter().enumerate() {
            // The first upstream of that name: a duplicate is reported under upstreams.
            match upstreams.iter().find(|t| &t.name == name) {
                Some(t) => chain.push(t.clone()),
                None if c.upstreams.iter().any(|u| &u.name == name) => {} // reported above
                None => p.bad(
                    format!("routes[{i}].upstreams[{j}]"),
                    format!("no upstream named '{name}'"),
                ),
            }
        }
        routes.push(Route {
            models: r.models.iter().map(|m| ModelPattern::parse(m)).collect(),
            chain,
        });
    }
    routes
}

/// `aliases`: each target a model name that some route serves.
fn check_aliases(c: &Config, routes: &[Route], p: &mut Problems) {
    for (alias, target) in &c.aliases {
        let at = format!("aliases.{alias}");
        if alias.is_empty() || target.trim().is_empty() {
            p.bad(at, "alias and target must be non-empty");
        } else if target.contains(['/', '?', '#', ':', '%']) || target.contains(char::is_whitespace)
        {
            p.bad(at, format!("'{target}' is not a model name"));
        } else if !routes
            .iter()
            .any(|r| r.models.iter().any(|pat| pat.matches(target)))
        {
            p.bad(at, format!("target '{target}' matches no route"));
        }
    }
}

/// `pricing`: model pattern -> exact prices, in file order.
fn pricing(c: &Config, p: &mut Problems) -> Vec<(String, Price)> {
    let mut pricing = Vec::new();
    for (pattern, price) in &c.pricing {
        let Some(pattern) = pattern.as_str() else {
            p.bad("pricing", format!("{pattern:?} is not a model pattern"));
            continue;
        };
        let price = match serde_yaml::from_value::<PriceConfig>(price.clone()) {
            Ok(price) => price,
            Err(e) => {
                p.bad(format!("pricing.{pattern}"), e.to_string());
                continue;
            }
        };
        match parse_price(&price) {
            Ok(pr) => pricing.push((pattern.to_owned(), pr)),
            Err((field, msg)) => p.bad(format!("pricing.{pattern}.{field}"), msg),
        }
    }
    pricing
}

/// The runtime form of a config without problems.
fn runtime(
    c: &Config,
    upstreams: Vec<Arc<UpstreamTarget>>,
    routes: Vec<Route>,
    pricing: Vec<(String, Price)>,
) -> Runtime {
    Runtime {
        fixed: fixed(c),
        reloadable: Reloadable {
            upstreams,
            router: Arc::new(Router::new(c.aliases.clone().into_iter().collect(), routes)),
            pricing: Arc::new(pricing),
        },
        tls: TlsCerts::default(),
        warnings: Vec::new(),
    }
}

/// The settings fixed at start, from a config without problems.
fn fixed(c: &Config) -> Fixed {
    let storage_dir = c.storage.dir();
    let in_dir = |name: &str| storage_dir.join(name).to_string_lossy().into_owned();
    Fixed {
        proxy_listen: c.server.listen.clone(),
        admin_listen: c.admin.listen.clone(),
        admin_session_ttl: Duration::from_secs(c.admin.session_ttl_s),
        admin_dashboard: c.admin.dashboard,
        threads: c.server.threads,
        shutdown_grace: Duration::from_secs(c.server.shutdown_grace_s),
        max_body_bytes: c.server.max_body_bytes,
        body_timeout: Duration::from_millis(c.server.body_timeout_ms),
        header_timeout: Duration::from_millis(c.server.header_timeout_ms),
        max_connections_per_ip: c.server.max_connections_per_ip,
        storage_path: PathBuf::from(c.storage.sqlite_path()),
        storage_url: (!c.storage.url.is_empty())
            .then(|| PgOptions::parse(&c.storage.url, c.storage.pool_size).ok())
            .flatten(),
        pid_file: c
            .server
            .pid_file
            .clone()
            .unwrap_or_else(|| in_dir("tollgate.pid")),
        upgrade_sock: c
            .server
            .upgrade_sock
            .clone()
            .unwrap_or_else(|| in_dir("upgrade.sock")),
        master_key: c.secrets.master_key.trim().to_owned(),
        admin_tls: c.admin.tls.is_some(),
        auth_mode: AuthMode::parse(&c.auth.mode).unwrap_or(AuthMode::Keys),
        legacy_keys: c
            .auth
            .legacy_keys
            .iter()
            .filter(|k| !k.is_empty())
            .map(|k| Secret::new(k.clone()))
            .collect(),
        storage_dir,
        usage_retention_days: c.storage.usage_retention_days,
        redis_url: c.limits.redis_url.clone().map(Secret::new),
        redis_ca: c.limits.redis_ca.clone(),
    }
}

/// `(tls, host, port, base_path)` of an `http(s)://host[:port][/path]` URL.
fn parse_base_url(s: &str) -> Result<(bool, String, u16, String), String> {
    let uri: http::Uri = s.parse().map_err(|_| format!("'{s}' is not a URL"))?;
    let tls = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(format!("'{s}' must start with http:// or https://")),
    };
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("'{s}' has no host"))?;
    if uri.query().is_some() || s.contains('#') || s.contains('@') {
        return Err(format!(
            "'{s}' must not carry a query, fragment or user info"
        ));
    }
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let base_path = uri.path().trim_end_matches('/').to_owned();
    Ok((tls, host, port, base_path))
}

/// Exact nano-dollars per token from USD per million tokens with at most 3 decimals.
fn parse_price(p: &PriceConfig) -> Result<Price, (&'static str, String)> {
    let field = |name: &'static str,
                 v: &Option<serde_yaml::Number>|
     -> Result<Option<u64>, (&'static str, String)> {
        v.as_ref()
            .map(|n| usd_per_million_to_nanos(&n.to_string()).map_err(|m| (name, m)))
            .transpose()
    };
    let input = field("input", &p.input)?.ok_or(("input", "is required".to_owned()))?;
    let output = field("output", &p.output)?.ok_or(("output", "is required".to_owned()))?;
    Ok(Price {
        input,
        output,
        cache_read: field("cache_read", &p.cache_read)?.unwrap_or(input),
        cache_write: field("cache_write", &p.cache_write)?.unwrap_or(input),
    })
}

/// "0.075" (USD per million tokens) -> 75 (nano-dollars per token).
pub fn usd_per_million_to_nanos(s: &str) -> Result<u64, String> {
    let bad = || format!("'{s}' must be a non-negative price with at most 3 decimals");
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() > 3 {
        return Err(bad());
    }
    let whole: u64 = whole.parse().map_err(|_| bad())?;
    let frac_val: u64 = format!("{frac:0<3}").parse().map_err(|_| bad())?;
    whole
        .checked_mul(1000)
        .and_then(|w| w.checked_add(frac_val))
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn prices_are_exact() {
        assert_eq!(usd_per_million_to_nanos("0.075"), Ok(75));
        assert_eq!(usd_per_million_to_nanos("15"), Ok(15_000));
        assert_eq!(usd_per_million_to_nanos("3.0"), Ok(3_000));
        assert!(usd_per_million_to_nanos("0.0001").is_err());
        assert!(usd_per_million_to_nanos("-1").is_err());
        assert!(usd_per_million_to_nanos("1e-3").is_err());
    }

    #[test]
    fn storage_url_is_checked_and_expanded() {
        let env = |name: &str| (name == "PGPASSWORD").then(|| "pw".to_owned());
        let key = "secrets: { master_key: \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\" }\n";
        let text = format!("storage:\n  url: \"postgres://tollgate:${{PGPASSWORD}}@db:5432/tg\"\n  pool_size: 3\n{key}");
        let c = parse(&text, &env).map_err(|p| format!("{p:?}"));
        let Ok(c) = c else { panic!("{c:?}") };
        let rt = validate(c).map_err(|p| format!("{p:?}"));
        let Ok(rt) = rt else { panic!("{rt:?}") };
        let pg = rt.fixed.storage_url.unwrap();
        assert_eq!(
            (pg.redacted().as_str(), pg.pool_size),
            ("postgres://tollgate@db:5432/tg", 3)
        );
        // Wrong scheme, beside a path, no pool, no master key: each said once.
        let text = "storage:\n  url: \"mysql://u@db/tg\"\n  path: x.db\n  pool_size: 0\n";
        let c = parse(text, &no_env).map_err(|p| format!("{p:?}"));
        let Ok(c) = c else { panic!("{c:?}") };
        let problems = validate(c).err().unwrap_or_default();
        let lines: Vec<String> = problems
            .iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect();
        assert_eq!(
            lines,
            [
                "storage.url: must start with postgres:// or postgresql://",
                "storage.path: storage.path (SQLite) and storage.url (PostgreSQL) are alternatives: set one",
                "storage.pool_size: must be greater than 0",
                "secrets.master_key: must be set with storage.url: every instance sharing the store needs the same master key",
            ]
        );
    }

    /// `translation.omit` names members of a translated Chat Completions request, for an
    /// OpenAI-kind upstream only; what it names reaches the translator.
    #[test]
    fn translation_omit_names_chat_members_of_openai_upstreams() {
        let text = r#"
upstreams:
  - name: mistral
    kind: openai
    base_url: "https://api.mistral.ai"
    stream_include_usage: false
    translation: { omit: [user, seed], mistral_tool_call_ids: true }
  - { name: kimi, kind: openai, base_url: "https://k", translation: { send_reasoning_content: true } }
  - { name: a, kind: openai, base_url: "https://a", translation: { omit: [user, messages] } }
  - { name: b, kind: anthropic, base_url: "https://b", translation: { omit: [user], send_reasoning_content: true, mistral_tool_call_ids: true } }
"#;
        let problem_lines = |text: &str| -> Vec<String> {
            let c = parse(text, &no_env).map_err(|p| format!("{p:?}"));
            let Ok(c) = c else { panic!("{c:?}") };
            validate(c)
                .err()
                .unwrap_or_default()
                .iter()
                .map(|p| format!("{}: {}", p.path, p.message))
                .collect()
        };
        assert_eq!(
            problem_lines(text),
            [
                "upstreams[2].translation.omit[1]: `messages` is not a member Tollgate can leave out (one of: user, seed, parallel_tool_calls, presence_penalty, frequency_penalty, logprobs, top_logprobs, n, reasoning_effort, response_format)",
                "upstreams[3].translation.omit: applies to OpenAI-kind upstreams only (it edits translated Chat Completions requests)",
                "upstreams[3].translation.send_reasoning_content: applies to OpenAI-kind upstreams only (it edits translated Chat Completions requests)",
                "upstreams[3].translation.mistral_tool_call_ids: applies to OpenAI-kind upstreams only (it edits translated Chat Completions requests)",
            ]
        );
        let good = &text[..text.find("  - { name: a").unwrap()];
        let c = parse(good, &no_env).map_err(|p| format!("{p:?}"));
        let Ok(c) = c else { panic!("{c:?}") };
        let rt = validate(c).map_err(|p| format!("{p:?}"));
        let Ok(rt) = rt else { panic!("{rt:?}") };
        let opts = &rt.reloadable.upstreams[0].translation;
        assert_eq!(opts.omit, [ChatMember::User, ChatMember::Seed]);
        assert!(!opts.stream_include_usage && !opts.send_reasoning_content);
        assert!(opts.mistral_tool_call_ids);
        let kimi = &rt.reloadable.upstreams[1].translation;
        assert!(kimi.send_reasoning_content && kimi.stream_include_usage && kimi.omit.is_empty());
        assert!(!kimi.mistral_tool_call_ids);
    }

    #[test]
    fn semantic_problems_are_all_reported() {
        let text = r#"
server: { listen: ["nope"], header_timeout_ms: 0 }
admin: { listen: "127.0.0.1:9090", session_ttl_s: 0 }
upstreams:
  - { name: a, kind: llama, base_url: "ftp://x", circuit_cool_down_s: 0, max_retry_after_s: 100000 }
  - name: b
    kind: openai
    base_url: "https://api.openai.com"
    health_check: { path: "v1/models", interval_s: 0, timeout_ms: 0 }
routes:
  - { models: ["gpt-*"], upstreams: [b, missing] }
aliases: { fast: "claude-x" }
pricing: { "gpt-*": { input: 0.0001, output: 1 } }
"#;
        let c = parse(text, &no_env).map_err(|p| format!("{p:?}"));
        let Ok(c) = c else { panic!("{c:?}") };
        let problems = validate(c).err().unwrap_or_default();
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        for want in [
            "server.listen[0]",
            "upstreams[0].kind",
            "upstreams[0].base_url",
            "routes[0].upstreams[1]",
            "aliases.fast",
            "pricing.gpt-*.input",
            "admin.session_ttl_s",
            "server.header_timeout_ms",
            "upstreams[0].circuit_cool_down_s",
            "upstreams[0].max_retry_after_s",
            "upstreams[1].health_check.path",
            "upstreams[1].health_check.interval_s",
            "upstreams[1].health_check.timeout_ms",
        ] {
            assert!(paths.contains(&want), "missing {want} in {problems:?}");
        }
    }

    #[test]
    fn legacy_mode_needs_a_key() {
        let problems = |yaml: &str| -> Vec<String> {
            let c = parse(yaml, &|name| {
                (name == "LEGACY").then(|| "s3cret-static".to_owned())
            });
            let c = c.map_err(|p| format!("{p:?}")).unwrap();
            validate(c)
                .err()
                .unwrap_or_default()
                .into_iter()
                .map(|p| format!("{}: {}", p.path, p.message))
                .collect()
        };
        let ok = "server: { listen: [\"127.0.0.1:0\"] }\n";
        assert!(problems(&format!("{ok}auth: {{ mode: keys }}\n")).is_empty());
        assert!(problems(&format!(
            "{ok}auth: {{ mode: both, legacy_keys: [\"${{LEGACY}}\"] }}\n"
        ))
        .is_empty());
        assert_eq!(
            problems(&format!(
                "{ok}auth: {{ mode: legacy, legacy_keys: [\"${{NOPE:-}}\"] }}\n"
            )),
            ["auth.legacy_keys: auth.mode legacy needs at least one legacy key"]
        );
        assert_eq!(
            problems(&format!("{ok}auth: {{ mode: open }}\n")),
            ["auth.mode: unknown mode 'open' (expected keys, legacy or both)"]
        );
        assert_eq!(
            problems(&format!(
                "{ok}auth: {{ mode: both, legacy_keys: [\" padded\"] }}\n"
            )),
            ["auth.legacy_keys[0]: contains characters not allowed in a header"]
        );
        let rt = validate(
            parse(
                &format!("{ok}auth: {{ mode: both, legacy_keys: [\"${{LEGACY}}\", \"\"] }}\n"),
                &|name| (name == "LEGACY").then(|| "s3cret-static".to_owned()),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(rt.fixed.auth_mode, AuthMode::Both);
        assert_eq!(rt.fixed.legacy_keys.len(), 1);
        assert!(!format!("{:?}", rt.fixed).contains("s3cret"));
    }

    #[test]
    fn redis_url_is_expanded_checked_in_one_line_and_never_shown() {
        let env = |name: &str| (name == "REDIS_PW").then(|| "pa55word".to_owned());
        let ok = "server: { listen: [\"127.0.0.1:0\"] }\n";
        let check = |yaml: String| {
            validate(parse(&yaml, &env).unwrap()).map_err(|p| {
                p.into_iter()
                    .map(|p| format!("{}: {}", p.path, p.message))
                    .collect::<Vec<_>>()
            })
        };
        let rt = check(format!(
            "{ok}limits: {{ redis_url: \"redis://:${{REDIS_PW}}@10.0.0.5:6380/2\" }}\n"
        ))
        .unwrap();
        let url = rt.fixed.redis_url.as_ref().map(|u| u.expose().to_owned());
        assert_eq!(url.as_deref(), Some("redis://:pa55word@10.0.0.5:6380/2"));
        assert!(!format!("{:?}", rt.fixed).contains("pa55word"));
        assert!(check(ok.to_owned()).unwrap().fixed.redis_url.is_none());
        let e = check(format!(
            "{ok}limits: {{ redis_url: \"10.0.0.5:${{REDIS_PW}}\" }}\n"
        ))
        .err()
        .unwrap_or_default();
        assert_eq!(
            e,
            ["limits.redis_url: must be a redis[s]://[:PASSWORD@]HOST[:PORT][/DB] or unix:///PATH URL"]
        );
        // limits.redis_ca: only beside a rediss:// URL, and a file of certificates
        let ca = crate::config::tls::TEST_CA;
        let rt = check(format!(
            "{ok}limits: {{ redis_url: \"rediss://cache:6380/0\", redis_ca: \"{ca}\" }}\n"
        ))
        .unwrap();
        assert_eq!(rt.fixed.redis_ca.as_deref(), Some(ca));
        let e = check(format!(
            "{ok}limits: {{ redis_url: \"redis://cache:6379/0\", redis_ca: \"{ca}\" }}\n"
        ))
        .err()
        .unwrap_or_default();
        assert_eq!(
            e,
            ["limits.redis_ca: is for a rediss:// limits.redis_url: without TLS nothing would check it"]
        );
        let e = check(format!(
            "{ok}limits: {{ redis_url: \"rediss://cache:6380/0\", redis_ca: \"/nonexistent/ca.pem\" }}\n"
        ))
        .err()
        .unwrap_or_default();
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with("limits.redis_ca: cannot read /nonexistent/ca.pem: "),
            "{e:?}"
        );
    }

    #[test]
    fn base_urls_split_into_parts() {
        assert_eq!(
            parse_base_url("https://openrouter.ai/api/"),
            Ok((true, "openrouter.ai".into(), 443, "/api".into()))
        );
        assert_eq!(
            parse_base_url("http://127.0.0.1:11434"),
            Ok((false, "127.0.0.1".into(), 11434, String::new()))
        );
        assert!(parse_base_url("api.openai.com").is_err());
    }
}
