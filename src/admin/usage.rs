//! `GET /admin/usage?by=&since=&until=`: the same document as `tollgate usage --json`.

use http::Response;

use super::{blocking, json_response, AdminApp, ApiError, Req};
use crate::commands::usage::{report, usage_document};
use crate::store::GroupBy;

impl AdminApp {
    pub(crate) async fn usage(&self, req: &Req) -> Result<Response<Vec<u8>>, ApiError> {
        let by_text = req.param("by").unwrap_or_else(|| "model".into());
        let by = GroupBy::parse(&by_text).ok_or_else(|| {
            ApiError::invalid(format!(
                "invalid by '{by_text}': use key, user, model, upstream or day"
            ))
        })?;
        let (since, until) = (req.param("since"), req.param("until"));
        let store = self.store.clone();
        let (s, u) = (since.clone(), until.clone());
        let rows = blocking(move || report(&store, by, s.as_deref(), u.as_deref())).await?;
        Ok(json_response(
            200,
            usage_document(by, since.as_deref(), until.as_deref(), &rows),
        ))
    }
}
