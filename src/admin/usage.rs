//! `GET /admin/usage?by=&since=&until=`: the same document as `tollgate usage --json`;
//! `POST /admin/usage/prune` `{"older_than":"90d"}`: what `tollgate usage prune` does.

use http::Response;
use pingora::protocols::http::ServerSession;

use super::auth::Caller;
use super::{blocking, json_response, parse_json, read_body, AdminApp, ApiError, Req};
use crate::commands::usage::{prune_before_ms, report, usage_document};
use crate::store::GroupBy;

/// The body of `POST /admin/usage/prune`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PruneBody {
    older_than: String,
}

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

impl AdminApp {
    pub(crate) async fn prune_usage(
        &self,
        session: &mut ServerSession,
        req: &Req,
        caller: &Caller,
    ) -> Result<Response<Vec<u8>>, ApiError> {
        let body: PruneBody = parse_json(&read_body(session).await?)?;
        let now = tollgate_filters::clock::system_clock();
        let before_ms = prune_before_ms(&body.older_than, now)?;
        let store = self.store.clone();
        let deleted = blocking(move || store.prune_usage(before_ms)).await?;
        self.audit(
            req,
            &caller.username,
            "usage.prune",
            None,
            serde_json::json!({ "older_than": body.older_than, "deleted": deleted }),
        )
        .await;
        Ok(json_response(
            200,
            serde_json::json!({ "deleted": deleted }),
        ))
    }
}
