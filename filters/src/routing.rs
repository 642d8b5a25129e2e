//! Routing and model scope: resolves the requested model through aliases and routes,
//! rewrites the body's `model` when an alias changed it, and refuses models outside the
//! key's scope.

use std::sync::Arc;

use bytes::Bytes;
use pingora_http::RequestHeader;

use crate::context::RequestCtx;
use crate::error::GatewayError;
use crate::live::Live;
use crate::pattern::any_matches;
use crate::router::Router;
use crate::Filter;

/// Sets `ctx.route` (and `ctx.upstream_body` for an aliased body model).
pub struct RoutingFilter {
    router: Arc<Live<Router>>,
}

impl RoutingFilter {
    pub fn new(router: Arc<Live<Router>>) -> Self {
        RoutingFilter { router }
    }
}

impl Filter for RoutingFilter {
    fn name(&self) -> &'static str {
        "routing"
    }

    fn phases(&self) -> crate::Phases {
        crate::Phases::REQUEST_SYNC
    }

    fn on_request_sync(
        &self,
        _req: &RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<(), GatewayError> {
        let requested = ctx
            .requested_model
            .as_deref()
            .ok_or(GatewayError::MissingModel)?;
        let decision = self.router.load().resolve(requested)?;
        let body_model = ctx.endpoint.as_ref().is_some_and(|e| e.model_in_body());
        if body_model && decision.served_model != requested {
            ctx.upstream_body = Some(rewrite_model(&ctx.body, &decision.served_model)?);
        }
        ctx.route = Some(decision);
        // Start at the first upstream whose circuit is closed (or probing); when every
        // circuit is open, try the first anyway rather than refuse outright.
        ctx.attempts.start_at(ctx.next_allowed(0).unwrap_or(0));
        Ok(())
    }
}

/// The body with its top-level `model` replaced. Only aliased requests pay for this
/// re-serialisation; others go upstream byte for byte.
fn rewrite_model(body: &[u8], model: &str) -> Result<Bytes, GatewayError> {
    let mut v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| GatewayError::BadJson(e.to_string()))?;
    let obj = v
        .as_object_mut()
        .ok_or_else(|| GatewayError::BadJson("the body must be a JSON object".into()))?;
    obj.insert("model".into(), serde_json::Value::String(model.to_owned()));
    serde_json::to_vec(&v)
        .map(Bytes::from)
        .map_err(|e| GatewayError::Internal(e.to_string()))
}

/// Refuses a model outside the key's scopes. A scope may name either the client-facing
/// name (an alias) or the served model.
pub struct ScopeFilter;

