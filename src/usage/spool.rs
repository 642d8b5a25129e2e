//! The durable local spool usage events wait in on their way to a PostgreSQL store
//! (CONTRACT section 8): a small SQLite file in the storage directory, append-only,
//! WAL with `synchronous = FULL`, so an appended batch survives `kill -9` and a power
//! cut. The usage writer appends its batches here (a local write, whatever the state
//! of the database); the shipper (`super::shipper`) reads them back in order, delivers
//! them and then deletes them. A crash between delivery and deletion delivers them
//! again, which the store ignores (`ON CONFLICT (request_id) DO NOTHING`).
//!
//! Two processes may share the file during a graceful upgrade: SQLite serializes their
//! writes, sequence numbers only grow, and each deletes only the range it delivered.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rusqlite::{params, Connection};
use tollgate_filters::metering::UsageEvent;

use crate::store::UsageRecord;

/// The spool's file name in the storage directory.
pub const FILE: &str = "usage-spool.db";

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS spool (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL, ts INTEGER NOT NULL, key_id TEXT, user_id INTEGER, upstream TEXT,
    model_requested TEXT, model_served TEXT, dialect TEXT NOT NULL, endpoint TEXT,
    streamed INTEGER NOT NULL, status INTEGER NOT NULL, input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL, cache_read_tokens INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL, reasoning_tokens INTEGER NOT NULL,
    estimated INTEGER NOT NULL, cost_nanos INTEGER NOT NULL, ttfb_ms INTEGER,
    total_ms INTEGER NOT NULL, attempts INTEGER, upstream_kind TEXT)";

const COLUMNS: &str = "request_id, ts, key_id, user_id, upstream, model_requested, model_served, dialect, \
     endpoint, streamed, status, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, \
     reasoning_tokens, estimated, cost_nanos, ttfb_ms, total_ms, attempts, upstream_kind";

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("usage spool {0}: {1}")]
    Sqlite(String, rusqlite::Error),
    #[error("usage spool: locked by a panicked thread")]
    Poisoned,
}

/// Events read from the spool, oldest first, with the range of sequence numbers they
/// span (for [`Spool::remove`] once delivered).
#[derive(Debug, Default)]
pub struct Taken {
    pub records: Vec<UsageRecord>,
    pub first: i64,
    pub last: i64,
}

/// The spool file, open.
pub struct Spool {
    // std Mutex: every call is a short blocking SQLite call, made off the async threads.
    conn: Mutex<Connection>,
    path: PathBuf,
    /// Events waiting, as this process counts them (exact but for the rows another
    /// process sharing the file adds; recounted whenever the spool is found empty).
    depth: AtomicU64,
}

