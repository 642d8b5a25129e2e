//! `/ui/upstreams` (admins): each configured upstream's health-check state and the
//! circuit of each of its keys (live, from the router in force), today's requests and
//! errors (rollups), and the latest failed requests (the request log, errors only).

use http::Response;
use maud::{html, Markup};
use tollgate_filters::circuit::CircuitState;
use tollgate_filters::clock::system_clock;
use tollgate_filters::upstream::UpstreamTarget;

use super::http::html;
use super::layout::{count, page, percent, time, Nav};
use super::viewer::Viewer;
use crate::admin::{blocking, AdminApp, ApiError};
use crate::store::{DayRange, GroupBy, RequestFilter, StatusFilter, StoreError, Totals};

/// Failed requests listed.
const RECENT_ERRORS: usize = 20;

fn circuits(u: &UpstreamTarget) -> Markup {
    html! {
        @for (i, slot) in u.slots().iter().enumerate() {
            @let (text, class) = match slot.circuit.state() {
                CircuitState::Closed => ("closed", "status-ok"),
                CircuitState::Open => ("open", "status-bad"),
                CircuitState::HalfOpen => ("half-open", "status-bad"),
            };
            span class=(class) { "key " (i + 1) ": " (text) } br;
        }
    }
}

fn upstream_row(u: &UpstreamTarget, today: Option<&Totals>) -> Markup {
    let scheme = if u.tls { "https" } else { "http" };
    let (requests, errors) = today.map_or((0, 0), |t| (t.usage.requests, t.errors));
    html! {
        tr data-testid="upstream-row" {
            td { (u.name) }
            td { (u.kind.as_str()) }
            td { code { (scheme) "://" (u.host) ":" (u.port) (u.base_path) } }
            td.num { (u.keys.len()) }
            td { @match &u.health_check {
                None => span.muted { "no check" },
                Some(h) => {
                    @if u.is_healthy() { span.status-ok { "up" } } @else { span.status-bad { "down" } }
                    " (" (h.path) " every " (h.interval.as_secs()) " s)"
                },
            } }
            td { (circuits(u)) }
            td.num { (count(requests)) }
            td.num { (count(errors)) " (" (percent(errors, requests)) ")" }
        }
    }
}

impl AdminApp {
    /// `GET /ui/upstreams`
    pub(crate) async fn upstreams_page(
        &self,
        viewer: &Viewer,
    ) -> Result<Response<Vec<u8>>, ApiError> {
        let config = self.live.current();
        let store = self.store.clone();
        let today = system_clock().div_euclid(86_400);
        let (by_upstream, recent) = blocking(move || {
            let by = store.rollup_report(GroupBy::Upstream, DayRange::days(today, today), None)?;
            let errors = RequestFilter {
                status: StatusFilter::Errors,
                ..RequestFilter::default()
            };
            Ok::<_, StoreError>((by, store.request_log(&errors, RECENT_ERRORS)?))
        })
        .await?;
        let body = html! {
            table {
                thead { tr {
                    th { "Upstream" } th { "Kind" } th { "Base URL" } th.num { "Keys" } th { "Health" }
                    th { "Circuits" } th.num { "Requests today" } th.num { "Errors today" }
                } }
                tbody { @for u in &config.upstreams {
                    (upstream_row(u, by_upstream.iter().find(|t| t.usage.group == u.name)))
                } }
            }
            h2 { "Latest failed requests" }
            @if recent.rows.is_empty() { p.muted { "None among the latest requests." } } @else {
                table {
                    thead { tr { th { "Time (UTC)" } th { "Upstream" } th { "Model" } th.num { "Status" } th { "Key" } th.num { "Total ms" } } }
                    tbody { @for r in &recent.rows { tr {
                        td { (time(r.ts_ms.div_euclid(1000))) }
                        td { (r.upstream.as_deref().unwrap_or("-")) }
                        td { (r.model_served.as_deref().or(r.model_requested.as_deref()).unwrap_or("-")) }
                        td.num.status-bad { (r.status) }
                        td { code { (r.key_id.as_deref().unwrap_or("-")) } }
                        td.num { (r.total_ms) }
                    } } }
                }
            }
        };
        Ok(html(200, page(viewer, Nav::Upstreams, "Upstreams", body)))
    }
}
