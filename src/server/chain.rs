//! The filter chain of the proxy listener, built once at start. Its order is part of
//! its meaning: see [`build_chain`].

use std::sync::Arc;

use tollgate_filters::auth::AuthFilter;
use tollgate_filters::clock::system_clock;
use tollgate_filters::headers::UpstreamHeaders;
use tollgate_filters::metering::{IncludeUsageFilter, MeteringFilter};
use tollgate_filters::routing::{RoutingFilter, ScopeFilter};
use tollgate_filters::{FilterChain, KeyLookup};

use crate::config::live::LiveConfig;
use crate::keys::ProviderKeyCache;
use crate::usage::{Estimator, UsageRecorder};

/// The filter chain of the proxy listener, in order. Each phase runs the filters in
/// this order and stops at the first error, so the order carries these constraints:
///
/// 1. `auth` first: it sets `ctx.principal`, which every later filter reads (scopes,
///    the user's own provider keys, limits, the usage event's key and user), and a
///    caller without a valid key is refused before anything else is looked at.
/// 2. `routing` before `scope`, `include_usage` and `upstream_headers`: it sets
///    `ctx.route` (the upstream chain and the served model) and rewrites the body of an
///    aliased model; scope checks the model the request is routed to, include_usage
///    asks only OpenAI-kind upstreams for stream usage, and the key swap needs the
///    upstream.
/// 3. `include_usage` after `routing`: it edits the body routing may already have
///    rewritten (`ctx.upstream_body`), not the client's original.
/// 4. `metering` before `limits`: in `on_done`, limits adds the cost and tokens
///    metering has just put in `ctx.metered_cost_nanos` / `ctx.metered_tokens` to the
///    spend and the tokens-per-minute window.
/// 5. `limits` last in `on_request` as well: a request refused by auth, routing or
///    scope is not counted against the key's requests per minute.
pub fn build_chain(
    live: &LiveConfig,
    keys: Arc<dyn KeyLookup>,
    usage: Arc<UsageRecorder>,
    limits: &crate::limits::Counters,
    provider_keys: Arc<ProviderKeyCache>,
) -> FilterChain {
    FilterChain::new(vec![
        Arc::new(AuthFilter::new(keys, system_clock)),
        Arc::new(RoutingFilter::new(live.router())),
        Arc::new(ScopeFilter),
        Arc::new(IncludeUsageFilter),
        Arc::new(UpstreamHeaders::new(Some(provider_keys))),
        Arc::new(MeteringFilter::new(
            usage,
            live.prices(),
            Arc::new(Estimator),
        )),
        limits.filter(system_clock, live.prices()),
    ])
}
