//! The model listing the gateway answers itself (README "Using it"): `GET /v1/models`
//! and `GET /v1/models/{id}`, and Gemini's `GET /v1beta/models[/{model}]`, in the shape of
//! the client's dialect (`RequestCtx::dialect`, from `Dialect::of_request`). The list
//! holds the aliases and the exact route names the key may use; one model answers 200
//! for any name a route would take (alias, exact name or pattern match) and the key may
//! use, 404 otherwise.

use bytes::Bytes;
use pingora::proxy::Session;
use pingora::Result;
use tollgate_filters::pattern::{any_matches, ModelPattern};
use tollgate_filters::router::Router;
use tollgate_filters::{Endpoint, GatewayError, RequestCtx};

use super::{refuse, respond, Gateway};

/// Answers a listing endpoint; `Ok(true)`: the response is written.
pub async fn answer(gw: &Gateway, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
    let router = gw.router.load();
    let scopes = ctx
        .principal
        .as_ref()
        .map(|p| p.scopes.as_slice())
        .unwrap_or(&[]);
    let doc = match &ctx.endpoint {
        Some(Endpoint::Model { id }) => one(&router, scopes, ctx, id),
        _ => {
            let query = session.req_header().uri.query();
            Ok(ctx.dialect.model_list(&visible(&router, scopes), query))
        }
    };
    match doc {
        Ok(doc) => {
            let body = Bytes::from(doc.to_string());
            respond::send_json(session, ctx, 200, body, &[], true).await?;
            Ok(true)
        }
        Err(e) => refuse(session, ctx, e, true).await,
    }
}

/// What the list holds for a key with `scopes`: the listed models it may use (a scope may
/// name the alias or the model it stands for).
fn visible(router: &Router, scopes: &[ModelPattern]) -> Vec<String> {
    router
        .listed_models()
        .into_iter()
        .filter(|m| {
            scopes.is_empty() || any_matches(scopes, m) || any_matches(scopes, router.unalias(m))
        })
        .collect()
}

/// One model's document, if a route takes it and the key may use it; else 404, as for a
/// model that does not exist (the key is not told what it cannot use).
fn one(
    router: &Router,
    scopes: &[ModelPattern],
    ctx: &RequestCtx,
    id: &str,
) -> Result<serde_json::Value, GatewayError> {
    ctx.dialect.check_listed_model(id)?;
    let routed = router.resolve(id)?;
    let allowed =
        scopes.is_empty() || any_matches(scopes, id) || any_matches(scopes, &routed.served_model);
    if !allowed {
        return Err(GatewayError::UnknownModel(id.to_owned()));
    }
    Ok(ctx.dialect.model_object(id))
}
