//! The SQLite store: one connection behind a mutex, WAL, numbered migrations applied on
//! open. Typed queries live in one file per table family.

mod keys;
mod usage;
mod users;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::Connection;

pub use keys::{AuthKeyRow, KeyRow, NewKey};
pub use usage::{GroupBy, UsageRow};
pub use users::UserRow;

/// Migrations, applied in order; each runs once, in its own transaction.
const MIGRATIONS: &[(u32, &str, &str)] = &[(1, "init", include_str!("migrations/0001_init.sql"))];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot create the store directory {0}: {1}")]
    Dir(String, std::io::Error),
    #[error("user '{0}' already exists")]
    DuplicateUser(String),
    #[error("unknown user '{0}'")]
    UnknownUser(String),
    #[error("no key with id '{0}'")]
    UnknownKey(String),
    #[error("invalid user name '{0}': use 1-64 letters, digits, '.', '_', '@' or '-'")]
    BadUserName(String),
    #[error("the store's schema is at migration {found}, this binary knows up to {known}")]
    Schema { found: u32, known: u32 },
    #[error("integrity check failed: {0}")]
    Corrupt(String),
    #[error("the store is locked by a panicked thread")]
    Poisoned,
}

/// A handle to the store; clones share one connection.
#[derive(Clone)]
pub struct Store {
    // std Mutex: SQLite calls are blocking and never .await while holding it; async
    // callers go through spawn_blocking or a dedicated thread.
    conn: Arc<Mutex<Connection>>,
}

impl Store {
    /// Opens (creating if needed) the database and applies pending migrations.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Dir(dir.display().to_string(), e))?;
        }
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let store = Store {
            conn: Arc::new(Mutex::new(conn)),
        };
        store.migrate()?;
        Ok(store)
    }

    pub(crate) fn conn(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        self.conn.lock().map_err(|_| StoreError::Poisoned)
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
        )?;
        let current: u32 = conn.query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )?;
        let known = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
        if current > known {
            return Err(StoreError::Schema {
                found: current,
                known,
            });
        }
        for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, unixepoch())",
                rusqlite::params![version, name],
            )?;
            tx.commit()?;
            log::info!("store: applied migration {version:04} {name}");
        }
        Ok(())
    }

    /// Integrity check and schema version, for `tollgate check` and `/readyz`.
    pub fn check(&self) -> Result<(), StoreError> {
        let conn = self.conn()?;
        let ok: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
        if ok != "ok" {
            return Err(StoreError::Corrupt(ok));
        }
        let current: u32 = conn.query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )?;
        let known = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
        if current != known {
            return Err(StoreError::Schema {
                found: current,
                known,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_migrates_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/t.db");
        let s = Store::open(&path).unwrap();
        s.check().unwrap();
        drop(s);
        let s = Store::open(&path).unwrap();
        s.check().unwrap();
        let n: i64 = s
            .conn()
            .unwrap()
            .query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
    }
}
