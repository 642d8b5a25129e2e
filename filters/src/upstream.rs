//! The upstreams Tollgate forwards to, as the filters see them (built from config in
//! the `tollgate` crate).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::circuit::Circuit;
pub use crate::providers::ProviderKind;
use crate::secret::Secret;

/// What an upstream is, from its config entry: the arguments of [`UpstreamTarget::new`].
/// The optional parts (health check, rests, circuits, include-usage) are set with the
/// target's `with_*` methods.
#[derive(Debug, Clone)]
pub struct UpstreamSpec {
    pub name: String,
    pub kind: ProviderKind,
    /// Host name (or IP literal) from `base_url`, also the TLS SNI.
    pub host: String,
    pub port: u16,
    pub tls: bool,
    /// Path prefix from `base_url` without a trailing slash ("" for none).
    pub base_path: String,
    pub keys: Vec<Secret>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
}

impl Default for UpstreamSpec {
    /// An OpenAI-kind upstream at `localhost:80` without TLS, base path or keys, with
    /// one-second timeouts: a base that tests complete with what they need.
    fn default() -> Self {
        UpstreamSpec {
            name: String::new(),
            kind: ProviderKind::OpenAi,
            host: "localhost".into(),
            port: 80,
            tls: false,
            base_path: String::new(),
            keys: Vec::new(),
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
        }
    }
}

/// One configured upstream. Immutable after start-up except the key cursor.
#[derive(Debug)]
pub struct UpstreamTarget {
    pub name: String,
    pub kind: ProviderKind,
    /// Host name (or IP literal) from `base_url`, also the TLS SNI.
    pub host: String,
    pub port: u16,
    pub tls: bool,
    /// Path prefix from `base_url` without a trailing slash ("" for none).
    pub base_path: String,
    /// The value of the upstream `Host` header.
    pub host_header: String,
    pub keys: Vec<Secret>,
    /// `host_header` and each key's credential header value, made once at start-up
    /// instead of formatted and validated on every request (`None`: the key is not a
    /// valid header value, refused when used).
    host_value: Option<http::HeaderValue>,
    credentials: Vec<Option<http::HeaderValue>>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// Add `stream_options.include_usage` to OpenAI-style streaming requests that lack
    /// it, so streams can be billed (and remove the extra chunk for the client).
    pub include_usage: bool,
    /// For `kind: openai`: whether the upstream serves `/v1/responses` itself; when
    /// false, Responses API clients are translated to Chat Completions (CONTRACT
    /// section 2 `responses_api`).
    pub responses_api: bool,
    /// The choices a translation to this upstream makes (config `translation:`).
    pub translation: crate::translate::Options,
    /// The longest a key rests after a 429 that asks for a `retry-after`.
    pub max_rest: Duration,
    /// The active health check, if configured.
    pub health_check: Option<HealthCheckSpec>,
    /// False while the active health check finds the upstream down: routing skips it.
    healthy: AtomicBool,
    /// One per configured key (one for an upstream without keys): its circuit breaker
    /// and its rest after a 429, so one exhausted or failing key is skipped while the
    /// others serve.
    slots: Box<[KeySlot]>,
    next_key: AtomicUsize,
}

/// The health of one key of an upstream.
#[derive(Debug, Default)]
pub struct KeySlot {
    pub circuit: Circuit,
    /// Unix ms until which the provider asked this key to wait (`retry-after`); 0: none.
    rest_until_ms: AtomicU64,
}

impl KeySlot {
    /// Whether the key rests now. A key never rested (the usual case) needs no clock
    /// read.
    fn resting(&self) -> bool {
        self.rest_until_ms.load(Ordering::Acquire) != 0 && self.resting_at(now_ms())
    }

    fn resting_at(&self, now_ms: u64) -> bool {
        self.rest_until_ms.load(Ordering::Acquire) > now_ms
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// An active health check: `GET {base path}{path}` every `interval`; the upstream is
/// up while it answers with a status below 500 within `timeout` (a 401 to a request
/// without a key still shows the API answering).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckSpec {
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
}

/// The default cap on a provider's `retry-after`.
pub const DEFAULT_MAX_REST: Duration = Duration::from_secs(60);

impl UpstreamTarget {
    pub fn new(spec: UpstreamSpec) -> Self {
        let UpstreamSpec {
            name,
            kind,
            host,
            port,
            tls,
            base_path,
            keys,
            connect_timeout,
            read_timeout,
        } = spec;
        let default_port = if tls { 443 } else { 80 };
        let host_name = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        let host_header = if port == default_port {
            host_name
        } else {
            format!("{host_name}:{port}")
        };
        let keys_len = keys.len();
        let credentials = keys.iter().map(|k| kind.credential_value(k)).collect();
        UpstreamTarget {
            host_value: http::HeaderValue::from_str(&host_header).ok(),
            credentials,
            name,
            kind,
            host,
            port,
            tls,
            base_path,
            host_header,
            keys,
            connect_timeout,
            read_timeout,
            include_usage: true,
            responses_api: true,
            translation: crate::translate::Options::default(),
            max_rest: DEFAULT_MAX_REST,
            health_check: None,
            healthy: AtomicBool::new(true),
            slots: (0..keys_len.max(1)).map(|_| KeySlot::default()).collect(),
            next_key: AtomicUsize::new(0),
        }
    }

