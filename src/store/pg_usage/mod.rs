//! Usage on the PostgreSQL backend: the usage-side methods of [`Store`] (events,
//! rollups, request log, reports, budget seeding, pruning) for a store opened with
//! `storage.url`. Each is the async query of [`write`], [`read`], [`log`] or [`prune`]
//! run on the backend's runtime. The schema is the backend's migration `0002_usage.sql`.

mod log;
mod prune;
mod read;
mod write;

#[cfg(test)]
pub(crate) mod raw;
#[cfg(test)]
mod tests;

use tokio_postgres::error::SqlState;

use super::pg::{client, PgStore};
use super::{
    DayRange, GroupBy, KeySpend, Latency, RequestFilter, RequestPage, StoreError, Totals,
    UsageRecord, UsageRow,
};

/// How often a batch whose transaction lost a deadlock or serialization conflict is
/// tried again at once (the fixed lock order should make it never happen).
const CONFLICT_RETRIES: usize = 3;

fn is_conflict(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
    )
}

/// Inserts `records` (their rollups with them) in one transaction; how many were new.
pub(super) fn insert(pg: &PgStore, records: Vec<UsageRecord>) -> Result<usize, StoreError> {
    if records.is_empty() {
        return Ok(0);
    }
    pg.run(|pool| async move {
        let mut c = client(&pool).await?;
        let mut tries = 0;
        loop {
            let tx = c.transaction().await?;
            let done = match write::insert(&*tx, &records).await {
                Ok(n) => tx.commit().await.map(|()| n),
                Err(e) => Err(e),
            };
            match done {
                Ok(n) => return Ok(n),
                Err(e) if is_conflict(&e) && tries < CONFLICT_RETRIES => tries += 1,
                Err(e) => return Err(e.into()),
            }
        }
    })
}

pub(super) fn usage_report(
    pg: &PgStore,
    by: GroupBy,
    since_ms: Option<i64>,
    until_ms: Option<i64>,
) -> Result<Vec<UsageRow>, StoreError> {
    pg.run(move |pool| async move {
        Ok(read::usage_report(&**client(&pool).await?, by, since_ms, until_ms).await?)
    })
}

/// Prunes events older than `before_ms` in transactions of a batch each.
pub(super) fn prune(pg: &PgStore, before_ms: i64) -> Result<usize, StoreError> {
    let mut total = 0;
    loop {
        let (n, last) = pg.run(move |pool| async move {
            let mut c = client(&pool).await?;
            let tx = c.transaction().await?;
            let done = prune::prune_batch(&*tx, before_ms).await?;
            tx.commit().await?;
            Ok(done)
        })?;
        total += n;
        if last {
            return Ok(total);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

pub(super) fn usage_count(pg: &PgStore) -> Result<u64, StoreError> {
    pg.run(|pool| async move { Ok(read::usage_count(&**client(&pool).await?).await?) })
}

pub(super) fn spend_since(
    pg: &PgStore,
    since_ms: i64,
) -> Result<super::keys::SpendByOwner, StoreError> {
    pg.run(
        move |pool| async move { Ok(read::spend_since(&**client(&pool).await?, since_ms).await?) },
    )
}

pub(super) fn rollup_report(
    pg: &PgStore,
    by: GroupBy,
    days: DayRange,
    user: Option<i64>,
) -> Result<Vec<Totals>, StoreError> {
    pg.run(move |pool| async move {
        Ok(read::rollup_report(&**client(&pool).await?, by, days, user).await?)
    })
}

pub(super) fn rollup_spend(
    pg: &PgStore,
    day_from: i64,
    month_from: i64,
    today: i64,
    user: Option<i64>,
) -> Result<Vec<KeySpend>, StoreError> {
    pg.run(move |pool| async move {
        let c = client(&pool).await?;
        Ok(read::rollup_spend(&**c, day_from, month_from, today, user).await?)
    })
}

pub(super) fn rollup_totals(
    pg: &PgStore,
    days: DayRange,
    user: Option<i64>,
) -> Result<Totals, StoreError> {
    pg.run(move |pool| async move {
        Ok(read::rollup_totals(&**client(&pool).await?, days, user).await?)
    })
}

/// The overview's figures ([`super::OverviewSums`]): the same reports the SQLite
/// backend folds into one scan, here as queries on one connection.
pub(super) fn rollup_overview(
    pg: &PgStore,
    today: i64,
    month_from: i64,
    series_from: i64,
    user: Option<i64>,
) -> Result<super::OverviewSums, StoreError> {
    pg.run(move |pool| async move {
        let c = client(&pool).await?;
        let month = DayRange::days(month_from, today);
        let series = read::daily_cost(&**c, series_from, today, user).await?;
        Ok(super::OverviewSums {
            today: read::rollup_totals(&**c, DayRange::days(today, today), user).await?,
            month: read::rollup_totals(&**c, month, user).await?,
            models: read::rollup_report(&**c, GroupBy::Model, month, user).await?,
            users: read::rollup_report(&**c, GroupBy::User, month, user).await?,
            keys: read::rollup_report(&**c, GroupBy::Key, month, user).await?,
            series,
        })
    })
}

pub(super) fn latency(pg: &PgStore, days: DayRange) -> Result<Latency, StoreError> {
    pg.run(move |pool| async move { Ok(read::latency(&**client(&pool).await?, days).await?) })
}

pub(super) fn models_seen(pg: &PgStore, days: DayRange) -> Result<Vec<String>, StoreError> {
    pg.run(move |pool| async move { Ok(read::models_seen(&**client(&pool).await?, days).await?) })
}

pub(super) fn first_usage_day(pg: &PgStore) -> Result<Option<i64>, StoreError> {
    pg.run(|pool| async move { Ok(read::first_usage_day(&**client(&pool).await?).await?) })
}

pub(super) fn request_log(
    pg: &PgStore,
    f: &RequestFilter,
    limit: usize,
) -> Result<RequestPage, StoreError> {
    let f = f.clone();
    pg.run(
        move |pool| async move { Ok(log::request_log(&**client(&pool).await?, &f, limit).await?) },
    )
}
