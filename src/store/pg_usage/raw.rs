//! For the usage tests that run on both backends: the rows of a plain query (SQL both
//! SQLite and PostgreSQL accept), read as text or as integers, to hold the store's
//! answers against an independent scan of the events.

use crate::store::Store;

/// Every row of `sql`, each column read as text (`NULL` as `None`): select `CAST(...
/// AS TEXT)` columns.
pub(crate) fn rows_text(store: &Store, sql: &str) -> Vec<Vec<Option<String>>> {
    match store.pg() {
        Some(pg) => {
            let sql = sql.to_owned();
            pg.run(move |pool| async move {
                let rows = crate::store::pg::client(&pool)
                    .await?
                    .query(&sql, &[])
                    .await?;
                Ok(rows
                    .iter()
                    .map(|r| {
                        (0..r.len())
                            .map(|i| r.get::<_, Option<String>>(i))
                            .collect()
                    })
                    .collect())
            })
            .unwrap()
        }
        None => {
            let conn = store.conn().unwrap();
            let mut st = conn.prepare(sql).unwrap();
            let n = st.column_count();
            st.query_map([], |r| {
                (0..n).map(|i| r.get::<_, Option<String>>(i)).collect()
            })
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
        }
    }
}

/// The first column of every row of `sql`, as text.
pub(crate) fn column_text(store: &Store, sql: &str) -> Vec<String> {
    rows_text(store, sql)
        .into_iter()
        .map(|r| r.into_iter().next().flatten().unwrap_or_default())
        .collect()
}

/// The one row of `sql`, its columns (`CAST(... AS TEXT)` of integers) as integers.
pub(crate) fn row_i64(store: &Store, sql: &str) -> Vec<i64> {
    rows_text(store, sql)
        .remove(0)
        .into_iter()
        .map(|v| v.unwrap_or_default().parse().unwrap())
        .collect()
}

/// The request log's tie-breaking column: SQLite's rowid, PostgreSQL's `id`.
pub(crate) fn row_order(store: &Store) -> &'static str {
    if store.is_postgres() {
        "id"
    } else {
        "rowid"
    }
}
