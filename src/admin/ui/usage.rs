//! `/ui/usage`: totals grouped by key, user, model, upstream or day over whole UTC
//! days, every token bucket and the cost; `?format=csv` gives the same rows as CSV. The
//! rows come from the rollups and equal `GET /admin/usage` for the same range, whose
//! URL the page shows. A member sees their own usage.

use http::Response;
use maud::{html, Markup};
use tollgate_filters::clock::system_clock;

use super::http::{csv, html, query};
use super::layout::{count, date, page, usd, Nav};
use super::viewer::Viewer;
use crate::admin::{blocking, AdminApp, ApiError, Req};
use crate::commands::usage::parse_rfc3339_ms;
use crate::store::{DayRange, GroupBy, Totals, UsageRow, DAY_MS};

/// The page's question: grouping and days.
struct Query {
    by: GroupBy,
    from: i64,
    to: i64,
}

/// A `YYYY-MM-DD` field as a day number.
fn day_param(req: &Req, name: &str) -> Result<Option<i64>, ApiError> {
    req.param(name)
        .map(|d| {
            parse_rfc3339_ms(&d)
                .map(|ms| ms.div_euclid(DAY_MS))
                .map_err(|_| ApiError::invalid(format!("'{d}' is not a date (use YYYY-MM-DD)")))
        })
        .transpose()
}

impl Query {
    /// From the query string: `by` (default model), `from` and `to` dates (default the
    /// last 30 days).
    fn of(req: &Req, today: i64) -> Result<Query, ApiError> {
        let by_text = req.param("by").unwrap_or_else(|| "model".into());
        let by = GroupBy::parse(&by_text).ok_or_else(|| {
            ApiError::invalid("group by key, user, model, upstream or day".to_owned())
        })?;
        let to = day_param(req, "to")?.unwrap_or(today);
        let from = day_param(req, "from")?.unwrap_or(to - 29);
        if from > to {
            return Err(ApiError::invalid(
                "the range starts after it ends".to_owned(),
            ));
        }
        Ok(Query { by, from, to })
    }

    /// `GET /admin/usage`'s URL for the same figures.
    fn api_url(&self) -> String {
        format!(
            "/admin/usage?by={}&since={}T00:00:00Z&until={}T00:00:00Z",
            self.by.as_str(),
            date(self.from),
            date(self.to + 1)
        )
    }

    fn query_string(&self, extra: &[(&str, &str)]) -> String {
        let (from, to) = (date(self.from), date(self.to));
        let mut pairs = vec![("by", self.by.as_str()), ("from", &from), ("to", &to)];
        pairs.extend_from_slice(extra);
        query(&pairs)
    }
}

/// A CSV cell: quoted when needed, and a leading `=`, `+`, `-` or `@` defused so a
/// spreadsheet never runs a client-chosen model name as a formula.
fn cell(s: &str) -> String {
    let risky = s.len() > 1 && s.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let s = if risky { format!("'{s}") } else { s.to_owned() };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

fn csv_body(by: GroupBy, rows: &[UsageRow]) -> String {
    let mut out = format!(
        "{},requests,input_tokens,output_tokens,cache_read_tokens,cache_write_tokens,reasoning_tokens,estimated_requests,cost_usd\n",
        by.as_str()
    );
    for r in rows {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{}\n",
            cell(&r.group),
            r.requests,
            r.input_tokens,
            r.output_tokens,
            r.cache_read_tokens,
            r.cache_write_tokens,
            r.reasoning_tokens,
            r.estimated_requests,
            usd(r.cost_nanos)
        ));
    }
    out
}

fn figures(u: &UsageRow) -> Markup {
    html! {
        td.num { (count(u.requests)) } td.num { (count(u.input_tokens)) } td.num { (count(u.output_tokens)) }
        td.num { (count(u.cache_read_tokens)) } td.num { (count(u.cache_write_tokens)) }
        td.num { (count(u.reasoning_tokens)) } td.num { (count(u.estimated_requests)) } td.num { (usd(u.cost_nanos)) }
    }
}

