//! The dashboard's request log: the latest usage events, newest first, with filters and
//! keyset paging (a cursor of `(ts, rowid)`, never an OFFSET).
//!
//! Reads are bounded on any store size. Without a user the scan walks `usage_events_ts`
//! backwards; with a user (a member's own log, or the user and key filters: a key is
//! looked for among its owner's events) it walks `usage_events_user_ts` (migration
//! 0009). Filters that no index serves (model, upstream, status) look at most
//! [`WINDOW`] events per page: a page that finds fewer matches in that stretch says so
//! and its cursor continues from where the look stopped, so a rare model costs more
//! clicks, never a full scan.

use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection};

use super::{Store, StoreError};

/// Events one page looks at when filtering by a column no index serves.
pub const WINDOW: usize = 20_000;

/// Which answers to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatusFilter {
    #[default]
    Any,
    /// Status below 400.
    Ok,
    /// Status 400 and above.
    Errors,
}

/// What to list; every field narrows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestFilter {
    pub user_id: Option<i64>,
    pub key_id: Option<String>,
    /// The served model, else the requested one (as the usage report groups).
    pub model: Option<String>,
    pub upstream: Option<String>,
    pub status: StatusFilter,
    /// Only events before this `(ts, rowid)` (the cursor of the previous page).
    pub before: Option<(i64, i64)>,
}

impl RequestFilter {
    fn needs_window(&self) -> bool {
        self.model.is_some() || self.upstream.is_some() || self.status != StatusFilter::Any
    }
}

/// One request as the log shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRow {
    pub rowid: i64,
    pub request_id: String,
    pub ts_ms: i64,
    pub key_id: Option<String>,
    pub key_name: Option<String>,
    pub username: Option<String>,
    pub upstream: Option<String>,
    pub model_requested: Option<String>,
    pub model_served: Option<String>,
    pub endpoint: Option<String>,
    pub streamed: bool,
    pub status: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    pub reasoning_tokens: i64,
    pub estimated: bool,
    pub cost_nanos: i64,
    pub ttfb_ms: Option<i64>,
    pub total_ms: i64,
    /// Upstreams tried (`None` for events stored before migration 0007).
    pub attempts: Option<i64>,
}

/// One page of the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestPage {
    pub rows: Vec<RequestRow>,
    /// The cursor of the next (older) page, if there may be one.
    pub next: Option<(i64, i64)>,
    /// The page looked at a whole [`WINDOW`] without filling up: older matches may
    /// still come on the next page.
    pub window_exhausted: bool,
}

/// The part of the `WHERE` an index serves (user, cursor), with its parameters.
fn indexed_part(f: &RequestFilter, params: &mut Vec<Value>) -> String {
    let mut clauses = vec!["true".to_owned()];
    if let Some(key) = &f.key_id {
        // The key's owner, so that the user index serves the key filter too.
        clauses.push("user_id = (SELECT user_id FROM api_keys WHERE id = ?) AND key_id = ?".into());
        params.push(Value::Text(key.clone()));
        params.push(Value::Text(key.clone()));
    }
    if let Some(user) = f.user_id {
        clauses.push("user_id = ?".into());
        params.push(Value::Integer(user));
    }
    if let Some((ts, rowid)) = f.before {
        clauses.push("(ts, rowid) < (?, ?)".into());
        params.push(Value::Integer(ts));
        params.push(Value::Integer(rowid));
    }
    clauses.join(" AND ")
}

/// The filters no index serves, over `e`.
fn residual_part(f: &RequestFilter, params: &mut Vec<Value>) -> String {
    let mut clauses = vec!["true".to_owned()];
    if let Some(m) = &f.model {
        clauses.push("COALESCE(e.model_served, e.model_requested, '-') = ?".into());
        params.push(Value::Text(m.clone()));
    }
    if let Some(u) = &f.upstream {
        clauses.push("COALESCE(e.upstream, '-') = ?".into());
        params.push(Value::Text(u.clone()));
    }
    match f.status {
        StatusFilter::Any => {}
        StatusFilter::Ok => clauses.push("e.status < 400".into()),
        StatusFilter::Errors => clauses.push("e.status >= 400".into()),
    }
    clauses.join(" AND ")
}

