//! Prometheus metrics (served on the admin listener's `/metrics`). OpenTelemetry GenAI
//! names where one exists, `tollgate_` otherwise. Labels are low-cardinality: dialect,
//! upstream and status class come from a closed set or the config; the model label is
//! the routed model (`unrouted` for requests no route took) through a bounded allow-set
//! of plain names (the first [`MAX_MODELS`] seen, then `other`), since a pattern route
//! serves names its clients choose.

use std::cell::OnceCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use prometheus::{
    register_histogram_vec, register_int_counter, register_int_counter_vec, register_int_gauge,
    Encoder, Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, TextEncoder,
};
use tollgate_filters::metering::UsageEvent;

const MAX_MODELS: usize = 200;

struct Metrics {
    requests: IntCounterVec,
    duration: HistogramVec,
    ttft: HistogramVec,
    overhead: HistogramVec,
    token_usage: HistogramVec,
    tokens: IntCounterVec,
    cost: IntCounterVec,
    upstream_errors: IntCounterVec,
    attempts_failed: IntCounterVec,
    translation_dropped: IntCounterVec,
    circuit_open: prometheus::IntGaugeVec,
    unpriced: IntCounter,
    estimated: IntCounter,
    in_flight: IntGauge,
    queue_depth: IntGauge,
    shared_limits_degraded: IntGauge,
    spool_events: IntGauge,
    batch_seconds: HistogramVec,
    dropped: IntCounter,
    write_failures: IntCounter,
    connections_refused: IntCounterVec,
    unauthenticated: IntCounterVec,
    upstream_healthy: prometheus::IntGaugeVec,
    models: Mutex<HashSet<String>>,
}

// Registration only fails on a duplicate name, which these fixed names never are; the
// fallback keeps the gateway serving (without that metric) rather than panicking.
fn fallback<T>(r: prometheus::Result<T>, make: impl FnOnce() -> T) -> T {
    r.unwrap_or_else(|e| {
        log::error!("metric registration failed: {e}");
        make()
    })
}

