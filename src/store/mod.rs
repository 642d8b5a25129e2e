//! The store, on one of two backends behind the same synchronous API: SQLite (one
//! connection behind a mutex, WAL, numbered migrations applied on open, closed with a
//! checkpoint so that a stopped gateway leaves no `-wal`/`-shm` file) or PostgreSQL
//! ([`pg`], `storage.url`: any number of gateways share it). Typed queries live in one
//! file per table family (the PostgreSQL ones under `pg/`); the key material the rows
//! are made with (master key, gateway key format, provider-key encryption) in [`secrets`].

mod audit;
pub mod backup;
mod data_keys;
pub mod input;
mod keys;
pub mod pg;
mod pg_usage;
mod prices;
mod provider_keys;
mod record;
mod request_log;
mod rollups;
pub mod secrets;
mod sessions;
mod stats;
#[cfg(test)]
pub(crate) mod testing;
mod usage;
mod users;

use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, TransactionBehavior};

pub use audit::AuditRow;
pub use data_keys::DataKeyRow;
pub use keys::{AuthKeyRow, KeyCreate, KeyRow, KeyUpdate};
pub use prices::PriceSet;
pub use provider_keys::{ProviderKeyRow, ProviderKeyStatus};
pub use record::UsageRecord;
pub use request_log::{
    RequestFilter, RequestPage, RequestRow, StatusFilter, WINDOW as REQUEST_WINDOW,
};
pub use rollups::{DayRange, KeySpend, Latency, OverviewSums, Totals, DAY_MS};
pub use sessions::{NewSession, SessionRow};
pub use usage::{GroupBy, UsageRow};
pub use users::{
    hash_password, UserCreate, UserDeletion, UserRow, UserUpdate, UserUpdated, MIN_PASSWORD_CHARS,
};

/// Migrations, applied in order; each runs once, in its own transaction.
const MIGRATIONS: &[(u32, &str, &str)] = &[
    (1, "init", include_str!("migrations/0001_init.sql")),
    (2, "admin", include_str!("migrations/0002_admin.sql")),
    (3, "keyring", include_str!("migrations/0003_keyring.sql")),
    (
        4,
        "user_budgets",
        include_str!("migrations/0004_user_budgets.sql"),
    ),
    (
        5,
        "user_deletion",
        include_str!("migrations/0005_user_deletion.sql"),
    ),
    (
        6,
        "usage_write_indexes",
        include_str!("migrations/0006_usage_write_indexes.sql"),
    ),
    (
        7,
        "price_overrides",
        include_str!("migrations/0007_price_overrides.sql"),
    ),
    (
        8,
        "session_family",
        include_str!("migrations/0008_session_family.sql"),
    ),
    (
        9,
        "dashboard",
        include_str!("migrations/0009_dashboard.sql"),
    ),
    (
        10,
        "usage_upstream_kind",
        include_str!("migrations/0010_usage_upstream_kind.sql"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A PostgreSQL or pool error, as one line without the URL (see [`pg::message`]).
    #[error("PostgreSQL: {0}")]
    Postgres(String),
    /// A part of the store that the PostgreSQL backend does not hold yet.
    #[error("{0} is not on PostgreSQL yet")]
    NotOnPostgres(&'static str),
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
    #[error("{0}")]
    Crypto(#[from] crate::store::secrets::CryptoError),
    /// A new key or user that breaks a rule; the message names the option at fault.
    #[error("{0}")]
    Invalid(String),
    #[error("SQLite opened the file read-only")]
    ReadOnly,
    /// [`Store::close`] ran: the process is stopping.
    #[error("the store is closed (the gateway is stopping)")]
    Closed,
}

/// A handle to the store; clones share one connection (SQLite) or one pool (PostgreSQL).
#[derive(Clone)]
pub struct Store {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Sqlite {
        // std Mutex: SQLite calls are blocking and nothing .awaits while holding it;
        // async callers go through spawn_blocking or a dedicated thread. One
        // connection is enough: writes are serialized by SQLite anyway, and reads are
        // short. `None` once closed.
        conn: Arc<Mutex<Option<Connection>>>,
        /// The database file (backups open a connection of their own to it).
        path: Arc<Path>,
    },
    Postgres(Arc<pg::PgStore>),
}

/// The store's connection, locked (see [`Store::conn`]).
pub(crate) struct ConnGuard<'a>(MutexGuard<'a, Option<Connection>>);

impl Deref for ConnGuard<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        match self.0.as_ref() {
            Some(c) => c,
            None => unreachable!("Store::conn hands out open connections only"),
        }
    }
}

impl DerefMut for ConnGuard<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        match self.0.as_mut() {
            Some(c) => c,
            None => unreachable!("Store::conn hands out open connections only"),
        }
    }
}

