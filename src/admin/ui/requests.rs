//! `/ui/requests`: the latest requests, newest first, with filters (user, key, model,
//! upstream, errors) and "older" paging; while its box is ticked the page fetches its
//! own rows again every few seconds (`?fragment=rows` answers just the rows). A member
//! sees their own requests.

use http::Response;
use maud::{html, Markup};

use super::http::{html, query};
use super::layout::{count, page, time, usd, Nav};
use super::viewer::Viewer;
use crate::admin::{blocking, AdminApp, ApiError, Req};
use crate::store::{RequestFilter, RequestPage, RequestRow, StatusFilter, StoreError};

/// Rows on a page.
const PAGE: usize = 50;

/// The filters as typed (kept to fill the form and the links again).
#[derive(Default)]
struct Typed {
    user: String,
    key: String,
    model: String,
    upstream: String,
    status: String,
}

impl Typed {
    fn of(req: &Req, viewer: &Viewer) -> Typed {
        let p = |n: &str| req.param(n).unwrap_or_default();
        Typed {
            // A member's log is their own whatever the query says.
            user: if viewer.is_admin() {
                p("user")
            } else {
                String::new()
            },
            key: p("key"),
            model: p("model"),
            upstream: p("upstream"),
            status: p("status"),
        }
    }

    fn pairs<'a>(&'a self, extra: &[(&'a str, &'a str)]) -> String {
        let mut pairs = vec![
            ("user", self.user.as_str()),
            ("key", &self.key),
            ("model", &self.model),
            ("upstream", &self.upstream),
            ("status", &self.status),
        ];
        pairs.extend_from_slice(extra);
        query(&pairs)
    }
}

/// `ts.rowid`
fn parse_cursor(s: &str) -> Option<(i64, i64)> {
    let (ts, rowid) = s.split_once('.')?;
    Some((ts.parse().ok()?, rowid.parse().ok()?))
}

fn status_cell(status: i64) -> Markup {
    let class = if status >= 400 || status == 0 {
        "status-bad"
    } else {
        "status-ok"
    };
    html! { td.num class=(class) { @if status == 0 { "gone" } @else { (status) } } }
}

fn row(r: &RequestRow) -> Markup {
    let dash = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    html! {
        tr data-testid="request-row" data-request-id=(r.request_id) {
            td { (time(r.ts_ms.div_euclid(1000))) }
            td { @if let Some(k) = &r.key_id { code { (k) } } @else { "-" } @if let Some(n) = &r.key_name { br; span.muted { (n) } } }
            td { (dash(&r.username)) }
            td { (dash(&r.model_requested)) }
            td { (dash(&r.model_served)) }
            td { (dash(&r.upstream)) }
            (status_cell(r.status))
            td.num { (count(r.input_tokens.max(0) as u64)) }
            td.num { (count(r.output_tokens.max(0) as u64)) }
            td.num { (count(r.cache_read_tokens.max(0) as u64)) " / " (count(r.cache_write_tokens.max(0) as u64)) }
            td.num { (usd(r.cost_nanos.max(0) as u64)) }
            td.num { @if let Some(t) = r.ttfb_ms { (t) } @else { "-" } }
            td.num { (r.total_ms) }
            td.num { @if let Some(a) = r.attempts { (a) } @else { "-" } }
            td { @if r.estimated { "yes" } @else { "no" } }
            td { @if r.streamed { "stream" } @else { "whole" } }
        }
    }
}

fn rows(page: &RequestPage) -> Markup {
    html! { @for r in &page.rows { (row(r)) } }
}

fn filter_form(t: &Typed, admin: bool) -> Markup {
    html! {
        form.filters method="get" action="/ui/requests" {
            @if admin { label { "User" input name="user" value=(t.user); } }
            label { "Key" input name="key" value=(t.key) placeholder="key id"; }
            label { "Model" input name="model" value=(t.model); }
            label { "Upstream" input name="upstream" value=(t.upstream); }
            label { "Status" select aria-label="Status" name="status" {
                option value="" selected[t.status.is_empty()] { "all" }
                option value="ok" selected[t.status == "ok"] { "below 400" }
                option value="errors" selected[t.status == "errors"] { "400 and above" }
            } }
            button type="submit" { "Filter" }
        }
    }
}

fn render(t: &Typed, p: &RequestPage, first: bool, admin: bool) -> Markup {
    let refresh = format!("/ui/requests?{}", t.pairs(&[("fragment", "rows")]));
    html! {
        (filter_form(t, admin))
        @if first { label.check hidden { input #auto-refresh type="checkbox" checked; " Refresh every 5 s" } }
        div.table-scroll { table {
            thead { tr {
                th { "Time (UTC)" } th { "Key" } th { "User" } th { "Requested" } th { "Served" } th { "Upstream" }
                th.num { "Status" } th.num { "Input" } th.num { "Output" } th.num { "Cache r / w" } th.num { "Cost (USD)" }
                th.num { "TTFB ms" } th.num { "Total ms" } th.num { "Attempts" } th { "Estimated" } th { "Body" }
            } }
            tbody data-refresh=[first.then_some(&refresh)] { (rows(p)) }
        } }
        @if p.rows.is_empty() && !p.window_exhausted { p.muted { "No requests match." } }
        @if p.window_exhausted { p.muted { "No more matches among the " (count(crate::store::REQUEST_WINDOW as u64)) " requests looked at; older ones may match." } }
        div.pager {
            @if !first { a href={ "/ui/requests?" (t.pairs(&[])) } { "Newest" } }
            @if let Some((ts, rowid)) = p.next {
                a href={ "/ui/requests?" (t.pairs(&[("before", &format!("{ts}.{rowid}"))])) } { "Older →" }
            }
        }
    }
}

impl AdminApp {
    /// `GET /ui/requests`
    pub(crate) async fn requests_page(
        &self,
        req: &Req,
        viewer: &Viewer,
    ) -> Result<Response<Vec<u8>>, ApiError> {
        let typed = Typed::of(req, viewer);
        let before = req.param("before").as_deref().and_then(parse_cursor);
        let status = match typed.status.as_str() {
            "ok" => StatusFilter::Ok,
            "errors" => StatusFilter::Errors,
            _ => StatusFilter::Any,
        };
        let mut filter = RequestFilter {
            user_id: viewer.own_user(),
            key_id: Some(typed.key.clone()).filter(|k| !k.is_empty()),
            model: Some(typed.model.clone()).filter(|m| !m.is_empty()),
            upstream: Some(typed.upstream.clone()).filter(|u| !u.is_empty()),
            status,
            before,
        };
        let (store, user) = (self.store.clone(), typed.user.clone());
        let page_rows = blocking(move || {
            if !user.is_empty() {
                match store.user_by_name(&user)? {
                    Some(u) => filter.user_id = Some(u.id),
                    None => return Ok::<_, StoreError>(RequestPage::default()),
                }
            }
            store.request_log(&filter, PAGE)
        })
        .await?;
        if req.param("fragment").as_deref() == Some("rows") {
            return Ok(html(200, rows(&page_rows)));
        }
        let body = render(&typed, &page_rows, before.is_none(), viewer.is_admin());
        Ok(html(200, page(viewer, Nav::Requests, "Requests", body)))
    }
}
