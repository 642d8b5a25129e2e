//! A usage event as stored: owned values in the columns of `usage_events`, counts
//! already clamped to what a signed 64-bit column holds. The form events take in the
//! local spool (`crate::usage::spool`) and on their way to PostgreSQL, which reads them
//! back from the spool and so cannot borrow the `'static` labels of a live
//! [`UsageEvent`].

use tollgate_filters::metering::UsageEvent;

use super::usage::stored;

/// One row of `usage_events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRecord {
    pub request_id: String,
    /// Unix milliseconds.
    pub ts: i64,
    pub key_id: Option<String>,
    pub user_id: Option<i64>,
    pub upstream: Option<String>,
    pub model_requested: Option<String>,
    pub model_served: Option<String>,
    pub dialect: String,
    pub endpoint: Option<String>,
    pub streamed: bool,
    pub status: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    pub reasoning_tokens: i64,
    pub estimated: bool,
    pub cost_nanos: i64,
    pub ttfb_ms: Option<i64>,
    pub total_ms: i64,
    pub attempts: Option<i64>,
    pub upstream_kind: Option<String>,
}

impl From<&UsageEvent> for UsageRecord {
    fn from(e: &UsageEvent) -> Self {
        UsageRecord {
            request_id: e.request_id.clone(),
            ts: e.ts_ms,
            key_id: e.key_id.clone(),
            user_id: e.user_id,
            upstream: e.upstream.clone(),
            model_requested: e.model_requested.clone(),
            model_served: e.model_served.clone(),
            dialect: e.dialect.to_owned(),
            endpoint: Some(e.endpoint.to_owned()),
            streamed: e.streamed,
            status: i64::from(e.status),
            input_tokens: stored(e.usage.input),
            output_tokens: stored(e.usage.output),
            cache_read_tokens: stored(e.usage.cache_read),
            cache_write_tokens: stored(e.usage.cache_write),
            reasoning_tokens: stored(e.usage.reasoning),
            estimated: e.estimated,
            cost_nanos: stored(e.cost_nanos),
            ttfb_ms: e.ttfb_ms.map(stored),
            total_ms: stored(e.total_ms),
            attempts: Some(i64::from(e.attempts)),
            upstream_kind: e.upstream_kind.map(str::to_owned),
        }
    }
}

impl UsageRecord {
    /// The model a report groups it under: served, else requested, else `-`.
    pub fn model(&self) -> &str {
        self.model_served
            .as_deref()
            .or(self.model_requested.as_deref())
            .unwrap_or("-")
    }
}