impl Spool {
    /// Opens (creating if needed) the spool in `dir`.
    pub fn open(dir: &Path) -> Result<Spool, SpoolError> {
        let path = dir.join(FILE);
        let err = |e| SpoolError::Sqlite(path.display().to_string(), e);
        let conn = Connection::open(&path).map_err(err)?;
        restrict_to_owner(&path);
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        // FULL: an appended batch is on disk when `append` returns.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        let depth: i64 = conn
            .query_row("SELECT COUNT(*) FROM spool", [], |r| r.get(0))
            .map_err(err)?;
        Ok(Spool {
            conn: Mutex::new(conn),
            path,
            depth: AtomicU64::new(depth.max(0) as u64),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: rusqlite::Error) -> SpoolError {
        SpoolError::Sqlite(self.path.display().to_string(), e)
    }

    /// Events waiting to be delivered.
    pub fn depth(&self) -> u64 {
        self.depth.load(Ordering::Relaxed)
    }

    /// Appends a batch in one transaction, durable when this returns.
    pub fn append(&self, events: &[UsageEvent]) -> Result<(), SpoolError> {
        let mut conn = self.conn.lock().map_err(|_| SpoolError::Poisoned)?;
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        {
            let sql = format!(
                "INSERT INTO spool ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, \
                 ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22)"
            );
            let mut st = tx.prepare_cached(&sql).map_err(|e| self.err(e))?;
            for e in events {
                let r = UsageRecord::from(e);
                st.execute(params![
                    r.request_id,
                    r.ts,
                    r.key_id,
                    r.user_id,
                    r.upstream,
                    r.model_requested,
                    r.model_served,
                    r.dialect,
                    r.endpoint,
                    r.streamed,
                    r.status,
                    r.input_tokens,
                    r.output_tokens,
                    r.cache_read_tokens,
                    r.cache_write_tokens,
                    r.reasoning_tokens,
                    r.estimated,
                    r.cost_nanos,
                    r.ttfb_ms,
                    r.total_ms,
                    r.attempts,
                    r.upstream_kind,
                ])
                .map_err(|e| self.err(e))?;
            }
        }
        tx.commit().map_err(|e| self.err(e))?;
        self.depth.fetch_add(events.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// The oldest `max` events waiting (none: the spool is empty).
    pub fn take(&self, max: usize) -> Result<Taken, SpoolError> {
        let conn = self.conn.lock().map_err(|_| SpoolError::Poisoned)?;
        let mut st = conn
            .prepare_cached(&format!(
                "SELECT seq, {COLUMNS} FROM spool ORDER BY seq LIMIT ?1"
            ))
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([max as i64], |r| Ok((r.get::<_, i64>(0)?, record(r)?)))
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        if rows.is_empty() {
            self.depth.store(0, Ordering::Relaxed);
        }
        let first = rows.first().map_or(0, |r| r.0);
        let last = rows.last().map_or(0, |r| r.0);
        Ok(Taken {
            records: rows.into_iter().map(|r| r.1).collect(),
            first,
            last,
        })
    }

    /// Deletes what [`Spool::take`] returned, once it is delivered.
    pub fn remove(&self, taken: &Taken) -> Result<(), SpoolError> {
        let conn = self.conn.lock().map_err(|_| SpoolError::Poisoned)?;
        let n = conn
            .prepare_cached("DELETE FROM spool WHERE seq BETWEEN ?1 AND ?2")
            .and_then(|mut st| st.execute([taken.first, taken.last]))
            .map_err(|e| self.err(e))?;
        let _ = self
            .depth
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |d| {
                Some(d.saturating_sub(n as u64))
            });
        Ok(())
    }
}

/// A spool row from column 1 on (column 0 is its sequence number).
fn record(r: &rusqlite::Row<'_>) -> rusqlite::Result<UsageRecord> {
    Ok(UsageRecord {
        request_id: r.get(1)?,
        ts: r.get(2)?,
        key_id: r.get(3)?,
        user_id: r.get(4)?,
        upstream: r.get(5)?,
        model_requested: r.get(6)?,
        model_served: r.get(7)?,
        dialect: r.get(8)?,
        endpoint: r.get(9)?,
        streamed: r.get(10)?,
        status: r.get(11)?,
        input_tokens: r.get(12)?,
        output_tokens: r.get(13)?,
        cache_read_tokens: r.get(14)?,
        cache_write_tokens: r.get(15)?,
        reasoning_tokens: r.get(16)?,
        estimated: r.get(17)?,
        cost_nanos: r.get(18)?,
        ttfb_ms: r.get(19)?,
        total_ms: r.get(20)?,
        attempts: r.get(21)?,
        upstream_kind: r.get(22)?,
    })
}

/// The spool holds who used what: not for other local users.
fn restrict_to_owner(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
        log::warn!("cannot restrict {} to its owner: {e}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::sample_events;

    #[test]
    fn appended_batches_come_back_in_order_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let events = sample_events(50, 7, 1_000, 10);
        {
            let spool = Spool::open(dir.path()).unwrap();
            spool.append(&events[..20]).unwrap();
            spool.append(&events[20..]).unwrap();
            assert_eq!(spool.depth(), 50);
        }
        let spool = Spool::open(dir.path()).unwrap();
        assert_eq!(spool.depth(), 50);
        let first = spool.take(30).unwrap();
        let want: Vec<UsageRecord> = events.iter().map(UsageRecord::from).collect();
        assert_eq!(first.records, want[..30]);
        spool.remove(&first).unwrap();
        assert_eq!(spool.depth(), 20);
        let rest = spool.take(100).unwrap();
        assert_eq!(rest.records, want[30..]);
        assert!(rest.first > first.last);
        spool.remove(&rest).unwrap();
        assert!(spool.take(10).unwrap().records.is_empty());
        assert_eq!(spool.depth(), 0);
        let mode = std::fs::metadata(spool.path()).unwrap().permissions();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.mode() & 0o777, 0o600);
    }

    #[test]
    fn the_spool_is_durable_and_in_wal_mode() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let conn = spool.conn.lock().unwrap();
        let journal: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!((journal.as_str(), sync), ("wal", 2));
    }
}