static M: LazyLock<Metrics> = LazyLock::new(|| {
    let lat = vec![
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
    ];
    let tok = prometheus::exponential_buckets(1.0, 4.0, 12).unwrap_or_default();
    let hv = |name: &str, help: &str, labels: &[&str], buckets: Vec<f64>| {
        let opts = prometheus::HistogramOpts::new(name, help).buckets(buckets.clone());
        fallback(register_histogram_vec!(opts.clone(), labels), || {
            HistogramVec::new(opts, labels)
                .unwrap_or_else(|_| unreachable!("valid histogram options"))
        })
    };
    let cv = |name: &str, help: &str, labels: &[&str]| {
        fallback(register_int_counter_vec!(name, help, labels), || {
            IntCounterVec::new(prometheus::Opts::new(name, help), labels)
                .unwrap_or_else(|_| unreachable!("valid counter options"))
        })
    };
    let c = |name: &str, help: &str| {
        fallback(register_int_counter!(name, help), || {
            IntCounter::new(name, help).unwrap_or_else(|_| unreachable!("valid counter options"))
        })
    };
    let g = |name: &str, help: &str| {
        fallback(register_int_gauge!(name, help), || {
            IntGauge::new(name, help).unwrap_or_else(|_| unreachable!("valid gauge options"))
        })
    };
    Metrics {
        requests: cv(
            "tollgate_requests_total",
            "Proxied requests.",
            &["dialect", "upstream", "model", "status_class"],
        ),
        duration: hv(
            "tollgate_request_duration_seconds",
            "Total request latency.",
            &["dialect", "upstream", "model", "status_class"],
            lat.clone(),
        ),
        ttft: hv(
            "gen_ai_server_time_to_first_token",
            "Time to the first response byte, seconds.",
            &["dialect", "upstream", "model"],
            lat,
        ),
        overhead: hv(
            "tollgate_overhead_seconds",
            "Time spent in Tollgate itself per request: total minus the time waiting on the upstream.",
            &["dialect"],
            vec![0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1],
        ),
        token_usage: hv(
            "gen_ai_client_token_usage",
            "Tokens per request by type.",
            &["gen_ai_token_type", "model"],
            tok,
        ),
        tokens: cv(
            "tollgate_tokens_total",
            "Tokens by type.",
            &["type", "model"],
        ),
        cost: cv(
            "tollgate_cost_nanodollars_total",
            "Cost in nano-dollars.",
            &["model"],
        ),
        upstream_errors: cv(
            "tollgate_upstream_errors_total",
            "Upstream failures by kind.",
            &["upstream", "kind"],
        ),
        attempts_failed: cv(
            "tollgate_upstream_attempts_failed_total",
            "Upstream attempts that failed and moved on (or ended the chain), by reason.",
            &["upstream", "reason"],
        ),
        translation_dropped: cv(
            "tollgate_translation_dropped_total",
            "Request fields a dialect translation dropped (README \"Translation\"), by field.",
            &["field"],
        ),
        circuit_open: fallback(
            prometheus::register_int_gauge_vec!(
                "tollgate_upstream_circuit_open",
                "1 while the circuit of the upstream's key (by position in its keys) is open.",
                &["upstream", "key"]
            ),
            || {
                prometheus::IntGaugeVec::new(
                    prometheus::Opts::new("tollgate_upstream_circuit_open", "circuit"),
                    &["upstream", "key"],
                )
                .unwrap_or_else(|_| unreachable!("valid gauge options"))
            },
        ),
        unpriced: c(
            "tollgate_unpriced_requests_total",
            "Requests whose model has no price (recorded at cost 0).",
        ),
        estimated: c(
            "tollgate_estimated_requests_total",
            "Requests whose tokens were estimated.",
        ),
        in_flight: g("tollgate_requests_in_flight", "Requests being proxied now."),
        shared_limits_degraded: g(
            "tollgate_shared_limits_degraded",
            "1 while limits.redis_url is set but Redis cannot be reached: this instance counts limits alone.",
        ),
        queue_depth: g(
            "tollgate_usage_queue_depth",
            "Usage events waiting to be written.",
        ),
        spool_events: g(
            "tollgate_usage_spool_events",
            "Usage events in the local spool waiting for delivery to PostgreSQL (always 0 on SQLite).",
        ),
        batch_seconds: hv(
            "tollgate_usage_batch_seconds",
            "Time to write one usage batch.",
            &[],
            vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
            ],
        ),
        dropped: c(
            "tollgate_usage_events_dropped_total",
            "Usage events dropped (channel and overflow full).",
        ),
        write_failures: c(
            "tollgate_usage_write_failures_total",
            "Usage batches the store refused (kept and retried).",
        ),
        connections_refused: cv(
            "tollgate_connections_refused_total",
            "Proxy connections refused or cut: address_cap (server.max_connections_per_ip), header_timeout (server.header_timeout_ms).",
            &["reason"],
        ),
        unauthenticated: cv(
            "tollgate_unauthenticated_refusals_total",
            "Requests refused before a key vouched for them (no usage row is stored for these), by reason: missing_key, invalid_key, revoked_key, expired_key, not_found, ...",
            &["reason"],
        ),
        upstream_healthy: fallback(
            prometheus::register_int_gauge_vec!(
                "tollgate_upstream_healthy",
                "1 while the upstream's active health check passes (only upstreams with one).",
                &["upstream"]
            ),
            || {
                prometheus::IntGaugeVec::new(
                    prometheus::Opts::new("tollgate_upstream_healthy", "health"),
                    &["upstream"],
                )
                .unwrap_or_else(|_| unreachable!("valid gauge options"))
            },
        ),
        models: Mutex::new(HashSet::new()),
    }
});

/// The model label of a request: the model it was routed to (after aliases), or
/// [`UNROUTED`] for a request that no route took (refused, unknown model). A routed name
/// is a label only when it is short and plain (letters, digits, `.`, `_`, `-`, `:`, `/`,
/// `@`, `+`), and only the first [`MAX_MODELS`] such names; anything else is `other`.
/// So no client-chosen byte (a raw CR or NUL) can reach the exposition.
fn model_label(model: Option<&str>) -> String {
    let Some(model) = model else {
        return UNROUTED.into();
    };
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"._-:/@+".contains(&b);
    if model.len() > 64 || !model.bytes().all(plain) {
        return "other".into();
    }
    let Ok(mut seen) = M.models.lock() else {
        return "other".into();
    };
    if seen.contains(model) {
        return model.to_owned();
    }
    if seen.len() < MAX_MODELS {
        seen.insert(model.to_owned());
        return model.to_owned();
    }
    "other".into()
}

