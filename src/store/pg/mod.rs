//! The PostgreSQL backend of [`super::Store`] (`storage.url`, CONTRACT section 8): a
//! deadpool of tokio-postgres connections driven by a small tokio runtime of its own,
//! so that the store keeps its synchronous API. A sync method hands its future to that
//! runtime and waits for the answer on a plain channel, which is safe from any thread,
//! a worker of another runtime included (`Runtime::block_on` would panic there).
//! Migrations ([`migrate`]) run once under an advisory lock; the queries of each table
//! family live in a file of their own, beside the SQLite ones' names.

mod migrate;

mod audit;
mod data_keys;
mod keys;
mod prices;
mod provider_keys;
mod sessions;
pub mod test_db;
pub mod tls;
mod users;

use std::future::Future;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Timeouts};
use tokio::sync::oneshot;

use super::StoreError;

pub use migrate::known_version;
pub(crate) use users::UserWrite;

#[cfg(test)]
mod tests;

/// The channel every change is announced on (`NOTIFY tollgate_changes, '<origin> <words>'`).
pub const CHANNEL: &str = "tollgate_changes";

/// Default of `storage.pool_size`: connections each instance may hold.
pub const DEFAULT_POOL_SIZE: usize = 8;

/// `storage.url` and `storage.pool_size`. The URL carries the password: it is shown
/// only as [`PgOptions::redacted`], never in `Debug`, an error or a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct PgOptions {
    /// `storage.url` as tokio-postgres is given it: libpq's TLS parameters taken out
    /// ([`tls`]); the password is in it.
    connect_url: String,
    tls: tls::TlsSettings,
    pub pool_size: usize,
}

impl std::fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgOptions({}, pool {})", self.redacted(), self.pool_size)
    }
}

impl PgOptions {
    /// Checks `url`: `postgres://` or `postgresql://`, parsed as libpq does. The error
    /// names what is wrong without repeating the URL.
    pub fn parse(url: &str, pool_size: usize) -> Result<PgOptions, String> {
        let lower = url.to_ascii_lowercase();
        if !(lower.starts_with("postgres://") || lower.starts_with("postgresql://")) {
            return Err("must start with postgres:// or postgresql://".into());
        }
        let (tls, connect_url) = tls::TlsSettings::split(url)?;
        let config = tokio_postgres::Config::from_str(&connect_url)
            .map_err(|e| format!("is not a PostgreSQL URL ({})", message(&e)))?;
        if config.get_hosts().is_empty() {
            return Err("names no host".into());
        }
        if config.get_user().is_none() {
            return Err("names no user".into());
        }
        // the root certificates are read now, so that `tollgate check` names a bad file
        tls.connector()?;
        Ok(PgOptions {
            connect_url,
            tls,
            pool_size,
        })
    }

    /// The connection settings tokio-postgres is given (password included: never for
    /// showing).
    pub(crate) fn connect_config(&self) -> Result<tokio_postgres::Config, StoreError> {
        tokio_postgres::Config::from_str(&self.connect_url)
            .map_err(|e| StoreError::Postgres(format!("invalid storage.url: {e}")))
    }

    /// The TLS connector `storage.url` asks for (`sslmode`, `sslrootcert`).
    pub(crate) fn tls(&self) -> Result<tls::PgTls, StoreError> {
        self.tls
            .connector()
            .map_err(|e| StoreError::Postgres(format!("storage.url: {e}")))
    }

    /// `postgres://user@host:port/dbname`: the URL without its password or options,
    /// for messages.
    pub fn redacted(&self) -> String {
        let Ok(c) = tokio_postgres::Config::from_str(&self.connect_url) else {
            return "postgres://(invalid URL)".into();
        };
        let host = match c.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => String::new(),
        };
        let port = c.get_ports().first().copied().unwrap_or(5432);
        format!(
            "postgres://{}@{host}:{port}/{}",
            c.get_user().unwrap_or(""),
            c.get_dbname().unwrap_or(c.get_user().unwrap_or(""))
        )
    }
}

/// The PostgreSQL store: a pool, the runtime that drives it, and who this process is
/// on the change channel.
pub struct PgStore {
    pool: Pool,
    runtime: tokio::runtime::Handle,
    /// Dropped (or sent) to stop the runtime's thread.
    stop: Mutex<Option<oneshot::Sender<()>>>,
    options: PgOptions,
    /// Random, per process: a gateway skips the notices it sent itself (its admin API
    /// applied the change already).
    origin: String,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = stop.send(());
        }
    }
}

