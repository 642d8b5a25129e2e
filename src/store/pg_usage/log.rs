//! The dashboard's request log on PostgreSQL: the SQLite queries of
//! `store::request_log` (keyset paging on `(ts, id)`, a [`WINDOW`] for the filters no
//! index serves) with the event's `id` in the place of SQLite's rowid.

use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, Row};

use crate::store::{
    RequestFilter, RequestPage, RequestRow, StatusFilter, REQUEST_WINDOW as WINDOW,
};

type Params = Vec<Box<dyn ToSql + Sync + Send>>;

/// Appends a parameter; its placeholder.
fn bind(params: &mut Params, v: impl ToSql + Sync + Send + 'static) -> String {
    params.push(Box::new(v));
    format!("${}", params.len())
}

fn needs_window(f: &RequestFilter) -> bool {
    f.model.is_some() || f.upstream.is_some() || f.status != StatusFilter::Any
}

fn indexed_part(f: &RequestFilter, params: &mut Params) -> String {
    let mut clauses = vec!["true".to_owned()];
    if let Some(key) = &f.key_id {
        let (a, b) = (bind(params, key.clone()), bind(params, key.clone()));
        clauses.push(format!(
            "user_id = (SELECT user_id FROM api_keys WHERE id = {a}) AND key_id = {b}"
        ));
    }
    if let Some(user) = f.user_id {
        clauses.push(format!("user_id = {}", bind(params, user)));
    }
    if let Some((ts, id)) = f.before {
        let (a, b) = (bind(params, ts), bind(params, id));
        clauses.push(format!("(ts, id) < ({a}, {b})"));
    }
    clauses.join(" AND ")
}

fn residual_part(f: &RequestFilter, params: &mut Params) -> String {
    let mut clauses = vec!["true".to_owned()];
    if let Some(m) = &f.model {
        let p = bind(params, m.clone());
        clauses.push(format!(
            "COALESCE(e.model_served, e.model_requested, '-') = {p}"
        ));
    }
    if let Some(u) = &f.upstream {
        let p = bind(params, u.clone());
        clauses.push(format!("COALESCE(e.upstream, '-') = {p}"));
    }
    match f.status {
        StatusFilter::Any => {}
        StatusFilter::Ok => clauses.push("e.status < 400".into()),
        StatusFilter::Errors => clauses.push("e.status >= 400".into()),
    }
    clauses.join(" AND ")
}

const COLUMNS: &str = "e.id, e.request_id, e.ts, e.key_id, k.name, u.username, e.upstream, e.model_requested, \
     e.model_served, e.endpoint, e.streamed, e.status, e.input_tokens, e.output_tokens, e.cache_read_tokens, \
     e.cache_write_tokens, e.reasoning_tokens, e.estimated, e.cost_nanos, e.ttfb_ms, e.total_ms, e.attempts";

fn request_row(r: &Row) -> Result<RequestRow, tokio_postgres::Error> {
    Ok(RequestRow {
        rowid: r.try_get(0)?,
        request_id: r.try_get(1)?,
        ts_ms: r.try_get(2)?,
        key_id: r.try_get(3)?,
        key_name: r.try_get(4)?,
        username: r.try_get(5)?,
        upstream: r.try_get(6)?,
        model_requested: r.try_get(7)?,
        model_served: r.try_get(8)?,
        endpoint: r.try_get(9)?,
        streamed: r.try_get(10)?,
        status: r.try_get(11)?,
        input_tokens: r.try_get(12)?,
        output_tokens: r.try_get(13)?,
        cache_read_tokens: r.try_get(14)?,
        cache_write_tokens: r.try_get(15)?,
        reasoning_tokens: r.try_get(16)?,
        estimated: r.try_get(17)?,
        cost_nanos: r.try_get(18)?,
        ttfb_ms: r.try_get(19)?,
        total_ms: r.try_get(20)?,
        attempts: r.try_get(21)?,
    })
}

async fn query(
    c: &impl GenericClient,
    sql: &str,
    params: &Params,
) -> Result<Vec<Row>, tokio_postgres::Error> {
    let refs: Vec<&(dyn ToSql + Sync)> =
        params.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect();
    c.query(sql, &refs).await
}

async fn page_rows(
    c: &impl GenericClient,
    f: &RequestFilter,
    limit: usize,
) -> Result<Vec<RequestRow>, tokio_postgres::Error> {
    let mut params = Params::new();
    let indexed = indexed_part(f, &mut params);
    let take = if needs_window(f) { WINDOW } else { limit + 1 };
    let source = format!(
        "(SELECT id AS rid, ts FROM usage_events WHERE {indexed} ORDER BY ts DESC, id DESC LIMIT {take}) w \
         JOIN usage_events e ON e.id = w.rid"
    );
    let residual = residual_part(f, &mut params);
    let sql = format!(
        "SELECT {COLUMNS} FROM {source} LEFT JOIN api_keys k ON k.id = e.key_id LEFT JOIN users u ON u.id = e.user_id \
         WHERE {residual} ORDER BY w.ts DESC, w.rid DESC LIMIT {}",
        limit + 1
    );
    query(c, &sql, &params)
        .await?
        .iter()
        .map(request_row)
        .collect()
}

async fn window_end(
    c: &impl GenericClient,
    f: &RequestFilter,
) -> Result<Option<(i64, i64)>, tokio_postgres::Error> {
    let mut params = Params::new();
    let indexed = indexed_part(f, &mut params);
    let sql = format!(
        "SELECT ts, id FROM usage_events WHERE {indexed} ORDER BY ts DESC, id DESC LIMIT 1 OFFSET {}",
        WINDOW - 1
    );
    let rows = query(c, &sql, &params).await?;
    rows.first()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .transpose()
}

/// The latest requests matching `f`, newest first, `limit` to a page.
pub(super) async fn request_log(
    c: &impl GenericClient,
    f: &RequestFilter,
    limit: usize,
) -> Result<RequestPage, tokio_postgres::Error> {
    let limit = limit.max(1);
    let mut rows = page_rows(c, f, limit).await?;
    if rows.len() > limit {
        rows.truncate(limit);
        let next = rows.last().map(|r| (r.ts_ms, r.rowid));
        return Ok(RequestPage {
            rows,
            next,
            window_exhausted: false,
        });
    }
    if !needs_window(f) {
        return Ok(RequestPage {
            rows,
            ..RequestPage::default()
        });
    }
    let end = window_end(c, f).await?;
    Ok(RequestPage {
        rows,
        next: end,
        window_exhausted: end.is_some(),
    })
}
