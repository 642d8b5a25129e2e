//! The upstreams Tollgate forwards to, as the filters see them (built from config in
//! the `tollgate` crate).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::circuit::Circuit;
use crate::secret::Secret;

/// The wire protocol an upstream speaks, which decides its credential header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    /// OpenAI and every OpenAI-compatible API: `Authorization: Bearer`.
    OpenAi,
    /// Anthropic: `x-api-key`.
    Anthropic,
    /// Gemini: `x-goog-api-key`.
    Gemini,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Gemini => "gemini",
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
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// Add `stream_options.include_usage` to OpenAI-style streaming requests that lack
    /// it, so streams can be billed (and remove the extra chunk for the client).
    pub include_usage: bool,
    /// The upstream's circuit breaker.
    pub circuit: Circuit,
    next_key: AtomicUsize,
}

impl UpstreamTarget {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: String,
        kind: ProviderKind,
        host: String,
        port: u16,
        tls: bool,
        base_path: String,
        keys: Vec<Secret>,
        connect_timeout: Duration,
        read_timeout: Duration,
    ) -> Self {
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
        UpstreamTarget {
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
            circuit: Circuit::default(),
            next_key: AtomicUsize::new(0),
        }
    }

    /// Sets [`UpstreamTarget::include_usage`].
    pub fn with_include_usage(mut self, on: bool) -> Self {
        self.include_usage = on;
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

    /// The next provider key, round robin, so that several keys share the load; `None`
    /// when the upstream has none (a local model server, say).
    pub fn pick_key(&self) -> Option<Secret> {
        if self.keys.is_empty() {
            return None;
        }
        let i = self.next_key.fetch_add(1, Ordering::Relaxed) % self.keys.len();
        self.keys.get(i).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_spread_round_robin() {
        let u = UpstreamTarget::new(
            "o".into(),
            ProviderKind::OpenAi,
            "api.example.com".into(),
            443,
            true,
            String::new(),
            vec![Secret::new("a"), Secret::new("b")],
            Duration::from_secs(1),
            Duration::from_secs(1),
        );
        let got: Vec<String> = (0..4)
            .filter_map(|_| u.pick_key())
            .map(|k| k.expose().to_owned())
            .collect();
        assert_eq!(got, ["a", "b", "a", "b"]);
        assert_eq!(u.host_header, "api.example.com");
    }
}
