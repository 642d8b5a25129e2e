//! PostgreSQL migrations: a numbered list of their own (`migrations/NNNN_*.sql`),
//! applied in one transaction under a transaction-level advisory lock, so that of
//! several instances starting at once one applies them and the others find them
//! applied. Recorded in `schema_migrations`, as in the SQLite store; a schema newer
//! than this binary knows is refused.

use deadpool_postgres::Pool;

use super::client;
use crate::store::StoreError;

/// Migrations, applied in order; each runs once.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "control_plane",
        include_str!("migrations/0001_control_plane.sql"),
    ),
    (2, "usage", include_str!("migrations/0002_usage.sql")),
];

/// The advisory lock's key: "tollgate" in ASCII.
const LOCK_KEY: i64 = 0x746f_6c6c_6761_7465;

/// The newest migration this binary knows.
pub fn known_version() -> u32 {
    MIGRATIONS.last().map_or(0, |m| m.0 as u32)
}

pub(super) async fn migrate(pool: &Pool) -> Result<(), StoreError> {
    let mut client = client(pool).await?;
    let tx = client.transaction().await?;
    // waiting for another instance's migrations, or a long one, is not a stuck query
    tx.batch_execute("SET LOCAL statement_timeout = 0").await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .await?;
    let current = current_version(&tx).await?;
    let known = known_version();
    if current > known {
        return Err(StoreError::Schema {
            found: current,
            known,
        });
    }
    for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 as u32 > current) {
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, EXTRACT(EPOCH FROM now())::BIGINT)",
            &[version, name],
        )
        .await?;
        log::info!("store: applied PostgreSQL migration {version:04}_{name}");
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn current_version(
    client: &impl deadpool_postgres::GenericClient,
) -> Result<u32, StoreError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .await?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let v: i32 = client
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )
        .await?
        .get(0);
    Ok(v.max(0) as u32)
}