    /// Sets how long an open circuit of one of its keys stays open before a probe.
    pub fn with_circuit_cool_down(mut self, cool_down: Duration) -> Self {
        for slot in self.slots.iter_mut() {
            slot.circuit = Circuit::with_cool_down(cool_down);
        }
        self
    }

    /// Sets [`UpstreamTarget::health_check`].
    pub fn with_health_check(mut self, spec: Option<HealthCheckSpec>) -> Self {
        self.health_check = spec;
        self
    }

    /// What the active health check found last (true without one).
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// Records a health check's verdict; true when it changed.
    pub fn set_healthy(&self, healthy: bool) -> bool {
        self.healthy.swap(healthy, Ordering::AcqRel) != healthy
    }

    /// Sets [`UpstreamTarget::max_rest`].
    pub fn with_max_rest(mut self, cap: Duration) -> Self {
        self.max_rest = cap;
        self
    }

    /// The slot of key `i` (taken modulo the number of keys).
    pub fn slot(&self, i: usize) -> &KeySlot {
        &self.slots[i % self.slots.len()]
    }

    /// The slots, in key order (for metrics).
    pub fn slots(&self) -> &[KeySlot] {
        &self.slots
    }

    /// Whether the upstream could take a request now: its health check (if any) passes
    /// and some key is not resting with its circuit not open. Takes no half-open probe.
    pub fn would_serve(&self) -> bool {
        self.is_healthy()
            && self
                .slots
                .iter()
                .any(|s| !s.resting() && s.circuit.would_allow())
    }

    /// The first key position at or after `from` (in rotation order, at most one round)
    /// that is not resting and whose circuit lets a request through (taking the
    /// half-open probe if that is what it offers); `from` itself when none is.
    pub fn usable_key_from(&self, from: usize) -> usize {
        (from..from + self.slots.len())
            .find(|&i| {
                let s = self.slot(i);
                !s.resting() && s.circuit.allow()
            })
            .unwrap_or(from)
    }

    /// Key `i` rests for the provider's `retry-after`, capped by
    /// [`UpstreamTarget::max_rest`]; the rest actually applied.
    pub fn rest_key(&self, i: usize, retry_after: Duration) -> Duration {
        let rest = retry_after.min(self.max_rest);
        let until = now_ms().saturating_add(u64::try_from(rest.as_millis()).unwrap_or(u64::MAX));
        self.slot(i)
            .rest_until_ms
            .fetch_max(until, Ordering::AcqRel);
        rest
    }

    /// Sets [`UpstreamTarget::include_usage`].
    pub fn with_include_usage(mut self, on: bool) -> Self {
        self.include_usage = on;
        self
    }

    /// Sets [`UpstreamTarget::responses_api`].
    pub fn with_responses_api(mut self, on: bool) -> Self {
        self.responses_api = on;
        self
    }

    /// Sets [`UpstreamTarget::translation`].
    pub fn with_translation(mut self, options: crate::translate::Options) -> Self {
        self.translation = options;
        self
    }

    /// Where a new request starts in the key rotation.
    pub fn next_key_index(&self) -> usize {
        self.next_key.fetch_add(1, Ordering::Relaxed)
    }

    /// The key at a rotation position (`None` without keys).
    pub fn key_at(&self, i: usize) -> Option<Secret> {
        (!self.keys.is_empty()).then(|| self.keys[i % self.keys.len()].clone())
    }

    /// The credential header value of key `i` (modulo the number of keys): `None` when
    /// the upstream has no keys, `Some(None)` when the key is not a valid header value.
    pub fn credential_at(&self, i: usize) -> Option<Option<&http::HeaderValue>> {
        (!self.credentials.is_empty())
            .then(|| self.credentials[i % self.credentials.len()].as_ref())
    }

    /// The `Host` header value (`None` only for a host that is not a valid value).
    pub fn host_value(&self) -> Option<&http::HeaderValue> {
        self.host_value.as_ref()
    }
}

#[cfg(test)]
mod key_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_spread_round_robin() {
        let u = UpstreamTarget::new(UpstreamSpec {
            name: "o".into(),
            host: "api.example.com".into(),
            port: 443,
            tls: true,
            keys: vec![Secret::new("a"), Secret::new("b")],
            ..UpstreamSpec::default()
        })
        .with_max_rest(Duration::from_secs(60));
        let key = |i: usize| u.key_at(u.usable_key_from(i)).unwrap().expose().to_owned();
        let got: Vec<String> = (0..4).map(|_| key(u.next_key_index())).collect();
        assert_eq!(got, ["a", "b", "a", "b"]);
        assert_eq!(u.host_header, "api.example.com");

        // A resting key is skipped until its rest is over; the cap bounds the rest.
        assert_eq!(
            u.rest_key(0, Duration::from_secs(3600)),
            Duration::from_secs(60)
        );
        assert_eq!(key(0), "b");
        assert_eq!(key(1), "b");
        assert!(u.would_serve());
        u.rest_key(1, Duration::from_secs(5));
        assert!(!u.would_serve(), "every key rests");
        assert_eq!(
            key(0),
            "a",
            "with every key resting, the one asked for is used"
        );
        u.set_healthy(false);
        assert!(!u.is_healthy());
    }
}