impl Store {
    /// Opens (creating if needed) the database and applies pending migrations.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Dir(dir.display().to_string(), e))?;
        }
        let existed = path.exists();
        let conn = Connection::open(path)?;
        if !existed {
            restrict_to_owner(path);
        }
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            // Still correct, only slower and with readers blocking the writer.
            log::warn!(
                "store {}: the file system refused WAL mode, using {mode}",
                path.display()
            );
        }
        // FULL: a recorded usage event or a revocation survives a power cut.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let store = Store {
            backend: Backend::Sqlite {
                conn: Arc::new(Mutex::new(Some(conn))),
                path: Arc::from(path),
            },
        };
        store.migrate()?;
        Ok(store)
    }

    /// Connects to the PostgreSQL store at `options` and applies pending migrations
    /// (once, under an advisory lock, whichever instance comes first).
    pub fn open_postgres(options: &pg::PgOptions) -> Result<Store, StoreError> {
        let pg = pg::PgStore::connect(options)?;
        Ok(Store {
            backend: Backend::Postgres(Arc::new(pg)),
        })
    }

    /// Connects to the PostgreSQL store at `options` without migrating it, for
    /// `tollgate check` (which changes nothing); see [`Store::pg_schema_version`].
    pub fn inspect_postgres(options: &pg::PgOptions) -> Result<Store, StoreError> {
        let pg = pg::PgStore::connect_only(options)?;
        Ok(Store {
            backend: Backend::Postgres(Arc::new(pg)),
        })
    }

    /// The PostgreSQL schema's migration (0: none yet); an error on SQLite.
    pub fn pg_schema_version(&self) -> Result<u32, StoreError> {
        match self.pg() {
            Some(pg) => pg.schema_version(),
            None => Err(StoreError::Invalid("the store is not PostgreSQL".into())),
        }
    }

    /// The PostgreSQL server's `max_connections`, for `tollgate check`.
    pub fn pg_max_connections(&self) -> Result<u64, StoreError> {
        match self.pg() {
            Some(pg) => pg.max_connections(),
            None => Err(StoreError::Invalid("the store is not PostgreSQL".into())),
        }
    }

    /// The store the configuration names: PostgreSQL with `storage.url`, else the
    /// SQLite file at `storage.path`.
    pub fn open_configured(fixed: &crate::config::Fixed) -> Result<Store, StoreError> {
        match &fixed.storage_url {
            Some(options) => Store::open_postgres(options),
            None => Store::open(&fixed.storage_path),
        }
    }

    /// The SQLite database file; `None` on PostgreSQL.
    pub fn path(&self) -> Option<&Path> {
        match &self.backend {
            Backend::Sqlite { path, .. } => Some(path),
            Backend::Postgres(_) => None,
        }
    }

    /// The PostgreSQL backend, when the store is on it.
    pub(crate) fn pg(&self) -> Option<&pg::PgStore> {
        match &self.backend {
            Backend::Postgres(pg) => Some(pg),
            Backend::Sqlite { .. } => None,
        }
    }

    /// The SQLite connection; on PostgreSQL, a method that has no PostgreSQL query yet
    /// ends up here and answers [`StoreError::NotOnPostgres`].
    pub(crate) fn conn(&self) -> Result<ConnGuard<'_>, StoreError> {
        let conn = match &self.backend {
            Backend::Sqlite { conn, .. } => conn,
            Backend::Postgres(_) => {
                return Err(StoreError::NotOnPostgres(
                    "this part of the store (usage events, rollups, the request log)",
                ))
            }
        };
        let guard = conn.lock().map_err(|_| StoreError::Poisoned)?;
        if guard.is_none() {
            return Err(StoreError::Closed);
        }
        Ok(ConnGuard(guard))
    }

    /// Checkpoints the WAL into the database file and closes the connection; every
    /// later use answers [`StoreError::Closed`]. Called once a stopping gateway has
    /// written its last usage event: when no other process has the store open, SQLite
    /// then deletes the `-wal` and `-shm` files, so the file alone is the whole store
    /// (a restore from backup puts just that file back). Idempotent.
    pub fn close(&self) -> Result<(), StoreError> {
        let conn = match &self.backend {
            Backend::Sqlite { conn, .. } => conn,
            Backend::Postgres(pg) => {
                pg.close();
                return Ok(());
            }
        };
        // A poisoned lock still holds a usable connection: a panic elsewhere must not
        // keep the WAL from being folded in.
        let mut slot = conn.lock().unwrap_or_else(|p| p.into_inner());
        let Some(conn) = slot.take() else {
            return Ok(());
        };
        // TRUNCATE: even if another process keeps the store open (a CLI command, the
        // new process of an upgrade), the -wal file is left empty, not grown.
        let checkpoint = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            r.get::<_, i64>(0)
        });
        match checkpoint {
            Ok(0) => {}
            Ok(_) => log::info!(
                "store: the final checkpoint was busy (another process has the store open)"
            ),
            Err(e) => log::warn!("store: the final checkpoint failed: {e}"),
        }
        conn.close().map_err(|(_, e)| StoreError::Sqlite(e))
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
        )?;
        let known = known_version();
        let current = current_version(&conn)?;
        if current > known {
            return Err(StoreError::Schema {
                found: current,
                known,
            });
        }
        for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
            // IMMEDIATE takes the write lock before reading the version again, so a CLI
            // command and a server opening a new database at the same moment do not
            // both apply the same migration.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if current_version(&tx)? >= *version {
                continue;
            }
            tx.execute_batch(sql)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, unixepoch())",
                rusqlite::params![version, name],
            )?;
            tx.commit()?;
            log::info!("store: applied migration {version:04}_{name}");
        }
        Ok(())
    }

    /// Whether this process may write the store, without writing anything: SQLite opens
    /// a file it may not write read-only and says nothing until the first write. For
    /// `tollgate check`; waits for a writer in another process like any write.
    pub fn probe_writable(&self) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            return pg.probe_writable();
        }
        let conn = self.conn()?;
        if conn.is_readonly(rusqlite::MAIN_DB)? {
            return Err(StoreError::ReadOnly);
        }
        // Taking the write lock also needs the -wal and -shm files to be writable.
        conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;")?;
        Ok(())
    }

    /// Integrity check and schema version, for `tollgate check` and `/readyz`.
    pub fn check(&self) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            return pg.check();
        }
        let conn = self.conn()?;
        let mut st = conn.prepare("PRAGMA quick_check")?;
        let problems = st
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        if problems.len() != 1 || problems[0] != "ok" {
            return Err(StoreError::Corrupt(problems.join("; ")));
        }
        let current = current_version(&conn)?;
        let known = known_version();
        if current != known {
            return Err(StoreError::Schema {
                found: current,
                known,
            });
        }
        Ok(())
    }
}

