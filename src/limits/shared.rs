//! [`SharedCounters`]: the limit counters in Redis, with this process's counters as the
//! fallback while Redis is unreachable (module doc of [`super`]).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, Mutex};
use tokio::time::timeout;
use tollgate_filters::auth::Clock;
use tollgate_filters::context::BudgetPeriod;
use tollgate_filters::limits::{
    period_end, period_start, Claim, Counter, LimitCounters, Refused, Settle, SpendTracker, Ticket,
};

use super::script::{self, Item, Kind, Reply, Scripts};
use super::CALL_TIMEOUT;
use crate::store::Store;

/// The most requests one settle call carries (a backlog is sent in calls this big).
const SETTLE_BATCH: usize = 256;

/// How often a degraded instance asks Redis whether it is back.
const PROBE_EVERY: Duration = Duration::from_millis(500);

/// How long rebuilding missing budget counters from the store may take (a sum over the
/// period's usage events: once per counter and period, or after Redis lost its data).
const REBUILD_TIMEOUT: Duration = Duration::from_secs(10);

/// Why shared counting could not start.
#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    #[error("limits.redis_url: {0}")]
    Url(String),
    #[error("cannot start the shared limits' runtime: {0}")]
    Runtime(#[from] std::io::Error),
}

/// The limit counters in Redis (see the module doc).
pub struct SharedCounters {
    /// This process's counters: what it spent (always), and everything while degraded.
    local: Arc<SpendTracker>,
    client: redis::Client,
    store: Store,
    clock: Clock,
    /// The connection, made on first use ([`Self::connect`]): not before, since a
    /// thread started before `serve -d` forks would not be in the daemon. `None` if its
    /// runtime could not start (then this instance counts alone for good).
    redis: OnceLock<Option<Arc<Redis>>>,
}

/// The connection and what the calls need, living on the runtime of their own.
struct Redis {
    handle: Handle,
    conn: ConnectionManager,
    scripts: Scripts,
    store: Store,
    clock: Clock,
    /// Counting alone: Redis failed a call and has not answered a probe since.
    degraded: AtomicBool,
    /// One rebuild from the store at a time (concurrent requests on a cold counter
    /// would otherwise each sum the store).
    rebuilding: Mutex<()>,
    /// The URL without credentials, for logs.
    at: String,
    /// Settlements waiting for [`Redis::settle_queued`]: each the minute its request
    /// reserved in and what it settles.
    settles: mpsc::UnboundedSender<(i64, Vec<Item>)>,
}

/// A thread with a small runtime on which every Redis call runs: the connection's
/// tasks live there whatever runtime a request runs on, and the timeouts are its own.
fn runtime() -> std::io::Result<Handle> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("shared limits".into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => {
                    let _ = tx.send(Ok(rt.handle().clone()));
                    rt.block_on(std::future::pending::<()>());
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            }
        })?;
    rx.recv()
        .map_err(|_| std::io::Error::other("its thread ended"))?
}

impl SharedCounters {
    /// Counters in Redis at `url`, falling back to `local`; budget counters missing in
    /// Redis are rebuilt from `store`. Nothing connects yet ([`Self::connect`]).
    pub fn new(
        url: &str,
        ca: Option<&str>,
        local: Arc<SpendTracker>,
        store: Store,
        clock: Clock,
    ) -> Result<Self, SharedError> {
        let client = super::client(url, ca).map_err(SharedError::Url)?;
        Ok(SharedCounters {
            local,
            client,
            store,
            clock,
            redis: OnceLock::new(),
        })
    }

    /// Starts the connection's runtime and asks Redis whether it answers (in the
    /// background: if not, this instance counts alone until it does). Once: later calls
    /// do nothing. The first request connects if this was not called before.
    pub fn connect(&self) {
        let _ = self.redis();
    }

    fn redis(&self) -> Option<&Arc<Redis>> {
        self.redis
            .get_or_init(|| match self.start() {
                Ok(redis) => Some(redis),
                Err(e) => {
                    crate::metrics::shared_limits_degraded(true);
                    log::error!("shared limits: {e}; this instance enforces limits alone");
                    None
                }
            })
            .as_ref()
    }