/// How long a query waits for a pooled connection, and a new connection for the server.
const POOL_WAIT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection whose peer went silent (half-open after a failover or a network
/// change) is given up after about this long without an acknowledgement, instead of
/// the kernel's minutes: otherwise the spool's delivery could wait on it that long.
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);
/// Keepalive probes on idle connections: the first after 10 s, then every 5 s, dead
/// after 3 unanswered (the default starts after two hours).
const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
const KEEPALIVE_RETRIES: u32 = 3;
/// The server cancels a statement that runs longer (one waiting on a lock a stuck
/// session holds), so the pool's connections come back; migrations lift it for their
/// transaction. An `options=-c statement_timeout=...` in `storage.url` wins.
const STATEMENT_TIMEOUT: &str = "-c statement_timeout=60s";

/// Sets the TCP timeouts above on `config` (the pool's connections and the listener's).
pub(crate) fn tcp_timeouts(config: &mut tokio_postgres::Config) -> &mut tokio_postgres::Config {
    config
        .tcp_user_timeout(TCP_USER_TIMEOUT)
        .keepalives(true)
        .keepalives_idle(KEEPALIVE_IDLE)
        .keepalives_interval(KEEPALIVE_INTERVAL)
        .keepalives_retries(KEEPALIVE_RETRIES)
}

/// The pool's connection settings: `options`' own URL, the timeouts above.
fn pool_config(options: &PgOptions) -> Result<tokio_postgres::Config, StoreError> {
    let mut config = options.connect_config()?;
    let server_options = match config.get_options() {
        // later `-c` settings win: the URL's own go after ours
        Some(own) => format!("{STATEMENT_TIMEOUT} {own}"),
        None => STATEMENT_TIMEOUT.to_owned(),
    };
    tcp_timeouts(&mut config)
        .connect_timeout(CONNECT_TIMEOUT)
        .application_name("tollgate")
        .options(server_options);
    Ok(config)
}

impl PgStore {
    /// Connects (checking the server answers) and applies pending migrations.
    pub fn connect(options: &PgOptions) -> Result<PgStore, StoreError> {
        let store = PgStore::connect_only(options)?;
        store.run(|pool| async move { migrate::migrate(&pool).await })?;
        Ok(store)
    }

    /// Connects (checking the server answers), leaving the schema as it is.
    pub fn connect_only(options: &PgOptions) -> Result<PgStore, StoreError> {
        let runtime = start_runtime()?;
        let manager = Manager::from_config(
            pool_config(options)?,
            options.tls()?,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .timeouts(Timeouts {
                wait: Some(POOL_WAIT),
                create: Some(CONNECT_TIMEOUT),
                recycle: Some(CONNECT_TIMEOUT),
            })
            .build()
            .map_err(|e| StoreError::Postgres(format!("cannot build the pool: {e}")))?;
        let store = PgStore {
            pool,
            runtime: runtime.0,
            stop: Mutex::new(Some(runtime.1)),
            options: options.clone(),
            origin: random_origin(),
        };
        store.run(|pool| async move { client(&pool).await.map(drop) })?;
        Ok(store)
    }

    /// The schema's migration (0: none yet).
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        self.run(|pool| async move { migrate::current_version(&client(&pool).await?).await })
    }

