//! [`RequestCtx`]: the one place where the phases of a request talk to each other, and the
//! traits through which filters reach the outside world.
//!
//! Each field's doc says who writes it and who reads it.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;

use crate::attempts::{first_serving, Attempts};
use crate::endpoint::Endpoint;
use crate::error::GatewayError;
use crate::pattern::ModelPattern;
use crate::providers::Dialect;
use crate::secret::Secret;
use crate::upstream::UpstreamTarget;
use crate::usage::strip::UsageChunkStripper;
use crate::usage::FirstUsageKey;
use crate::usage::UsageMeter;
use crate::FilterChain;

/// A user's role on the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    Admin,
    #[default]
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "member" => Some(Role::Member),
            _ => None,
        }
    }
}

/// How often a budget starts over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetPeriod {
    Day,
    Month,
    Total,
}

impl BudgetPeriod {
    pub fn parse(s: &str) -> Option<BudgetPeriod> {
        match s {
            "day" => Some(BudgetPeriod::Day),
            "month" => Some(BudgetPeriod::Month),
            "total" => Some(BudgetPeriod::Total),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BudgetPeriod::Day => "day",
            BudgetPeriod::Month => "month",
            BudgetPeriod::Total => "total",
        }
    }
}

/// A spending cap in nano-dollars over a period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub limit_nanos: u64,
    pub period: BudgetPeriod,
}

/// Who is calling: the gateway key that authenticated and its owner.
#[derive(Debug, Clone, Default)]
pub struct Principal {
    /// The key's public id (the `<id>` of `tg_<id>_<secret>`).
    pub key_id: String,
    pub user_id: i64,
    pub user: String,
    pub role: Role,
    /// Model scopes; empty means every routed model.
    pub scopes: Vec<ModelPattern>,
    /// Unix seconds after which the key is refused.
    pub expires_at: Option<i64>,
    /// Unix seconds at which the key was revoked.
    pub revoked_at: Option<i64>,
    /// The key's budget, if any.
    pub budget: Option<Budget>,
    /// The owner's budget (all their keys together), if any.
    pub user_budget: Option<Budget>,
    /// Requests per minute allowed to this key.
    pub rpm: Option<u32>,
    /// Metered tokens per minute allowed to this key.
    pub tpm: Option<u64>,
}

/// Finds the principal behind a presented gateway key. Implemented by the store's key
/// cache in the `tollgate` crate; fakes in tests.
#[async_trait]
pub trait KeyLookup: Send + Sync {
    /// `None` when the key is malformed, unknown, or its secret does not match (the
    /// comparison is constant-time). Revocation and expiry are the caller's to check.
    async fn authenticate(&self, presented: &Secret) -> Option<Arc<Principal>>;
}

/// Provider keys that users brought for themselves (README "Provider keys per user, and
/// the master key": `provider-key set --user`). Implemented by a decrypted in-memory cache in the `tollgate` crate.
pub trait ProviderKeys: Send + Sync {
    /// The key `user_id` stored for `upstream`, if any. Must not block.
    fn key_for(&self, user_id: i64, upstream: &str) -> Option<Secret>;

    /// A key stored for the upstream itself (`provider-key set` without `--user`),
    /// used instead of the keys in the config file. Must not block.
    fn shared_key_for(&self, _upstream: &str) -> Option<Secret> {
        None
    }
}

/// The routing decision for one request.
#[derive(Debug, Clone)]
pub struct RouteDecision {
    /// The model name sent upstream (after aliases).
    pub served_model: String,
    /// The route's upstreams in fallback order.
    pub chain: Vec<Arc<UpstreamTarget>>,
}

/// The estimates a request reserved on its limits when it was admitted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reservation {
    /// Nano-dollars on the key's budget and on the user's.
    pub key_nanos: u64,
    pub user_nanos: u64,
    /// Tokens in the key's tokens-per-minute window.
    pub tokens: u64,
    /// Where they are held (this process, or the shared counters).
    pub ticket: crate::limits::Ticket,
}