    fn start(&self) -> Result<Arc<Redis>, SharedError> {
        let handle = runtime()?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CALL_TIMEOUT))
            .set_response_timeout(Some(CALL_TIMEOUT))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(Duration::from_millis(200));
        let conn = {
            let _in_runtime = handle.enter();
            ConnectionManager::new_lazy_with_config(self.client.clone(), config)
                .map_err(|e| SharedError::Url(e.to_string()))?
        };
        let (settles, queued) = mpsc::unbounded_channel();
        let redis = Arc::new(Redis {
            handle,
            conn,
            scripts: Scripts::default(),
            store: self.store.clone(),
            clock: self.clock,
            degraded: AtomicBool::new(false),
            rebuilding: Mutex::new(()),
            at: self.client.get_connection_info().addr().to_string(),
            settles,
        });
        redis.handle.spawn(redis.clone().settle_queued(queued));
        let first = redis.clone();
        redis.handle.spawn(async move {
            match first.ping().await {
                Ok(()) => log::info!("shared limits: counting in Redis at {}", first.at),
                Err(why) => first.degrade(&why),
            }
        });
        Ok(redis)
    }

    /// Whether this instance counts alone now (Redis unreachable).
    pub fn degraded(&self) -> bool {
        self.redis()
            .is_none_or(|r| r.degraded.load(Ordering::Acquire))
    }
}

impl Redis {
    async fn ping(&self) -> Result<(), String> {
        let mut conn = self.conn.clone();
        match timeout(
            CALL_TIMEOUT,
            redis::cmd("PING").query_async::<()>(&mut conn),
        )
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {} ms", CALL_TIMEOUT.as_millis())),
        }
    }

    /// Counts alone from now on (once: one log line, the gauge), until a probe finds
    /// Redis answering again.
    fn degrade(self: &Arc<Self>, why: &str) {
        if self.degraded.swap(true, Ordering::AcqRel) {
            return;
        }
        crate::metrics::shared_limits_degraded(true);
        log::warn!(
            "shared limits: Redis at {} unreachable ({why}); this instance enforces limits alone until it answers",
            self.at
        );
        let probe = self.clone();
        self.handle.spawn(async move {
            loop {
                tokio::time::sleep(PROBE_EVERY).await;
                if probe.ping().await.is_ok() {
                    probe.degraded.store(false, Ordering::Release);
                    crate::metrics::shared_limits_degraded(false);
                    log::info!(
                        "shared limits: Redis at {} answers again; limits are shared again",
                        probe.at
                    );
                    return;
                }
            }
        });
    }

    /// Sends the queued settlements, all that are waiting in one call (at most
    /// [`SETTLE_BATCH`]), one call at a time: a round trip per batch instead of one per
    /// request, and under load the batch fills while the previous call is out.
    async fn settle_queued(self: Arc<Self>, mut queued: mpsc::UnboundedReceiver<(i64, Vec<Item>)>) {
        let mut conn = self.conn.clone();
        let mut batch = Vec::with_capacity(SETTLE_BATCH);
        while queued.recv_many(&mut batch, SETTLE_BATCH).await > 0 {
            let done = timeout(CALL_TIMEOUT, self.scripts.settle_all(&mut conn, &batch)).await;
            batch.clear();
            match done {
                Ok(Ok(())) => {}
                Ok(Err(e)) => self.degrade(&e.to_string()),
                Err(_) => self.degrade("a settlement got no answer"),
            }
        }
    }

    /// The reserve script; budget counters it finds missing are rebuilt from the store,
    /// then it runs once more.
    async fn reserve(&self, claims: &[Item]) -> Result<Reply, String> {
        let mut conn = self.conn.clone();
        for _ in 0..2 {
            let reply = timeout(CALL_TIMEOUT, self.scripts.reserve(&mut conn, claims))
                .await
                .map_err(|_| format!("no answer within {} ms", CALL_TIMEOUT.as_millis()))?
                .map_err(|e| e.to_string())?;
            let Reply::Missing(which) = reply else {
                return Ok(reply);
            };
            timeout(REBUILD_TIMEOUT, self.rebuild(&mut conn, claims, &which))
                .await
                .map_err(|_| "the rebuild of budget counters took too long".to_owned())??;
        }
        Err("budget counters still missing after their rebuild".into())
    }

    /// Sets each missing budget counter to what the store says was spent in its period
    /// (`SET NX`: one another gateway rebuilt first stays as it is).
    async fn rebuild(
        &self,
        conn: &mut ConnectionManager,
        claims: &[Item],
        which: &[usize],
    ) -> Result<(), String> {
        let _one_at_a_time = self.rebuilding.lock().await;
        let now = (self.clock)();
        let mut missing = Vec::new();
        for c in which.iter().filter_map(|i| claims.get(*i)) {
            // a request that waited for the lock finds most rebuilt already
            let key = c.kind.budget_key(&c.id, c.window);
            let exists: bool = redis::cmd("EXISTS")
                .arg(&key)
                .query_async(conn)
                .await
                .map_err(|e| e.to_string())?;
            if !exists {
                missing.push(c);
            }
        }
        let windows: BTreeSet<i64> = missing.iter().map(|c| c.window).collect();
        for window in windows {
            let store = self.store.clone();
            let (keys, users) =
                tokio::task::spawn_blocking(move || store.spend_since(window.saturating_mul(1000)))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| format!("store: {e}"))?;
            for c in missing.iter().filter(|c| c.window == window) {
                let sum = match c.kind {
                    Kind::KeyBudget => keys.iter().find(|(k, _)| *k == c.id).map(|s| s.1),
                    _ => users
                        .iter()
                        .find(|(u, _)| u.to_string() == c.id)
                        .map(|s| s.1),
                };
                let key = c.kind.budget_key(&c.id, window);
                script::rebuild(conn, &key, sum.unwrap_or(0), budget_ttl(window, now))
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }
}

