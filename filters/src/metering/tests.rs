//! The metering and include-usage filters driven through their phases with in-crate
//! fakes for the sink and the estimator: each test looks at the event recorded.

use super::*;
use crate::context::{Principal, RouteDecision};
use crate::upstream::UpstreamTarget;
use serde_json::{json, Value};
use std::time::Duration;

fn upstream(kind: ProviderKind) -> Arc<UpstreamTarget> {
    Arc::new(UpstreamTarget::new(
        format!("up-{}", kind.as_str()),
        kind,
        "h".into(),
        80,
        false,
        String::new(),
        vec![],
        Duration::from_secs(1),
        Duration::from_secs(1),
    ))
}

fn routed(kind: ProviderKind, endpoint: Endpoint, body: &str) -> RequestCtx {
    let mut ctx = RequestCtx::new("req-1".into());
    ctx.endpoint = Some(endpoint);
    ctx.body = bytes::Bytes::from(body.to_owned());
    ctx.stream = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("stream").and_then(Value::as_bool))
        .unwrap_or(false);
    ctx.route = Some(RouteDecision {
        served_model: "gpt-4o-mini".into(),
        chain: vec![upstream(kind)],
    });
    ctx
}

async fn inject(body: &str) -> RequestCtx {
    let req = pingora_http::RequestHeader::build("POST", b"/v1/chat/completions", None)
        .unwrap_or_else(|_| unreachable!());
    let mut ctx = routed(ProviderKind::OpenAi, Endpoint::ChatCompletions, body);
    let r = IncludeUsageFilter.on_request(&req, &mut ctx).await;
    assert_eq!(r, Ok(()), "{body}");
    ctx
}

fn sent_options(ctx: &RequestCtx) -> Option<Value> {
    let body = ctx.upstream_body.as_ref()?;
    let v: Value = serde_json::from_slice(body).unwrap_or_default();
    v.get("stream_options").cloned()
}

#[tokio::test]
async fn usage_is_injected_unless_the_client_asked_for_it() {
    for options in [
        "",
        r#","stream_options":null"#,
        r#","stream_options":[]"#,
        r#","stream_options":{}"#,
        r#","stream_options":{"include_usage":false}"#,
        r#","stream_options":{"include_usage":"yes"}"#,
    ] {
        let body = format!(r#"{{"model":"m","stream":true{options}}}"#);
        let ctx = inject(&body).await;
        assert!(ctx.usage_injected, "{body}");
        assert_eq!(
            sent_options(&ctx).and_then(|o| o.get("include_usage").cloned()),
            Some(json!(true)),
            "{body}"
        );
    }
    let ctx =
        inject(r#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#).await;
    assert!(!ctx.usage_injected);
    assert!(
        ctx.upstream_body.is_none(),
        "the client's body goes as it is"
    );
}