/// A new, migrated store on a fresh PostgreSQL database, for unit tests that run on
/// both backends; the database is dropped with the handle: keep it bound.
#[cfg(test)]
pub(crate) fn temp_pg_store() -> (pg::test_db::TestDatabase, Store) {
    let db = pg::test_db::TestDatabase::create();
    let options = pg::PgOptions::parse(db.url(), 2).unwrap();
    let store = Store::open_postgres(&options).unwrap();
    (db, store)
}

/// A new, migrated store in a temporary directory, for unit tests (more helpers in
/// [`testing`]). The store lives as long as the directory handle: keep it bound (`_dir`,
/// never `_`).
#[cfg(test)]
pub(crate) fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("t.db")).unwrap();
    (dir, store)
}

fn known_version() -> u32 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

fn current_version(conn: &Connection) -> Result<u32, StoreError> {
    Ok(conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )?)
}

/// The database holds key HMACs, encrypted provider keys and who used what: not for
/// other local users. SQLite gives its -wal and -shm files the same mode.
fn restrict_to_owner(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
        log::warn!("cannot restrict {} to its owner: {e}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn count(s: &Store, sql: &str) -> i64 {
        s.conn().unwrap().query_row(sql, [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn opens_migrates_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/t.db");
        let s = Store::open(&path).unwrap();
        s.check().unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        drop(s);
        // Twice: the second open applies nothing and fails on nothing.
        let s = Store::open(&path).unwrap();
        s.check().unwrap();
        let again = s.clone();
        again.migrate().unwrap();
        assert_eq!(
            count(&s, "SELECT COUNT(*) FROM schema_migrations"),
            MIGRATIONS.len() as i64
        );
        for table in ["users", "api_keys", "provider_keys", "usage_events"] {
            let sql = format!(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '{table}'"
            );
            assert_eq!(count(&s, &sql), 1, "{table}");
        }
        let conn = s.conn().unwrap();
        let journal: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        let fk: i64 = conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!((journal.as_str(), fk, sync), ("wal", 1, 2));
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let s = Store::open(&path).unwrap();
        s.conn()
            .unwrap()
            .execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', 0)",
                [],
            )
            .unwrap();
        assert!(matches!(
            s.check(),
            Err(StoreError::Schema {
                found: 99,
                known
            }) if known == MIGRATIONS[MIGRATIONS.len() - 1].0
        ));
        drop(s);
        let e = Store::open(&path).err().unwrap();
        assert_eq!(
            e.to_string(),
            format!(
                "the store's schema is at migration 99, this binary knows up to {}",
                MIGRATIONS.len()
            )
        );
    }

    #[test]
    fn close_folds_the_wal_in_and_refuses_later_use() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let s = Store::open(&path).unwrap();
        let other = s.clone();
        s.conn()
            .unwrap()
            .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (42);")
            .unwrap();
        let side = |ext: &str| dir.path().join(format!("t.db-{ext}"));
        assert!(side("wal").exists());
        s.close().unwrap();
        assert!(!side("wal").exists() && !side("shm").exists());
        assert!(matches!(other.usage_count(), Err(StoreError::Closed)));
        s.close().unwrap();
        // The main file alone holds everything.
        let again = Store::open(&path).unwrap();
        let x: i64 = again
            .conn()
            .unwrap()
            .query_row("SELECT x FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(x, 42);
    }

    #[test]
    fn postgres_is_a_backend_of_the_same_store() {
        let (_db, s) = temp_pg_store();
        s.check().unwrap();
        s.probe_writable().unwrap();
        assert_eq!(s.path(), None);
        // What has no PostgreSQL query yet says so, typed.
        assert!(matches!(s.conn(), Err(StoreError::NotOnPostgres(_))));
    }

    #[test]
    fn foreign_keys_are_enforced() {
        let (_dir, s) = temp_store();
        let orphan = s.conn().unwrap().execute(
            "INSERT INTO api_keys (id, user_id, secret_hmac, prefix, models, created_at) VALUES ('x', 42, x'00', 'p', '[]', 0)",
            [],
        );
        assert!(orphan.is_err());
    }
}