/// How long a budget counter of the period starting at `window` is kept: until an hour
/// after its period ends (a period starting today and this month is taken for the
/// month); a week for all time (then rebuilt from the store).
fn budget_ttl(window: i64, now: i64) -> u64 {
    if window == 0 {
        return 7 * 86_400;
    }
    let period = if window == period_start(BudgetPeriod::Month, now) {
        BudgetPeriod::Month
    } else {
        BudgetPeriod::Day
    };
    let end = period_end(period, now).unwrap_or(now);
    u64::try_from(end.saturating_sub(now)).unwrap_or(0) + 3600
}

/// A counter as the scripts name it.
fn kind_and_id(c: Counter<'_>) -> (Kind, String) {
    match c {
        Counter::KeySpend(k) => (Kind::KeyBudget, k.to_owned()),
        Counter::UserSpend(u) => (Kind::UserBudget, u.to_string()),
        Counter::KeyTokens(k) => (Kind::Tokens, k.to_owned()),
        Counter::KeyRequests(k) => (Kind::Requests, k.to_owned()),
    }
}

fn claim_items(claims: &[Claim<'_>]) -> Vec<Item> {
    claims
        .iter()
        .map(|c| {
            let (kind, id) = kind_and_id(c.counter);
            Item {
                kind,
                id,
                window: c.window,
                first: c.limit,
                second: c.amount,
            }
        })
        .collect()
}

fn settle_items(settles: &[Settle<'_>]) -> Vec<Item> {
    settles
        .iter()
        .map(|s| {
            let (kind, id) = kind_and_id(s.counter);
            Item {
                kind,
                id,
                window: s.window,
                first: s.reserved,
                second: s.spent,
            }
        })
        .collect()
}

impl LimitCounters for SharedCounters {
    async fn reserve(&self, claims: &[Claim<'_>]) -> Result<Ticket, Refused> {
        let shared = self.redis().filter(|r| !r.degraded.load(Ordering::Acquire));
        if let Some(redis) = shared {
            let items = claim_items(claims);
            let call = redis.clone();
            let call = redis
                .handle
                .spawn(async move { call.reserve(&items).await });
            match call.await {
                Ok(Ok(Reply::Admitted(minute))) => return Ok(Ticket(Some(minute))),
                Ok(Ok(Reply::Refused(r))) => return Err(r),
                Ok(Ok(Reply::Missing(_))) => redis.degrade("budget counters missing"),
                Ok(Err(why)) => redis.degrade(&why),
                Err(e) => redis.degrade(&e.to_string()),
            }
        }
        self.local.reserve_now(claims).map(|()| Ticket::default())
    }

    fn settle(&self, settles: &[Settle<'_>]) {
        self.settle_held(Ticket::default(), settles);
    }

    fn settle_held(&self, ticket: Ticket, settles: &[Settle<'_>]) {
        let Some(made) = ticket.0 else {
            // reserved here, while counting alone
            self.local.settle(settles);
            return;
        };
        // What this instance spent is counted here too (for counting alone later), but
        // it reserved nothing here.
        for s in settles {
            self.local.settle(&[Settle { reserved: 0, ..*s }]);
        }
        let Some(redis) = self.redis() else {
            return;
        };
        // the queue lives as long as its runtime's thread, which never ends
        let _ = redis.settles.send((made, settle_items(settles)));
    }

    fn counts_requests(&self) -> bool {
        true
    }
}
