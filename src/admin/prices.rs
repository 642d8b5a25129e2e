//! `GET /admin/prices`, `PUT/DELETE /admin/prices/{pattern}` (the pattern percent-decoded
//! from the path: `claude-sonnet-4*` or `claude-sonnet-4%2A`). The body of a price is a
//! [`PriceSet`], the type `tollgate price set` fills and the store checks.

use http::Response;
use pingora::protocols::http::ServerSession;
use tollgate_filters::clock::system_clock;
use tollgate_filters::usage::Price;

use super::auth::Caller;
use super::{blocking, json_response, parse_json, read_body, AdminApp, ApiError, Req};
use crate::changes::Changes;
use crate::commands::prices::{no_override, price_json, row_json};
use crate::store::PriceSet;

impl AdminApp {
    /// The prices in force in this gateway, each row with its source.
    pub(crate) fn list_prices(&self) -> Response<Vec<u8>> {
        let rows = self.live.price_rows();
        json_response(
            200,
            serde_json::Value::Array(rows.iter().map(row_json).collect()),
        )
    }

    pub(crate) async fn set_price(
        &self,
        session: &mut ServerSession,
        req: &Req,
        caller: &Caller,
        pattern: &str,
    ) -> Result<Response<Vec<u8>>, ApiError> {
        let body = read_body(session).await?;
        let set: PriceSet = parse_json(&body)?;
        let price = self.set_price_as(req, caller, pattern, set).await?;
        let mut doc = price_json(pattern, &price);
        doc["source"] = "store".into();
        Ok(json_response(200, doc))
    }

    /// Sets the override of `pattern` for `caller` (the API's and the dashboard's
    /// way in): checked, stored, in force everywhere, audited.
    pub(crate) async fn set_price_as(
        &self,
        req: &Req,
        caller: &Caller,
        pattern: &str,
        set: PriceSet,
    ) -> Result<Price, ApiError> {
        let store = self.store.clone();
        let owned = pattern.to_owned();
        let (price, replaced) =
            blocking(move || store.set_price(&owned, &set, system_clock())).await?;
        // In force here and on every other gateway from the very next request.
        self.changes.publish(Changes::PRICES).await;
        let mut detail = price_json(pattern, &price);
        detail["replaced"] = replaced.into();
        self.audit(req, &caller.username, "price.set", Some(pattern), detail)
            .await;
        Ok(price)
    }

    pub(crate) async fn delete_price(
        &self,
        req: &Req,
        caller: &Caller,
        pattern: &str,
    ) -> Result<Response<Vec<u8>>, ApiError> {
        self.delete_price_as(req, caller, pattern).await?;
        Ok(json_response(
            200,
            serde_json::json!({ "pattern": pattern, "deleted": true }),
        ))
    }

    /// Deletes the override of `pattern` for `caller` (404 when there is none).
    pub(crate) async fn delete_price_as(
        &self,
        req: &Req,
        caller: &Caller,
        pattern: &str,
    ) -> Result<(), ApiError> {
        let store = self.store.clone();
        let owned = pattern.to_owned();
        if !blocking(move || store.delete_price(&owned)).await? {
            return Err(ApiError::not_found(no_override(pattern)));
        }
        self.changes.publish(Changes::PRICES).await;
        self.audit(
            req,
            &caller.username,
            "price.delete",
            Some(pattern),
            serde_json::json!({}),
        )
        .await;
        Ok(())
    }
}