    /// Runs `work` on the store's runtime with the pool and waits for its result.
    pub(crate) fn run<T, F, Fut>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Pool) -> Fut,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let fut = work(self.pool.clone());
        self.runtime.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().map_err(|_| StoreError::Closed)?
    }

    /// The runtime, for the change listener's task.
    pub(crate) fn runtime(&self) -> &tokio::runtime::Handle {
        &self.runtime
    }

    pub(crate) fn options(&self) -> &PgOptions {
        &self.options
    }

    pub(crate) fn origin(&self) -> &str {
        &self.origin
    }

    /// Closes the pool: later uses answer [`StoreError::Closed`].
    pub fn close(&self) {
        self.pool.close();
    }

    /// Whether the server answers and the schema is this binary's, for `check`.
    pub fn check(&self) -> Result<(), StoreError> {
        self.run(|pool| async move {
            let client = client(&pool).await?;
            let found = migrate::current_version(&client).await?;
            let known = known_version();
            if found != known {
                return Err(StoreError::Schema { found, known });
            }
            Ok(())
        })
    }

    /// The server's `max_connections`.
    pub fn max_connections(&self) -> Result<u64, StoreError> {
        self.run(|pool| async move {
            let row = client(&pool)
                .await?
                .query_one("SHOW max_connections", &[])
                .await?;
            let text: String = row.try_get(0)?;
            text.trim()
                .parse()
                .map_err(|_| StoreError::Postgres(format!("max_connections is '{text}'")))
        })
    }

    /// The database's size in bytes.
    pub fn size_bytes(&self) -> Result<u64, StoreError> {
        self.run(|pool| async move {
            let row = client(&pool)
                .await?
                .query_one("SELECT pg_database_size(current_database())", &[])
                .await?;
            Ok(row.try_get::<_, i64>(0)?.max(0) as u64)
        })
    }

    /// Whether this role may write: a read-only replica or a role without the
    /// privilege answers an error.
    pub fn probe_writable(&self) -> Result<(), StoreError> {
        self.run(|pool| async move {
            let mut client = client(&pool).await?;
            let tx = client.transaction().await?;
            let ro: String = tx
                .query_one("SHOW transaction_read_only", &[])
                .await?
                .get(0);
            if ro == "on" {
                return Err(StoreError::ReadOnly);
            }
            tx.execute("LOCK TABLE users IN ROW EXCLUSIVE MODE", &[])
                .await?;
            tx.rollback().await?;
            Ok(())
        })
    }
}

/// A pooled connection; a closed pool is [`StoreError::Closed`].
pub(crate) async fn client(pool: &Pool) -> Result<deadpool_postgres::Object, StoreError> {
    match pool.get().await {
        Ok(c) => Ok(c),
        Err(deadpool_postgres::PoolError::Closed) => Err(StoreError::Closed),
        Err(e) => Err(StoreError::Postgres(pool_message(e))),
    }
}

fn pool_message(e: deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Backend(e) => message(&e),
        deadpool_postgres::PoolError::Timeout(_) => {
            "no connection to the server within the pool's timeout".into()
        }
        other => other.to_string(),
    }
}

/// A tokio-postgres error as one line: the server's message and its SQLSTATE, or the
/// client's (connection refused...). Neither carries the URL or its password.
pub(crate) fn message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => match std::error::Error::source(e) {
            Some(src) => format!("{e}: {src}"),
            None => e.to_string(),
        },
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError::Postgres(message(&e))
    }
}

/// Whether `e` is a unique-constraint violation.
pub(crate) fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
}

/// A runtime on a thread of its own, stopped when the sender is dropped: dropping a
/// runtime inside another one's worker panics, so the store never owns it directly.
fn start_runtime() -> Result<(tokio::runtime::Handle, oneshot::Sender<()>), StoreError> {
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (handle_tx, handle_rx) = std::sync::mpsc::sync_channel(1);
    let spawned = std::thread::Builder::new()
        .name("tollgate-pg".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("tollgate-pg-worker")
                .enable_all()
                .build();
            match rt {
                Ok(rt) => {
                    let _ = handle_tx.send(Ok(rt.handle().clone()));
                    rt.block_on(async {
                        let _ = stop_rx.await;
                    });
                    rt.shutdown_timeout(Duration::from_secs(1));
                }
                Err(e) => {
                    let _ = handle_tx.send(Err(e));
                }
            }
        });
    let runtime_error =
        |e: std::io::Error| StoreError::Postgres(format!("cannot start its runtime: {e}"));
    spawned.map_err(runtime_error)?;
    let handle = handle_rx
        .recv()
        .map_err(|_| StoreError::Postgres("its runtime thread stopped".into()))?
        .map_err(runtime_error)?;
    Ok((handle, stop_tx))
}

fn random_origin() -> String {
    use rand::Rng;
    let n: u64 = rand::thread_rng().gen();
    format!("{n:016x}")
}

/// `words` as one NOTIFY payload of `origin`.
pub(crate) fn payload(origin: &str, words: &[&str]) -> String {
    format!("{origin} {}", words.join(" "))
}

/// Sends the change notice in the transaction `tx` (delivered at its commit).
pub(crate) async fn notify(
    tx: &impl deadpool_postgres::GenericClient,
    origin: &str,
    words: &[&str],
) -> Result<(), StoreError> {
    tx.execute(
        "SELECT pg_notify($1, $2)",
        &[&CHANNEL, &payload(origin, words)],
    )
    .await?;
    Ok(())
}