fn sum(rows: &[Totals]) -> UsageRow {
    rows.iter().fold(UsageRow::default(), |mut s, t| {
        let u = &t.usage;
        s.requests += u.requests;
        s.input_tokens += u.input_tokens;
        s.output_tokens += u.output_tokens;
        s.cache_read_tokens += u.cache_read_tokens;
        s.cache_write_tokens += u.cache_write_tokens;
        s.reasoning_tokens += u.reasoning_tokens;
        s.estimated_requests += u.estimated_requests;
        s.cost_nanos += u.cost_nanos;
        s
    })
}

fn filter_form(q: &Query) -> Markup {
    let option =
        |by: GroupBy| html! { option value=(by.as_str()) selected[q.by == by] { (by.as_str()) } };
    html! {
        form.filters method="get" action="/ui/usage" {
            label { "Group by" select aria-label="Group by" name="by" data-autosubmit {
                @for by in [GroupBy::Model, GroupBy::Key, GroupBy::User, GroupBy::Upstream, GroupBy::Day] { (option(by)) }
            } }
            label { "From" input type="date" name="from" value=(date(q.from)); }
            label { "To" input type="date" name="to" value=(date(q.to)); }
            button type="submit" { "Show" }
            a href={ "/ui/usage?" (q.query_string(&[("format", "csv")])) } { "Download CSV" }
        }
    }
}

fn render(q: &Query, rows: &[Totals], own: bool) -> Markup {
    html! {
        (filter_form(q))
        p.muted { "Whole UTC days " (date(q.from)) " to " (date(q.to)) "; the same figures as "
            code { (q.api_url()) } @if own { " restricted to your own usage" } "." }
        div.table-scroll { table {
            thead { tr {
                th { (q.by.as_str()) } th.num { "Requests" } th.num { "Input" } th.num { "Output" }
                th.num { "Cache read" } th.num { "Cache write" } th.num { "Reasoning" } th.num { "Estimated" } th.num { "Cost (USD)" }
            } }
            tbody { @for t in rows {
                tr data-testid="usage-row" data-group=(t.usage.group) { td { code { (t.usage.group) } } (figures(&t.usage)) }
            } }
            tfoot { tr data-testid="usage-total" { td { "Total" } (figures(&sum(rows))) } }
        } }
        @if rows.is_empty() { p.muted { "No usage in this range." } }
    }
}

impl AdminApp {
    /// `GET /ui/usage[?by=&from=&to=&format=csv]`
    pub(crate) async fn usage_page(
        &self,
        req: &Req,
        viewer: &Viewer,
    ) -> Result<Response<Vec<u8>>, ApiError> {
        let q = Query::of(req, system_clock().div_euclid(86_400))?;
        let (store, user, by, days) = (
            self.store.clone(),
            viewer.own_user(),
            q.by,
            DayRange::days(q.from, q.to),
        );
        let rows = blocking(move || store.rollup_report(by, days, user)).await?;
        if req.param("format").as_deref() == Some("csv") {
            let usage: Vec<UsageRow> = rows.into_iter().map(|t| t.usage).collect();
            let name = format!(
                "usage-by-{}-{}-{}.csv",
                q.by.as_str(),
                date(q.from),
                date(q.to)
            );
            return Ok(csv(&name, csv_body(q.by, &usage)));
        }
        let body = render(&q, &rows, viewer.own_user().is_some());
        Ok(html(200, page(viewer, Nav::Usage, "Usage and costs", body)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_defused() {
        assert_eq!(cell("gpt-4o"), "gpt-4o");
        assert_eq!(cell("-"), "-");
        assert_eq!(cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(cell("@sum"), "'@sum");
        assert_eq!(cell("a,b"), "\"a,b\"");
        let rows = [UsageRow {
            group: "m".into(),
            requests: 2,
            cost_nanos: 1_500,
            ..UsageRow::default()
        }];
        assert_eq!(
            csv_body(GroupBy::Model, &rows).lines().nth(1),
            Some("m,2,0,0,0,0,0,0,0.0000015")
        );
    }
}
