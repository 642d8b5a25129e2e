//! `GET/POST /admin/keys`, `PATCH/DELETE /admin/keys/{id}`. The body of a new key is a
//! [`KeyCreate`], the type `tollgate key create` fills and the store checks, so both
//! follow the same rules; its secret is in the creation response and nowhere else, ever.
//! An update's body is a [`KeyUpdate`], the type of `tollgate key update`.

use http::Response;
use pingora::protocols::http::ServerSession;
use tollgate_filters::clock::system_clock;

use super::auth::Caller;
use super::{blocking, json_response, parse_json, read_body, AdminApp, ApiError, Req};
use crate::commands::keys::{key_json, update_detail};
use crate::store::{KeyCreate, KeyRow, KeyUpdate, StoreError};
use tollgate_filters::Secret;

impl AdminApp {
    pub(crate) async fn list_keys(&self, req: &Req) -> Result<Response<Vec<u8>>, ApiError> {
        let store = self.store.clone();
        let user = req.param("user");
        let keys = blocking(move || store.list_keys(user.as_deref())).await?;
        Ok(json_response(
            200,
            serde_json::Value::Array(keys.iter().map(key_json).collect()),
        ))
    }

    pub(crate) async fn create_key(
        &self,
        session: &mut ServerSession,
        req: &Req,
        caller: &Caller,
    ) -> Result<Response<Vec<u8>>, ApiError> {
        let body = read_body(session).await?;
        let new: KeyCreate = parse_json(&body)?;
        let (row, key) = self.create_key_as(req, caller, new).await?;
        let mut doc = key_json(&row);
        doc["key"] = serde_json::Value::String(key.expose().to_owned());
        Ok(json_response(201, doc))
    }

    /// Creates a key on behalf of `caller` (the API's and the dashboard's way), audited;
    /// its row and its secret.
    pub(crate) async fn create_key_as(
        &self,
        req: &Req,
        caller: &Caller,
        new: KeyCreate,
    ) -> Result<(KeyRow, Secret), ApiError> {
        let now = system_clock();
        let (store, hasher) = (self.store.clone(), self.hasher.clone());
        let created = blocking(move || match store.create_key(&hasher, &new, now) {
            // The user is named in the body: bad input rather than a missing resource.
            Err(e @ StoreError::UnknownUser(_)) => Err(ApiError::invalid(e.to_string())),
            other => other.map_err(ApiError::from),
        })
        .await;
        let (row, key) = created?;
        let doc = key_json(&row);
        self.audit(
            req,
            &caller.username,
            "key.create",
            Some(&row.id),
            serde_json::json!({
                "user": doc["user"],
                "name": doc["name"],
                "models": doc["models"],
                "budget_usd": doc["budget_usd"],
                "budget_period": doc["budget_period"],
                "rpm": doc["rpm"],
                "tpm": doc["tpm"],
                "expires_at": doc["expires_at"],
            }),
        )
        .await;
        Ok((row, key))
    }

    pub(crate) async fn update_key(
        &self,
        session: &mut ServerSession,
        req: &Req,
        caller: &Caller,
        id: &str,
    ) -> Result<Response<Vec<u8>>, ApiError> {
        let body = read_body(session).await?;
        let update: KeyUpdate = parse_json(&body)?;
        let row = self.update_key_as(req, caller, id, update).await?;
        Ok(json_response(200, key_json(&row)))
    }

    /// Changes key `id` in place for `caller` (the API's and the dashboard's way in):
    /// checked as a new key, in force from the next request, audited.
    pub(crate) async fn update_key_as(
        &self,
        req: &Req,
        caller: &Caller,
        id: &str,
        update: KeyUpdate,
    ) -> Result<KeyRow, ApiError> {
        let store = self.store.clone();
        let (key_id, u) = (id.to_owned(), update.clone());
        let row = blocking(move || store.update_key(&key_id, &u, system_clock())).await?;
        // In force here and on every other gateway from the very next request.
        self.refresh_keys().await;
        let detail = update_detail(&update, &row);
        self.audit(req, &caller.username, "key.update", Some(&row.id), detail)
            .await;
        Ok(row)
    }

    pub(crate) async fn revoke_key(
        &self,
        req: &Req,
        caller: &Caller,
        id: &str,
    ) -> Result<Response<Vec<u8>>, ApiError> {
        let row = self.revoke_key_as(req, caller, id).await?;
        Ok(json_response(200, key_json(&row)))
    }

    /// Revokes key `id` on behalf of `caller`, refused from the next request, audited.
    pub(crate) async fn revoke_key_as(
        &self,
        req: &Req,
        caller: &Caller,
        id: &str,
    ) -> Result<KeyRow, ApiError> {
        let store = self.store.clone();
        let key_id = id.to_owned();
        let row = blocking(move || {
            store.revoke_key(&key_id, system_clock())?;
            store
                .list_keys(None)?
                .into_iter()
                .find(|k| k.id == key_id)
                .ok_or(StoreError::UnknownKey(key_id))
        })
        .await?;
        // In-memory copy too: refused from the very next request.
        self.refresh_keys().await;
        self.audit(
            req,
            &caller.username,
            "key.revoke",
            Some(&row.id),
            serde_json::json!({ "user": row.user }),
        )
        .await;
        Ok(row)
    }
}