/// The model label of requests no route took.
const UNROUTED: &str = "unrouted";

fn status_class(status: u16) -> &'static str {
    match status {
        0 => "none",
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// The metric children one kind of request updates, looked up once per
/// (dialect, upstream, model, status class) and then kept: `with_label_values` hashes its
/// labels and takes a lock on every call, and a request made eight of them. Children a
/// request may not touch are made when first used, so /metrics shows no series that
/// nothing has counted (as before the cache).
struct Series {
    labels: [String; 3],
    requests: IntCounter,
    duration: Histogram,
    overhead: Histogram,
    ttft: OnceCell<Histogram>,
    /// input, output, cache_read, cache_write, reasoning
    tokens: [OnceCell<IntCounter>; 5],
    token_usage_input: OnceCell<Histogram>,
    token_usage_output: OnceCell<Histogram>,
    cost: OnceCell<IntCounter>,
}

const TOKEN_KINDS: [&str; 5] = ["input", "output", "cache_read", "cache_write", "reasoning"];

impl Series {
    fn new(m: &Metrics, dialect: &str, upstream: &str, model: String, class: &str) -> Series {
        Series {
            requests: m
                .requests
                .with_label_values(&[dialect, upstream, &model, class]),
            duration: m
                .duration
                .with_label_values(&[dialect, upstream, &model, class]),
            overhead: m.overhead.with_label_values(&[dialect]),
            labels: [dialect.to_owned(), upstream.to_owned(), model],
            ttft: OnceCell::new(),
            tokens: Default::default(),
            token_usage_input: OnceCell::new(),
            token_usage_output: OnceCell::new(),
            cost: OnceCell::new(),
        }
    }

    fn model(&self) -> &str {
        &self.labels[2]
    }

    fn ttft(&self, m: &Metrics) -> &Histogram {
        let [dialect, upstream, model] = &self.labels;
        self.ttft
            .get_or_init(|| m.ttft.with_label_values(&[dialect, upstream, model]))
    }

    fn tokens(&self, m: &Metrics, i: usize) -> &IntCounter {
        self.tokens[i].get_or_init(|| m.tokens.with_label_values(&[TOKEN_KINDS[i], self.model()]))
    }
}

/// Series kept per thread (no lock on the request path). Bounded: dialects, status
/// classes and upstreams are closed sets, models are bounded by [`model_label`]; past
/// this many the lookup is simply not cached.
const MAX_SERIES: usize = 4096;

thread_local! {
    static SERIES: std::cell::RefCell<(String, HashMap<String, Rc<Series>>)> =
        std::cell::RefCell::new((String::new(), HashMap::new()));
}

fn series(dialect: &str, upstream: &str, served: Option<&str>, class: &str) -> Rc<Series> {
    SERIES.with(|cell| {
        let mut guard = cell.borrow_mut();
        let (key, map) = &mut *guard;
        key.clear();
        for part in [dialect, upstream, served.unwrap_or("\u{0}none"), class] {
            key.push_str(part);
            key.push('\u{0}');
        }
        if let Some(s) = map.get(key.as_str()) {
            return s.clone();
        }
        let s = Rc::new(Series::new(
            &M,
            dialect,
            upstream,
            model_label(served),
            class,
        ));
        if map.len() < MAX_SERIES {
            map.insert(key.clone(), s.clone());
        }
        s
    })
}

/// Everything a finished request contributes.
pub fn observe_event(e: &UsageEvent) {
    let m = &*M;
    // Only routed requests carry a served model; the others are "unrouted".
    let upstream = e.upstream.as_deref().unwrap_or("none");
    let s = series(
        e.dialect,
        upstream,
        e.model_served.as_deref(),
        status_class(e.status),
    );
    s.requests.inc();
    s.duration.observe(e.total_ms as f64 / 1000.0);
    if let Some(t) = e.ttfb_ms {
        s.ttft(m).observe(t as f64 / 1000.0);
    }
    s.overhead.observe(e.overhead_us as f64 / 1e6);
    let u = &e.usage;
    let counts = [u.input, u.output, u.cache_read, u.cache_write, u.reasoning];
    for (i, n) in counts.into_iter().enumerate() {
        if n > 0 {
            s.tokens(m, i).inc_by(n);
        }
    }
    let input = u.input + u.cache_read + u.cache_write;
    if input > 0 {
        s.token_usage_input
            .get_or_init(|| m.token_usage.with_label_values(&["input", s.model()]))
            .observe(input as f64);
    }
    if u.output > 0 {
        s.token_usage_output
            .get_or_init(|| m.token_usage.with_label_values(&["output", s.model()]))
            .observe(u.output as f64);
    }
    if e.cost_nanos > 0 {
        s.cost
            .get_or_init(|| m.cost.with_label_values(&[s.model()]))
            .inc_by(e.cost_nanos);
    }
    if e.model_served.is_some() && !e.priced && e.upstream.is_some() {
        m.unpriced.inc();
    }
    if e.estimated {
        m.estimated.inc();
    }
    if e.key_id.is_none() {
        let reason = e.error.unwrap_or("none");
        m.unauthenticated.with_label_values(&[reason]).inc();
    }
    if let Some(kind) = e.error.filter(|k| k.starts_with("upstream_")) {
        m.upstream_errors.with_label_values(&[upstream, kind]).inc();
    }
}

/// One failed upstream attempt (before any byte reached the client).
pub fn upstream_attempt_failed(upstream: &str, reason: &str) {
    M.attempts_failed
        .with_label_values(&[upstream, reason])
        .inc();
}

/// Fields a translated request went upstream without (labels: the bounded set of
/// `MAPPING.md` names).
pub fn translation_dropped(fields: &[&'static str]) {
    for field in fields {
        M.translation_dropped.with_label_values(&[field]).inc();
    }
}

/// Marks the circuit of an upstream's key (by position, never the key) open (1) or
/// closed (0).
pub fn circuit_open(upstream: &str, key: usize, open: bool) {
    M.circuit_open
        .with_label_values(&[upstream, key.to_string().as_str()])
        .set(i64::from(open));
}

/// Requests being proxied now.
pub fn in_flight() -> i64 {
    M.in_flight.get()
}

pub fn request_started() {
    M.in_flight.inc();
}

pub fn request_finished() {
    M.in_flight.dec();
}

pub fn usage_batch_written(_events: usize, took: Duration) {
    M.batch_seconds
        .with_label_values::<&str>(&[])
        .observe(took.as_secs_f64());
}

pub fn usage_event_dropped() {
    M.dropped.inc();
}

pub fn usage_write_failed() {
    M.write_failures.inc();
}

pub fn shared_limits_degraded(degraded: bool) {
    M.shared_limits_degraded.set(i64::from(degraded));
}

pub fn usage_queue_depth(n: usize) {
    M.queue_depth.set(n as i64);
}

pub fn usage_spool_events(n: u64) {
    M.spool_events.set(i64::try_from(n).unwrap_or(i64::MAX));
}

/// The usage events in the spool, as last reported (the dashboard).
pub fn usage_spool_events_now() -> u64 {
    M.spool_events.get().max(0) as u64
}

/// The usage events waiting to be written, as last reported (the dashboard).
pub fn usage_queue_depth_now() -> i64 {
    M.queue_depth.get()
}

/// Usage events dropped since start (the dashboard).
pub fn usage_events_dropped_now() -> u64 {
    M.dropped.get()
}

/// The Prometheus text exposition of every registered metric.
pub fn render() -> Vec<u8> {
    LazyLock::force(&M);
    let mut out = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&prometheus::gather(), &mut out) {
        log::error!("metrics encoding failed: {e}");
    }
    out
}

/// A proxy connection refused (`address_cap`) or cut (`header_timeout`).
pub fn connection_refused(reason: &'static str) {
    M.connections_refused.with_label_values(&[reason]).inc();
}

/// The verdict of an upstream's active health check.
pub fn upstream_healthy(upstream: &str, healthy: bool) {
    M.upstream_healthy
        .with_label_values(&[upstream])
        .set(i64::from(healthy));
}
