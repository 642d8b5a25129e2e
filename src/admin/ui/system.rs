//! `/ui/system` (admins): version, uptime, store size and events, the usage queue, and
//! the backup download (`GET /admin/backup`'s snapshot, streamed from an unnamed file and
//! audited the same way).

use http::Response;
use maud::html;

use super::http::{harden, html};
use super::layout::{count, page, Nav};
use super::viewer::Viewer;
use crate::admin::{blocking, AdminApp, ApiError, Req};
use crate::store::{DayRange, StoreError};

/// `3 d 4 h 5 min` from seconds.
fn uptime(secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    match (d, h) {
        (0, 0) => format!("{m} min {} s", secs % 60),
        (0, _) => format!("{h} h {m} min"),
        _ => format!("{d} d {h} h {m} min"),
    }
}

/// Bytes as `12.3 MB`.
fn size(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < units.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

impl AdminApp {
    /// `GET /ui/system`
    pub(crate) async fn system_page(&self, viewer: &Viewer) -> Result<Response<Vec<u8>>, ApiError> {
        let store = self.store.clone();
        let (bytes, events) = blocking(move || {
            Ok::<_, StoreError>((store.size_bytes()?, store.rollup_requests(DayRange::all())?))
        })
        .await?;
        let config = self.live.current();
        let postgres = self.store.is_postgres();
        let body = html! {
            dl.figures.card {
                dt { "Version" } dd { "tollgate " (env!("CARGO_PKG_VERSION")) }
                dt { "Uptime" } dd { (uptime(self.ui.started.elapsed().as_secs())) }
                dt { "Store" } dd { (size(bytes)) @if postgres { " (PostgreSQL)" } @else { " (SQLite)" } }
                dt { "Usage events stored" } dd { (count(events)) }
                dt { "Usage queue" } dd { (count(crate::metrics::usage_queue_depth_now().max(0) as u64)) " waiting to be written" }
                @if postgres {
                    dt { "Usage spool" } dd { (count(crate::metrics::usage_spool_events_now())) " waiting for delivery to PostgreSQL" }
                }
                dt { "Usage events dropped" } dd { (count(crate::metrics::usage_events_dropped_now())) }
                dt { "Upstreams, routes" } dd { (config.upstreams.len()) ", " (config.router.route_count()) }
                dt { "Session lifetime" } dd { (self.sessions.ttl_s() / 60) " min" }
            }
            h2 { "Backup" }
            p { a href="/ui/system/backup" download { "Download a backup" } " (a consistent snapshot of the store, as " code { "tollgate backup" } " writes it)." }
        };
        Ok(html(200, page(viewer, Nav::System, "System", body)))
    }

    /// `GET /ui/system/backup`
    pub(crate) async fn backup_download(
        &self,
        req: &Req,
        viewer: &Viewer,
    ) -> Result<Response<Vec<u8>>, ApiError> {
        self.backup(req, &viewer.caller).await.map(harden)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures() {
        assert_eq!(uptime(59), "0 min 59 s");
        assert_eq!(uptime(3_700), "1 h 1 min");
        assert_eq!(uptime(90_061), "1 d 1 h 1 min");
        assert_eq!(size(999), "999 B");
        assert_eq!(size(12_345_678), "12.3 MB");
    }
}
