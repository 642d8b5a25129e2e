//! `GET /admin/audit[?limit=N]`: the admin actions, newest first.

use http::Response;

use super::{blocking, json_response, AdminApp, ApiError, Req};
use crate::commands::format_rfc3339;

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

impl AdminApp {
    pub(crate) async fn list_audit(&self, req: &Req) -> Result<Response<Vec<u8>>, ApiError> {
        let limit = match req.param("limit") {
            None => DEFAULT_LIMIT,
            Some(text) => text
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    ApiError::invalid(format!(
                        "invalid limit '{text}': use a number from 1 to {MAX_LIMIT}"
                    ))
                })?,
        };
        let store = self.store.clone();
        let rows = blocking(move || store.list_audit(limit)).await?;
        let entries: Vec<_> = rows
            .into_iter()
            .map(|r| {
                serde_json::json!({
                    "id": r.id,
                    "time": format_rfc3339(r.ts),
                    "actor": r.actor,
                    "action": r.action,
                    "target": r.target,
                    "source": r.source,
                    "detail": r.detail,
                })
            })
            .collect();
        Ok(json_response(200, serde_json::Value::Array(entries)))
    }
}
