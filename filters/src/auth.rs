//! Authentication: finds the caller's gateway key in the request, checks it, and records
//! the principal. The key itself is never kept past this filter, and the upstream filter
//! strips it from what goes upstream.

use std::sync::Arc;

use async_trait::async_trait;
use http::HeaderName;
use pingora_http::RequestHeader;

use crate::context::{KeyLookup, RequestCtx};
use crate::error::GatewayError;
use crate::providers::{anthropic, gemini, openai, Dialect};
use crate::secret::Secret;
use crate::Filter;

/// The clock as unix seconds; a function so tests can pin time.
pub type Clock = fn() -> i64;

/// Checks the gateway key and sets `ctx.principal`.
pub struct AuthFilter {
    keys: Arc<dyn KeyLookup>,
    clock: Clock,
}

impl AuthFilter {
    pub fn new(keys: Arc<dyn KeyLookup>, clock: Clock) -> Self {
        AuthFilter { keys, clock }
    }
}

/// The credential the client presented, whatever the dialect: `Authorization: Bearer`
/// (every current SDK can send it), `x-api-key` (Anthropic), `x-goog-api-key` or the
/// `key` query parameter (Gemini).
pub fn client_credential(req: &RequestHeader, dialect: Dialect) -> Option<Secret> {
    // Looked up by a ready `HeaderName`: a `&str` name is parsed and checked again on
    // every lookup of every request.
    const BEARER: HeaderName = HeaderName::from_static(openai::CREDENTIAL_HEADER);
    const X_API_KEY: HeaderName = HeaderName::from_static(anthropic::CREDENTIAL_HEADER);
    const X_GOOG_API_KEY: HeaderName = HeaderName::from_static(gemini::CREDENTIAL_HEADER);
    let header = |name: HeaderName| {
        req.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    if let Some(v) = header(BEARER) {
        let token = v
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim());
        return token.filter(|t| !t.is_empty()).map(Secret::new);
    }
    if let Some(v) = header(X_API_KEY).or_else(|| header(X_GOOG_API_KEY)) {
        return Some(Secret::new(v));
    }
    let name = dialect.query_credential()?;
    query_param(req.uri.query()?, name).map(Secret::new)
}

/// The first value of `name` in a query string (no percent-decoding: keys need none).
pub fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name && !v.is_empty()).then_some(v)
    })
}

#[async_trait]
impl Filter for AuthFilter {
    fn name(&self) -> &'static str {
        "auth"
    }

    fn phases(&self) -> crate::Phases {
        crate::Phases::REQUEST_HEADER
    }

    async fn on_request_header(
        &self,
        req: &RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<(), GatewayError> {
        let presented = client_credential(req, ctx.dialect).ok_or(GatewayError::MissingKey)?;
        let principal = self
            .keys
            .authenticate(&presented)
            .await
            .ok_or(GatewayError::InvalidKey)?;
        // The clock is read only for a key with a date (most have neither).
        if principal.revoked_at.is_some() || principal.expires_at.is_some() {
            let now = (self.clock)();
            if principal.revoked_at.is_some_and(|t| t <= now) {
                return Err(GatewayError::RevokedKey(principal.key_id.clone()));
            }
            if principal.expires_at.is_some_and(|t| t <= now) {
                return Err(GatewayError::ExpiredKey(principal.key_id.clone()));
            }
        }
        ctx.principal = Some(principal);
        Ok(())
    }
}

#[cfg(test)]
mod credential_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{Principal, Role};

    struct OneKey;

    #[async_trait]
    impl KeyLookup for OneKey {
        async fn authenticate(&self, presented: &Secret) -> Option<Arc<Principal>> {
            let p = |id: &str, exp, rev| {
                Arc::new(Principal {
                    key_id: id.into(),
                    user_id: 1,
                    user: "alice".into(),
                    role: Role::Member,
                    scopes: vec![],
                    expires_at: exp,
                    revoked_at: rev,
                    ..Principal::default()
                })
            };
            match presented.expose() {
                "good" => Some(p("k1", None, None)),
                "old" => Some(p("k2", Some(100), None)),
                "gone" => Some(p("k3", None, Some(50))),
                _ => None,
            }
        }
    }

    async fn run(
        headers: &[(&str, &str)],
        path: &str,
        dialect: Dialect,
    ) -> Result<String, GatewayError> {
        let mut req = RequestHeader::build("POST", path.as_bytes(), None)
            .map_err(|e| GatewayError::Internal(e.to_string()))?;
        for (k, v) in headers {
            req.insert_header(k.to_string(), *v)
                .map_err(|e| GatewayError::Internal(e.to_string()))?;
        }
        let f = AuthFilter::new(Arc::new(OneKey), || 1000);
        let mut ctx = RequestCtx::new("r".into());
        ctx.dialect = dialect;
        f.on_request_header(&req, &mut ctx).await?;
        Ok(ctx
            .principal
            .as_ref()
            .map(|p| p.key_id.clone())
            .unwrap_or_default())
    }

    #[tokio::test]
    async fn every_dialect_credential_form() {
        let oa = Dialect::OpenAi;
        assert_eq!(
            run(&[("authorization", "Bearer good")], "/v1/x", oa).await,
            Ok("k1".into())
        );
        assert_eq!(
            run(&[("x-api-key", "good")], "/v1/messages", Dialect::Anthropic).await,
            Ok("k1".into())
        );
        assert_eq!(
            run(&[("x-goog-api-key", "good")], "/v1beta/x", Dialect::Gemini).await,
            Ok("k1".into())
        );
        assert_eq!(
            run(&[], "/v1beta/x?alt=sse&key=good", Dialect::Gemini).await,
            Ok("k1".into())
        );
        assert_eq!(
            run(&[], "/v1/x?key=good", oa).await,
            Err(GatewayError::MissingKey)
        );
        assert_eq!(
            run(&[("authorization", "Basic good")], "/v1/x", oa).await,
            Err(GatewayError::MissingKey)
        );
        assert_eq!(
            run(&[("authorization", "Bearer bad")], "/v1/x", oa).await,
            Err(GatewayError::InvalidKey)
        );
        assert_eq!(
            run(&[("authorization", "Bearer old")], "/v1/x", oa).await,
            Err(GatewayError::ExpiredKey("k2".into()))
        );
        assert_eq!(
            run(&[("authorization", "Bearer gone")], "/v1/x", oa).await,
            Err(GatewayError::RevokedKey("k3".into()))
        );
    }
}