const COLUMNS: &str = "e.rowid, e.request_id, e.ts, e.key_id, k.name, u.username, e.upstream, e.model_requested, \
     e.model_served, e.endpoint, e.streamed, e.status, e.input_tokens, e.output_tokens, e.cache_read_tokens, \
     e.cache_write_tokens, e.reasoning_tokens, e.estimated, e.cost_nanos, e.ttfb_ms, e.total_ms, e.attempts";

fn request_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RequestRow> {
    Ok(RequestRow {
        rowid: r.get(0)?,
        request_id: r.get(1)?,
        ts_ms: r.get(2)?,
        key_id: r.get(3)?,
        key_name: r.get(4)?,
        username: r.get(5)?,
        upstream: r.get(6)?,
        model_requested: r.get(7)?,
        model_served: r.get(8)?,
        endpoint: r.get(9)?,
        streamed: r.get::<_, i64>(10)? != 0,
        status: r.get(11)?,
        input_tokens: r.get(12)?,
        output_tokens: r.get(13)?,
        cache_read_tokens: r.get(14)?,
        cache_write_tokens: r.get(15)?,
        reasoning_tokens: r.get(16)?,
        estimated: r.get::<_, i64>(17)? != 0,
        cost_nanos: r.get(18)?,
        ttfb_ms: r.get(19)?,
        total_ms: r.get(20)?,
        attempts: r.get(21)?,
    })
}

/// The rows of a page: `limit + 1` at most (the extra one tells a next page exists).
fn page_rows(
    conn: &Connection,
    f: &RequestFilter,
    limit: usize,
) -> Result<Vec<RequestRow>, StoreError> {
    let mut params = Vec::new();
    let indexed = indexed_part(f, &mut params);
    let source = if f.needs_window() {
        params.push(Value::Integer(WINDOW as i64));
        format!(
            "(SELECT rowid AS rid, ts FROM usage_events WHERE {indexed} ORDER BY ts DESC, rowid DESC LIMIT ?) w \
             JOIN usage_events e ON e.rowid = w.rid"
        )
    } else {
        format!(
            "(SELECT rowid AS rid, ts FROM usage_events WHERE {indexed} ORDER BY ts DESC, rowid DESC LIMIT {}) w \
             JOIN usage_events e ON e.rowid = w.rid",
            limit + 1
        )
    };
    let residual = residual_part(f, &mut params);
    let sql = format!(
        "SELECT {COLUMNS} FROM {source} LEFT JOIN api_keys k ON k.id = e.key_id LEFT JOIN users u ON u.id = e.user_id \
         WHERE {residual} ORDER BY w.ts DESC, w.rid DESC LIMIT {}",
        limit + 1
    );
    let mut st = conn.prepare(&sql)?;
    let rows = st
        .query_map(params_from_iter(params), request_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Where a windowed look stopped: the oldest `(ts, rowid)` it saw, if it saw a whole
/// window (otherwise it reached the oldest event and there is nothing further).
fn window_end(conn: &Connection, f: &RequestFilter) -> Result<Option<(i64, i64)>, StoreError> {
    let mut params = Vec::new();
    let indexed = indexed_part(f, &mut params);
    params.push(Value::Integer(WINDOW as i64 - 1));
    let sql = format!(
        "SELECT ts, rowid FROM usage_events WHERE {indexed} ORDER BY ts DESC, rowid DESC LIMIT 1 OFFSET ?"
    );
    let mut st = conn.prepare(&sql)?;
    let mut rows = st.query_map(params_from_iter(params), |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.next().transpose()?)
}

impl Store {
    /// The latest requests matching `f`, newest first, `limit` to a page.
    pub fn request_log(&self, f: &RequestFilter, limit: usize) -> Result<RequestPage, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg_usage::request_log(pg, f, limit);
        }
        let limit = limit.max(1);
        let conn = self.conn()?;
        let mut rows = page_rows(&conn, f, limit)?;
        if rows.len() > limit {
            rows.truncate(limit);
            let next = rows.last().map(|r| (r.ts_ms, r.rowid));
            return Ok(RequestPage {
                rows,
                next,
                window_exhausted: false,
            });
        }
        if !f.needs_window() {
            return Ok(RequestPage {
                rows,
                ..RequestPage::default()
            });
        }
        let end = window_end(&conn, f)?;
        Ok(RequestPage {
            rows,
            next: end,
            window_exhausted: end.is_some(),
        })
    }
}

#[cfg(test)]
mod tests;
