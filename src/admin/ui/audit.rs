//! `/ui/audit` (admins): the latest admin actions: who, what, when, from where.

use http::Response;
use maud::html;

use super::http::html;
use super::layout::{page, time, Nav};
use super::viewer::Viewer;
use crate::admin::{blocking, AdminApp, ApiError};

/// Entries shown.
const LIMIT: u32 = 200;

impl AdminApp {
    /// `GET /ui/audit`
    pub(crate) async fn audit_page(&self, viewer: &Viewer) -> Result<Response<Vec<u8>>, ApiError> {
        let store = self.store.clone();
        let rows = blocking(move || store.list_audit(LIMIT)).await?;
        let body = html! {
            table {
                thead { tr { th { "Time (UTC)" } th { "Who" } th { "Action" } th { "Target" } th { "From" } th { "Detail" } } }
                tbody { @for r in &rows {
                    tr data-testid="audit-row" {
                        td { (time(r.ts)) }
                        td { (r.actor) }
                        td { code { (r.action) } }
                        td { (r.target.as_deref().unwrap_or("-")) }
                        td { (r.source.as_deref().unwrap_or("-")) }
                        td { code { (r.detail.to_string()) } }
                    }
                } }
            }
            p.muted { "The latest " (LIMIT) " entries; all of them: GET /admin/audit?limit=N." }
        };
        Ok(html(200, page(viewer, Nav::Audit, "Audit log", body)))
    }
}