/// Per-request state shared by all phases.
#[derive(Debug)]
pub struct RequestCtx {
    /// Our id for the request, sent to the client as `x-tollgate-request-id`. Set at
    /// creation; read by the header filter, logs and the usage record.
    pub request_id: String,
    /// When the request arrived. Set at creation.
    pub started: Instant,
    /// The endpoint, from the path. Written by the proxy before the chain; read by every
    /// filter.
    pub endpoint: Option<Endpoint>,
    /// Dialect for errors. Written by the proxy with `endpoint`.
    pub dialect: Dialect,
    /// The request body as the client sent it. Written by the proxy's body read; read by
    /// routing (alias rewrite) and the transports.
    pub body: Bytes,
    /// The model the client asked for (body `model`, or the Gemini path). Written by the
    /// proxy; read by routing and scope.
    pub requested_model: Option<String>,
    /// Whether the client asked for a stream. Written by the proxy.
    pub stream: bool,
    /// The most output tokens the body asks for (`max_tokens` and its other spellings),
    /// if it names a maximum. Written by the proxy; read by limits for its estimate.
    pub max_output: Option<u64>,
    /// The authenticated caller. Written by auth; read by scope and the usage record.
    pub principal: Option<Arc<Principal>>,
    /// Written by routing; read by scope, the upstream filter and the transports.
    pub route: Option<RouteDecision>,
    /// Where the request stands in the route's chain and the current upstream's keys.
    /// Started by routing; the key is chosen by the upstream header filter on each
    /// attempt; moved by the transports through the retry decision
    /// ([`crate::attempts::decide`]); read by the transports and the access log.
    pub attempts: Attempts,
    /// The body to send upstream when it differs from `body` (alias rewrite). Written by
    /// routing; read by the transports (cloned, since a retry replays it).
    pub upstream_body: Option<Bytes>,
    /// Status of the upstream response that goes to the client (an answer dropped for a
    /// retry leaves it unset). Written by the transports; read by metering.
    pub upstream_status: Option<u16>,
    /// When the request was handed to the upstream (first attempt) and when the
    /// upstream's last byte arrived: the time between is the upstream's, the rest is
    /// Tollgate's own overhead. Written by the transports.
    pub upstream_sent_at: Option<Instant>,
    pub upstream_done_at: Option<Instant>,
    /// When the first response byte reached the client. Written by the transports.
    pub first_byte_at: Option<Instant>,
    /// Body bytes passed to the client. Written by the transports.
    pub response_bytes: u64,
    /// The last two body bytes seen, to know whether a stream stopped between events.
    /// Written by the transports.
    pub body_tail: [u8; 2],
    /// The status the client received. Written by the transports and the proxy's own
    /// responses; read by metering.
    pub client_status: Option<u16>,
    /// The usage meter of the response. Written by metering.
    pub meter: Option<UsageMeter>,
    /// The metered cost and total tokens of the request. Written by metering in
    /// `on_done`; read by the limits filter's `on_done` (which runs after it).
    pub metered_cost_nanos: u64,
    pub metered_tokens: u64,
    /// Set when Tollgate added `stream_options.include_usage` for this client. Written
    /// by the include-usage filter.
    pub usage_injected: bool,
    /// Removes the injected usage chunk from the response. Written by the include-usage
    /// filter; applied by the transports after the meter saw the bytes.
    pub strip: Option<UsageChunkStripper>,
    /// What the meter's search of the chunk being delivered for `"usage` found, for the
    /// stripper, so that each chunk is searched once. Written by metering for every
    /// chunk; taken by the transports with the chunk.
    pub usage_key: Option<FirstUsageKey>,
    /// The request translated for the current upstream when it speaks another dialect
    /// than the client (CONTRACT section 7). Written by the proxy after routing and
    /// before each attempt (`translate::attempt::prepare`); its response side is fed by
    /// the transports after the meter saw the upstream's bytes.
    pub translation: Option<Box<crate::translate::Translation>>,
    /// The error Tollgate answered with, if any. Written by the proxy.
    pub error: Option<GatewayError>,
    /// What the limits filter reserved for the request on admission, given back in its
    /// `on_done` (and zeroed there: once). Written and read by the limits filter.
    pub reserved: Reservation,
    /// Set once `on_done` ran, so that it runs once.
    pub done: bool,
    /// The chain whose `on_done` runs if the request is dropped before it ended (at
    /// shutdown, when Pingora stops its runtimes with requests in flight): it still
    /// leaves its one usage event and gives back what it reserved. Set by the proxy.
    pub finish_on_drop: Option<Arc<FilterChain>>,
}

impl Drop for RequestCtx {
    fn drop(&mut self) {
        if let Some(chain) = self.finish_on_drop.take() {
            chain.on_done(self); // does nothing when it already ran
        }
    }
}

impl RequestCtx {
    pub fn new(request_id: String) -> Self {
        RequestCtx {
            request_id,
            started: Instant::now(),
            endpoint: None,
            dialect: Dialect::OpenAi,
            body: Bytes::new(),
            requested_model: None,
            stream: false,
            max_output: None,
            principal: None,
            route: None,
            attempts: Attempts::default(),
            upstream_body: None,
            upstream_status: None,
            upstream_sent_at: None,
            upstream_done_at: None,
            first_byte_at: None,
            response_bytes: 0,
            body_tail: [b'\n', b'\n'],
            client_status: None,
            meter: None,
            metered_cost_nanos: 0,
            metered_tokens: 0,
            usage_injected: false,
            strip: None,
            usage_key: None,
            translation: None,
            error: None,
            reserved: Reservation::default(),
            done: false,
            finish_on_drop: None,
        }
    }

    /// The first upstream of the chain at or after `from` with a key that can take a
    /// request (not resting after a 429, circuit not open).
    pub fn next_allowed(&self, from: usize) -> Option<usize> {
        first_serving(&self.route.as_ref()?.chain, from)
    }

    /// The upstream currently being tried, if routed.
    pub fn upstream(&self) -> Option<&Arc<UpstreamTarget>> {
        self.route
            .as_ref()
            .and_then(|r| r.chain.get(self.attempts.upstream_index()))
    }

    /// The bytes to send upstream: the translated body, else the rewritten body if any,
    /// else the client's.
    pub fn outgoing_body(&self) -> Bytes {
        if let Some(t) = &self.translation {
            return t.body.clone();
        }
        self.upstream_body
            .clone()
            .unwrap_or_else(|| self.body.clone())
    }
}

#[cfg(test)]
mod tests;
