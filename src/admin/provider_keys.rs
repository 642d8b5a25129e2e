//! `GET/PUT/DELETE /admin/provider-keys/{upstream}[?user=NAME]`: provider secrets stored
//! encrypted, global or per user. A stored key is never shown again: GET tells only
//! whether one is set and when. The key's checks are the CLI's
//! ([`crate::commands::provider_keys::parse_provider_key`]).

use http::Response;
use pingora::protocols::http::ServerSession;
use serde::Deserialize;
use tollgate_filters::clock::system_clock;

use super::auth::Caller;
use super::{blocking, json_response, parse_secret_json, read_body, AdminApp, ApiError, Req};
use crate::commands::format_rfc3339;
use crate::commands::provider_keys::parse_provider_key;
use crate::store::ProviderKeyStatus;
use tollgate_filters::Secret;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyBody {
    key: String,
}

/// The document every provider-key endpoint answers with.
fn status_json(
    upstream: &str,
    user: Option<&str>,
    s: Option<ProviderKeyStatus>,
) -> serde_json::Value {
    serde_json::json!({
        "upstream": upstream,
        "user": user,
        "set": s.is_some(),
        "created_at": s.map(|s| format_rfc3339(s.created_at)),
        "updated_at": s.map(|s| format_rfc3339(s.updated_at)),
    })
}

impl AdminApp {
    /// 404 unless `upstream` is one of the config in force.
    fn known_upstream(&self, upstream: &str) -> Result<(), ApiError> {
        let config = self.live.current();
        if config.has_upstream(upstream) {
            return Ok(());
        }
        let names = config.upstream_names();
        Err(ApiError::not_found(format!(
            "unknown upstream '{upstream}': the config defines {}",
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        )))
    }

    pub(crate) async fn provider_key_status(
        &self,
        req: &Req,
        upstream: &str,
    ) -> Result<Response<Vec<u8>>, ApiError> {
        self.known_upstream(upstream)?;
        let user = req.param("user");
        let store = self.store.clone();
        let (up, u) = (upstream.to_owned(), user.clone());
        let status = blocking(move || store.provider_key_status(&up, u.as_deref())).await?;
        Ok(json_response(
            200,
            status_json(upstream, user.as_deref(), status),
        ))
    }

    pub(crate) async fn set_provider_key(
        &self,
        session: &mut ServerSession,
        req: &Req,
        caller: &Caller,
        upstream: &str,
    ) -> Result<Response<Vec<u8>>, ApiError> {
        self.known_upstream(upstream)?;
        let user = req.param("user");
        let body = read_body(session).await?;
        let b: KeyBody = parse_secret_json(&body, "{\"key\": \"...\"}")?;
        let secret = parse_provider_key(b.key.as_bytes())?;
        let status = self
            .set_provider_key_as(req, caller, upstream, user.clone(), secret)
            .await?;
        Ok(json_response(
            200,
            status_json(upstream, user.as_deref(), status),
        ))
    }

    /// Stores `secret` for `upstream` and `user` (`None`: global) on behalf of `caller`
    /// (the API's and the dashboard's way): used from the next request, audited.
    pub(crate) async fn set_provider_key_as(
        &self,
        req: &Req,
        caller: &Caller,
        upstream: &str,
        user: Option<String>,
        secret: Secret,
    ) -> Result<Option<ProviderKeyStatus>, ApiError> {
        self.known_upstream(upstream)?;
        let (store, crypto) = (self.store.clone(), self.crypto.clone());
        let (up, u) = (upstream.to_owned(), user.clone());
        let status = blocking(move || {
            // A deleted user's row still exists; no key is stored for it.
            if let Some(name) = u.as_deref() {
                if store.user_by_name(name)?.is_none() {
                    return Err(crate::store::StoreError::UnknownUser(name.to_owned()));
                }
            }
            let before = store.provider_key_status(&up, u.as_deref())?;
            store.set_provider_key(&crypto, &up, u.as_deref(), &secret, system_clock())?;
            Ok::<_, crate::store::StoreError>((
                before.is_some(),
                store.provider_key_status(&up, u.as_deref())?,
            ))
        })
        .await;
        let (replaced, status) = status?;
        // Used from the next request on, not the next periodic refresh.
        self.refresh_provider_keys().await;
        self.audit(
            req,
            &caller.username,
            "provider_key.set",
            Some(upstream),
            serde_json::json!({ "upstream": upstream, "user": user, "replaced": replaced }),
        )
        .await;
        Ok(status)
    }

    pub(crate) async fn delete_provider_key(
        &self,
        req: &Req,
        caller: &Caller,
        upstream: &str,
    ) -> Result<Response<Vec<u8>>, ApiError> {
        let user = req.param("user");
        let deleted = self
            .delete_provider_key_as(req, caller, upstream, user.clone())
            .await?;
        Ok(json_response(
            200,
            serde_json::json!({ "upstream": upstream, "user": user, "deleted": deleted }),
        ))
    }

    /// Deletes the key of `upstream` and `user` (`None`: global) on behalf of `caller`,
    /// audited; whether there was one.
    pub(crate) async fn delete_provider_key_as(
        &self,
        req: &Req,
        caller: &Caller,
        upstream: &str,
        user: Option<String>,
    ) -> Result<bool, ApiError> {
        self.known_upstream(upstream)?;
        let store = self.store.clone();
        let (up, u) = (upstream.to_owned(), user.clone());
        let deleted = blocking(move || store.delete_provider_key(&up, u.as_deref())).await?;
        self.refresh_provider_keys().await;
        self.audit(
            req,
            &caller.username,
            "provider_key.delete",
            Some(upstream),
            serde_json::json!({ "upstream": upstream, "user": user, "deleted": deleted }),
        )
        .await;
        Ok(deleted)
    }
}