impl Filter for ScopeFilter {
    fn name(&self) -> &'static str {
        "scope"
    }

    fn phases(&self) -> crate::Phases {
        crate::Phases::REQUEST_SYNC
    }

    fn on_request_sync(
        &self,
        _req: &RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<(), GatewayError> {
        let (Some(p), Some(requested)) = (&ctx.principal, &ctx.requested_model) else {
            return Ok(());
        };
        if p.scopes.is_empty() || any_matches(&p.scopes, requested) {
            return Ok(());
        }
        let served = ctx.route.as_ref().map(|r| r.served_model.as_str());
        if served.is_some_and(|s| any_matches(&p.scopes, s)) {
            return Ok(());
        }
        Err(GatewayError::ModelNotAllowed(requested.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{Principal, Role};
    use crate::endpoint::Endpoint;
    use crate::pattern::ModelPattern;
    use crate::router::Route;
    use crate::upstream::{ProviderKind, UpstreamSpec, UpstreamTarget};
    use std::collections::HashMap;

    fn router() -> Arc<Router> {
        let up = Arc::new(UpstreamTarget::new(UpstreamSpec {
            name: "openai".into(),
            kind: ProviderKind::OpenAi,
            host: "h".into(),
            ..UpstreamSpec::default()
        }));
        Arc::new(Router::new(
            HashMap::from([("fast".to_owned(), "gpt-4o-mini".to_owned())]),
            vec![Route {
                models: vec![ModelPattern::parse("gpt-*")],
                chain: vec![up],
            }],
        ))
    }

    async fn route(model: &str, body: &str, scopes: &[&str]) -> Result<RequestCtx, GatewayError> {
        let req = RequestHeader::build("POST", b"/v1/chat/completions", None)
            .map_err(|e| GatewayError::Internal(e.to_string()))?;
        let mut ctx = RequestCtx::new("r".into());
        ctx.endpoint = Some(Endpoint::ChatCompletions);
        ctx.body = Bytes::from(body.to_owned());
        ctx.requested_model = Some(model.into());
        ctx.principal = Some(Arc::new(Principal {
            key_id: "k".into(),
            user_id: 1,
            user: "u".into(),
            role: Role::Member,
            scopes: scopes.iter().map(|s| ModelPattern::parse(s)).collect(),
            expires_at: None,
            revoked_at: None,
            ..Principal::default()
        }));
        RoutingFilter::new(Arc::new(Live::new(Router::clone(&router()))))
            .on_request_sync(&req, &mut ctx)?;
        ScopeFilter.on_request_sync(&req, &mut ctx)?;
        Ok(ctx)
    }

    #[tokio::test]
    async fn alias_rewrites_body_and_plain_names_do_not() {
        let ctx = route("fast", r#"{"model":"fast","stream":true}"#, &[]).await;
        let body = ctx
            .as_ref()
            .ok()
            .and_then(|c| c.upstream_body.clone())
            .unwrap_or_default();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        assert_eq!(v["model"], "gpt-4o-mini");
        assert_eq!(v["stream"], true);
        let ctx = route("gpt-4o", r#"{"model":"gpt-4o"}"#, &[]).await;
        assert!(ctx.is_ok_and(|c| c.upstream_body.is_none()));
    }

    #[tokio::test]
    async fn scope_allows_alias_or_served_name_and_refuses_others() {
        assert!(route("fast", r#"{"model":"fast"}"#, &["gpt-4o-mini"])
            .await
            .is_ok());
        assert!(route("fast", r#"{"model":"fast"}"#, &["fast"])
            .await
            .is_ok());
        let e = route("gpt-4o", r#"{"model":"gpt-4o"}"#, &["gpt-4o-mini*"])
            .await
            .err();
        assert_eq!(e, Some(GatewayError::ModelNotAllowed("gpt-4o".into())));
        let e = route("llama", r#"{"model":"llama"}"#, &[]).await.err();
        assert_eq!(e, Some(GatewayError::UnknownModel("llama".into())));
    }

    #[tokio::test]
    async fn routing_needs_a_model_and_rewrites_only_bodies_that_carry_it() {
        let e = route_ctx(None, Endpoint::ChatCompletions, "{}").await.err();
        assert_eq!(e, Some(GatewayError::MissingModel));
        // A Gemini model is in the path: the body goes as it is.
        let gemini = Endpoint::Gemini {
            model: "fast".into(),
            stream: false,
        };
        let ctx = route_ctx(Some("fast"), gemini, r#"{"contents":[]}"#).await;
        let ctx = ctx.unwrap_or_else(|e| panic!("{e:?}"));
        assert!(ctx.upstream_body.is_none());
        assert_eq!(
            ctx.route.as_ref().map(|r| r.served_model.clone()),
            Some("gpt-4o-mini".to_owned())
        );
        // An aliased body that cannot be rewritten is refused.
        for body in ["{", "[1]"] {
            let e = route_ctx(Some("fast"), Endpoint::ChatCompletions, body).await;
            assert!(matches!(e, Err(GatewayError::BadJson(_))), "{body}: {e:?}");
        }
    }

    async fn route_ctx(
        model: Option<&str>,
        endpoint: Endpoint,
        body: &str,
    ) -> Result<RequestCtx, GatewayError> {
        let req = RequestHeader::build("POST", b"/v1/x", None)
            .map_err(|e| GatewayError::Internal(e.to_string()))?;
        let mut ctx = RequestCtx::new("r".into());
        ctx.endpoint = Some(endpoint);
        ctx.body = Bytes::from(body.to_owned());
        ctx.requested_model = model.map(str::to_owned);
        RoutingFilter::new(Arc::new(Live::new(Router::clone(&router()))))
            .on_request_sync(&req, &mut ctx)?;
        Ok(ctx)
    }

    #[tokio::test]
    async fn routing_starts_at_the_first_upstream_that_can_serve() {
        let ups: Vec<Arc<UpstreamTarget>> = ["a", "b", "c"]
            .iter()
            .map(|n| {
                Arc::new(UpstreamTarget::new(UpstreamSpec {
                    name: (*n).into(),
                    kind: ProviderKind::OpenAi,
                    host: "h".into(),
                    ..UpstreamSpec::default()
                }))
            })
            .collect();
        let r = Router::new(
            HashMap::new(),
            vec![Route {
                models: vec![ModelPattern::parse("*")],
                chain: ups.clone(),
            }],
        );
        let f = RoutingFilter::new(Arc::new(Live::new(r)));
        let req = RequestHeader::build("POST", b"/v1/x", None).unwrap_or_else(|_| unreachable!());
        let attempt = || async {
            let mut ctx = RequestCtx::new("r".into());
            ctx.endpoint = Some(Endpoint::ChatCompletions);
            ctx.requested_model = Some("m".into());
            assert_eq!(f.on_request_sync(&req, &mut ctx), Ok(()));
            ctx.attempts.upstream_index()
        };
        assert_eq!(attempt().await, 0);
        ups[0].set_healthy(false);
        assert_eq!(attempt().await, 1);
        ups[1].set_healthy(false);
        ups[2].set_healthy(false);
        assert_eq!(attempt().await, 0, "none can: the first is tried anyway");
    }

    #[tokio::test]
    async fn scope_passes_requests_without_a_principal_and_names_itself() {
        let req = RequestHeader::build("POST", b"/v1/x", None).unwrap_or_else(|_| unreachable!());
        let mut ctx = RequestCtx::new("r".into());
        ctx.requested_model = Some("anything".into());
        assert_eq!(ScopeFilter.on_request_sync(&req, &mut ctx), Ok(()));
        assert_eq!(ScopeFilter.name(), "scope");
        assert_eq!(ScopeFilter.phases(), crate::Phases::REQUEST_SYNC);
        let f = RoutingFilter::new(Arc::new(Live::new(Router::default())));
        assert_eq!(f.name(), "routing");
        assert_eq!(f.phases(), crate::Phases::REQUEST_SYNC);
    }
}
