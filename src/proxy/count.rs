//! Token counting for a model whose upstream cannot count in the client's dialect
//! (CONTRACT section 7): Anthropic's `/v1/messages/count_tokens` for a model on an
//! OpenAI or Gemini upstream, and Gemini's `countTokens` for a model on another kind,
//! are answered here from Tollgate's estimator, with `x-tollgate-estimated: true`.
//! Nothing goes upstream; the request is recorded like any count (no tokens billed).

use bytes::Bytes;
use pingora::proxy::Session;
use pingora::Result;
use serde_json::json;
use tollgate_filters::metering::TokenEstimator;
use tollgate_filters::translate::count::count_tokens_input;
use tollgate_filters::translate::Wire;
use tollgate_filters::upstream::ProviderKind;
use tollgate_filters::{Endpoint, GatewayError, RequestCtx};

use super::{refuse, respond};
use crate::usage::estimate::text_tokens;
use crate::usage::Estimator;

/// The header saying a count is Tollgate's estimate.
pub const ESTIMATED_HEADER: &str = "x-tollgate-estimated";

/// Tokens counted per image: a tokenizer cannot see them (Anthropic bills about
/// width x height / 750, up to ~1600 for the largest image it keeps whole).
const IMAGE_TOKENS: u64 = 1_600;

/// Whether the routed upstream cannot answer the client's count request itself.
pub fn answered_here(ctx: &RequestCtx) -> bool {
    let Some(kind) = ctx.upstream().map(|u| u.kind) else {
        return false;
    };
    match ctx.endpoint {
        Some(Endpoint::CountTokens) => kind != ProviderKind::Anthropic,
        Some(Endpoint::GeminiCountTokens { .. }) => kind != ProviderKind::Gemini,
        _ => false,
    }
}

fn wire_of(kind: ProviderKind) -> Wire {
    match kind {
        ProviderKind::OpenAi => Wire::Chat,
        ProviderKind::Anthropic => Wire::Messages,
        ProviderKind::Gemini => Wire::Gemini,
    }
}

/// The estimated count in the client's dialect; `Ok(true)`: the response is written.
pub async fn answer(session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
    let model = ctx
        .route
        .as_ref()
        .map(|r| r.served_model.clone())
        .unwrap_or_default();
    let kind = ctx.upstream().map_or(ProviderKind::OpenAi, |u| u.kind);
    let doc = match ctx.endpoint {
        Some(Endpoint::CountTokens) => match count_tokens_input(&ctx.body, wire_of(kind)) {
            Ok(c) => {
                let n = text_tokens(&model, &c.text) + u64::from(c.images) * IMAGE_TOKENS;
                json!({ "input_tokens": n })
            }
            Err(e) => return refuse(session, ctx, GatewayError::from(e), true).await,
        },
        _ => json!({ "totalTokens": Estimator.input_tokens(&model, &ctx.body) }),
    };
    let body = Bytes::from(doc.to_string());
    let extra = [(ESTIMATED_HEADER, "true".to_owned())];
    respond::send_json(session, ctx, 200, body, &extra, true).await?;
    Ok(true)
}
