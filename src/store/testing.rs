//! Test support for the crate's unit tests: a store in a temporary directory
//! ([`temp_store`], defined beside `Store` so the store's own tests can use it without
//! importing this module), the same checks run on both backends ([`on_both_backends`],
//! [`raw`]), users in it, and the gateway-key HMAC the older tests were written with.

use std::path::Path;

use tollgate_filters::Role;

use super::secrets::{KeyHasher, MasterKey};
pub(crate) use super::temp_store;
use super::{Store, UserCreate, UserRow};

/// A store for a test that runs on both backends, with a temporary directory beside it
/// (for a master key file); the PostgreSQL database is dropped with it.
pub(crate) struct TestBackend {
    pub store: Store,
    pub dir: tempfile::TempDir,
    _db: Option<super::pg::test_db::TestDatabase>,
}

impl TestBackend {
    pub(crate) fn sqlite() -> TestBackend {
        let (dir, store) = temp_store();
        TestBackend {
            store,
            dir,
            _db: None,
        }
    }

    /// Another handle on the same store, as another process would open it.
    pub(crate) fn reopen(&self) -> Store {
        match &self._db {
            Some(db) => {
                Store::open_postgres(&super::pg::PgOptions::parse(db.url(), 2).unwrap()).unwrap()
            }
            None => Store::open(&self.dir.path().join("t.db")).unwrap(),
        }
    }

    pub(crate) fn postgres() -> TestBackend {
        let (db, store) = super::temp_pg_store();
        TestBackend {
            store,
            dir: tempfile::tempdir().unwrap(),
            _db: Some(db),
        }
    }
}

/// Runs each named `fn(&TestBackend)` as two tests, `sqlite::NAME` and `postgres::NAME`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test]
            fn $name() {
                super::$name(&$crate::store::testing::TestBackend::sqlite());
            })*
        }
        mod postgres {
            $(#[test]
            fn $name() {
                super::$name(&$crate::store::testing::TestBackend::postgres());
            })*
        }
    };
}
pub(crate) use on_both_backends;

/// Runs `sql` (statements SQLite and PostgreSQL both accept) on either backend, for
/// rows no store method writes.
pub(crate) fn raw(store: &Store, sql: &str) {
    try_raw(store, sql).unwrap()
}

/// [`raw`], its error as text.
pub(crate) fn try_raw(store: &Store, sql: &str) -> Result<(), String> {
    match store.pg() {
        Some(pg) => {
            let sql = sql.to_owned();
            pg.run(move |pool| async move {
                super::pg::client(&pool).await?.batch_execute(&sql).await?;
                Ok(())
            })
            .map_err(|e| e.to_string())
        }
        None => store
            .conn()
            .unwrap()
            .execute_batch(sql)
            .map_err(|e| e.to_string()),
    }
}

/// The one blob `sql` selects, on either backend.
pub(crate) fn raw_bytes(store: &Store, sql: &str) -> Vec<u8> {
    match store.pg() {
        Some(pg) => {
            let sql = sql.to_owned();
            pg.run(move |pool| async move {
                let row = super::pg::client(&pool).await?.query_one(&sql, &[]).await?;
                Ok(row.try_get::<_, Vec<u8>>(0)?)
            })
            .unwrap()
        }
        None => store
            .conn()
            .unwrap()
            .query_row(sql, [], |r| r.get(0))
            .unwrap(),
    }
}

/// Creates user `name` with `role`, no password and no budget, at `now`.
pub(crate) fn add_user(store: &Store, name: &str, role: Role, now: i64) -> UserRow {
    store
        .create_user(&UserCreate::new(name, role), now)
        .unwrap()
}

/// A gateway-key HMAC from the master key in `dir` (created there on first use).
pub(crate) fn hasher_in(dir: &Path) -> KeyHasher {
    KeyHasher::new(
        MasterKey::load_or_create("", dir)
            .unwrap()
            .subkey("gateway-key-hmac"),
    )
}

/// `n` varied usage events from `start_ms` on, `step_ms` apart, the same for the same
/// `seed`: keys `k0`..`k3` of users 1 and 2 (and some without key or user), models
/// served, requested only or neither, upstreams or none, statuses 200/429/500/0,
/// estimated or not, latencies across the buckets.
pub(crate) fn sample_events(
    n: usize,
    seed: u64,
    start_ms: i64,
    step_ms: i64,
) -> Vec<tollgate_filters::metering::UsageEvent> {
    use tollgate_filters::metering::UsageEvent;
    use tollgate_filters::usage::Usage;
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move |m: u64| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) % m
    };
    (0..n)
        .map(|i| {
            let key = next(5);
            let model = ["gpt-4o-mini", "claude-sonnet-4", "gemini-2.0-flash"][next(3) as usize];
            let served = next(6) != 0;
            let status = [200, 200, 200, 200, 429, 500, 0][next(7) as usize];
            UsageEvent {
                request_id: format!("{seed}-{i}"),
                ts_ms: start_ms + i as i64 * step_ms,
                key_id: (key < 4).then(|| format!("k{key}")),
                user_id: (key < 4).then_some(1 + (key % 2) as i64),
                upstream: (next(8) != 0).then(|| ["o", "a"][next(2) as usize].to_owned()),
                model_requested: (next(10) != 0).then(|| model.to_owned()),
                model_served: served.then(|| model.to_owned()),
                dialect: "openai",
                upstream_kind: Some("openai"),
                endpoint: "chat_completions",
                streamed: next(2) == 0,
                status,
                usage: Usage {
                    input: next(5_000),
                    output: next(2_000),
                    cache_read: next(300),
                    cache_write: next(100),
                    reasoning: next(50),
                },
                estimated: next(4) == 0,
                cost_nanos: next(10_000_000),
                priced: true,
                ttfb_ms: (next(5) != 0).then(|| next(3_000)),
                total_ms: next(60_000),
                overhead_us: 0,
                error: None,
                attempts: 1 + (next(4) == 0) as u32,
            }
        })
        .collect()
}
