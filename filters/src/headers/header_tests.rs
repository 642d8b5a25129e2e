//! The upstream header filter beyond the basic swap: which key an attempt sends (the
//! user's own, one stored for the upstream, a configured one, none), keys that are not
//! valid header values, `Content-Length` after a rewrite, when the URI is rebuilt, and
//! the response headers the client never sees.

use super::*;
use crate::context::{Principal, RouteDecision};
use crate::endpoint::Endpoint;
use crate::secret::Secret;
use crate::upstream::{ProviderKind, UpstreamSpec};
use bytes::Bytes;

/// An upstream `up` of `kind` with `base_path` and the configured `keys`.
fn target(kind: ProviderKind, base_path: &str, keys: &[&str]) -> Arc<UpstreamTarget> {
    Arc::new(UpstreamTarget::new(UpstreamSpec {
        name: "up".into(),
        kind,
        host: "api.example.com".into(),
        port: 8443,
        tls: true,
        base_path: base_path.into(),
        keys: keys.iter().map(|k| Secret::new(*k)).collect(),
        ..UpstreamSpec::default()
    }))
}

/// A request of user 7 routed to `up`, for `endpoint`, serving `served`.
fn ctx(up: Arc<UpstreamTarget>, endpoint: Endpoint, served: &str) -> RequestCtx {
    let mut c = RequestCtx::new("rid-2".into());
    c.endpoint = Some(endpoint);
    c.body = Bytes::from_static(b"{\"model\":\"alias\"}");
    c.principal = Some(Arc::new(Principal {
        key_id: "k".into(),
        user_id: 7,
        ..Principal::default()
    }));
    c.route = Some(RouteDecision {
        served_model: served.into(),
        chain: vec![up],
    });
    c
}

fn request(uri: &str, headers: &[(&str, &str)]) -> RequestHeader {
    let mut req =
        RequestHeader::build("POST", uri.as_bytes(), None).unwrap_or_else(|e| panic!("{uri}: {e}"));
    for (k, v) in headers {
        req.insert_header(k.to_string(), *v)
            .unwrap_or_else(|e| panic!("{k}: {e}"));
    }
    req
}

fn header(req: &RequestHeader, name: &str) -> Option<String> {
    req.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Keys users stored: user 7's own for `up` when `own`, one for `up` itself when
/// `shared`.
struct Stored {
    own: Option<&'static str>,
    shared: Option<&'static str>,
}

impl ProviderKeys for Stored {
    fn key_for(&self, user_id: i64, upstream: &str) -> Option<Secret> {
        self.own
            .filter(|_| user_id == 7 && upstream == "up")
            .map(Secret::new)
    }
    fn shared_key_for(&self, upstream: &str) -> Option<Secret> {
        self.shared.filter(|_| upstream == "up").map(Secret::new)
    }
}

fn filter(own: Option<&'static str>, shared: Option<&'static str>) -> UpstreamHeaders {
    UpstreamHeaders::new(Some(Arc::new(Stored { own, shared })))
}

/// The credential header the filter sends, with whether the attempt counts as the
/// user's own key and the key slot it records.
fn sent(
    f: &UpstreamHeaders,
    c: &mut RequestCtx,
) -> Result<(Option<String>, bool, Option<usize>), GatewayError> {
    let mut req = request("/v1/chat/completions", &[("authorization", "Bearer tg_x")]);
    f.on_upstream_request(&mut req, c)?;
    Ok((
        header(&req, "authorization"),
        c.attempts.own_key(),
        c.attempts.key_slot(),
    ))
}

#[test]
fn the_users_own_key_goes_first_then_a_stored_one_then_a_configured_one() {
    let up = || target(ProviderKind::OpenAi, "", &["sk-conf"]);
    let mut c = ctx(up(), Endpoint::ChatCompletions, "m");
    assert_eq!(
        sent(&filter(Some("sk-own"), Some("sk-shared")), &mut c),
        Ok((Some("Bearer sk-own".into()), true, None))
    );
    let mut c = ctx(up(), Endpoint::ChatCompletions, "m");
    assert_eq!(
        sent(&filter(None, Some("sk-shared")), &mut c),
        Ok((Some("Bearer sk-shared".into()), false, None))
    );
    let mut c = ctx(up(), Endpoint::ChatCompletions, "m");
    assert_eq!(
        sent(&filter(None, None), &mut c),
        Ok((Some("Bearer sk-conf".into()), false, Some(0)))
    );
    // Without a principal there is no own key to look for.
    let mut c = ctx(up(), Endpoint::ChatCompletions, "m");
    c.principal = None;
    assert_eq!(
        sent(&filter(Some("sk-own"), None), &mut c),
        Ok((Some("Bearer sk-conf".into()), false, Some(0)))
    );
    // Without a key store the configured keys serve.
    let mut c = ctx(up(), Endpoint::ChatCompletions, "m");
    assert_eq!(
        sent(&UpstreamHeaders::new(None), &mut c),
        Ok((Some("Bearer sk-conf".into()), false, Some(0)))
    );
}

#[test]
fn configured_keys_rotate_and_an_upstream_without_keys_gets_none() {
    let up = target(ProviderKind::Anthropic, "", &["sk-a", "sk-b"]);
    let f = UpstreamHeaders::default();
    let mut got = Vec::new();
    for _ in 0..3 {
        let mut c = ctx(up.clone(), Endpoint::Messages, "m");
        let mut req = request("/v1/messages", &[("x-api-key", "tg_x")]);
        f.on_upstream_request(&mut req, &mut c)
            .unwrap_or_else(|e| panic!("{e}"));
        got.push((header(&req, "x-api-key"), c.attempts.key_slot()));
    }
    let key = |k: &str| Some(k.to_owned());
    assert_eq!(
        got,
        [
            (key("sk-a"), Some(0)),
            (key("sk-b"), Some(1)),
            (key("sk-a"), Some(0))
        ]
    );
    // No key anywhere: the client's credential is still gone and none replaces it.
    let bare = target(ProviderKind::Anthropic, "", &[]);
    let mut c = ctx(bare, Endpoint::Messages, "m");
    let mut req = request("/v1/messages", &[("x-api-key", "tg_x")]);
    f.on_upstream_request(&mut req, &mut c)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(header(&req, "x-api-key"), None);
    assert_eq!(c.attempts.key_slot(), Some(0));
}

#[test]
fn a_key_that_is_not_a_header_value_is_an_internal_error_naming_the_upstream() {
    let refused = Err(GatewayError::Internal(
        "upstream up has a key that is not a valid header value".into(),
    ));
    let bad = target(ProviderKind::OpenAi, "", &["sk-\nbad"]);
    let mut c = ctx(bad, Endpoint::ChatCompletions, "m");
    assert_eq!(sent(&filter(None, None), &mut c), refused);
    let good = target(ProviderKind::OpenAi, "", &["sk-conf"]);
    let mut c = ctx(good, Endpoint::ChatCompletions, "m");
    assert_eq!(sent(&filter(None, Some("sk-\u{7f}")), &mut c), refused);
}

#[test]
fn no_chosen_upstream_is_an_internal_error() {
    let mut c = RequestCtx::new("r".into());
    let mut req = request("/v1/chat/completions", &[]);
    assert_eq!(
        UpstreamHeaders::default().on_upstream_request(&mut req, &mut c),
        Err(GatewayError::Internal("no upstream chosen".into()))
    );
}

#[test]
fn content_length_is_that_of_the_body_sent() {
    let up = target(ProviderKind::OpenAi, "", &["k"]);
    let f = UpstreamHeaders::default();
    // The client's length is kept when it is the body's, replaced when routing rewrote
    // the body.
    let mut c = ctx(up.clone(), Endpoint::ChatCompletions, "m");
    let mut req = request("/v1/chat/completions", &[("content-length", "17")]);
    f.on_upstream_request(&mut req, &mut c)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(header(&req, "content-length").as_deref(), Some("17"));
    let mut c = ctx(up, Endpoint::ChatCompletions, "m");
    c.upstream_body = Some(Bytes::from_static(b"{\"model\":\"served-model\"}"));
    let mut req = request("/v1/chat/completions", &[("content-length", "17")]);
    f.on_upstream_request(&mut req, &mut c)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(header(&req, "content-length").as_deref(), Some("24"));
    assert_eq!(req.headers.get_all("content-length").iter().count(), 1);
    // The body's length in another spelling, or sent twice, is set again: once, canonical.
    for sent in [&["017"][..], &["17", "17"]] {
        let mut c = ctx(
            target(ProviderKind::OpenAi, "", &["k"]),
            Endpoint::ChatCompletions,
            "m",
        );
        let mut req = request("/v1/chat/completions", &[]);
        for v in sent {
            req.append_header("content-length", *v).unwrap();
        }
        f.on_upstream_request(&mut req, &mut c)
            .unwrap_or_else(|e| panic!("{e}"));
        let values: Vec<_> = req.headers.get_all("content-length").iter().collect();
        assert_eq!(values, ["17"], "{sent:?}");
    }
}

/// The upstream URI and `Host` for a client URI.
fn uri_sent(up: Arc<UpstreamTarget>, endpoint: Endpoint, served: &str, uri: &str) -> String {
    let mut c = ctx(up, endpoint, served);
    let mut req = request(uri, &[]);
    UpstreamHeaders::default()
        .on_upstream_request(&mut req, &mut c)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        header(&req, "host").as_deref(),
        Some("api.example.com:8443")
    );
    req.uri.to_string()
}

#[test]
fn the_uri_is_rebuilt_only_when_something_in_it_changes() {
    let oa = || target(ProviderKind::OpenAi, "", &["k"]);
    let chat = || Endpoint::ChatCompletions;
    assert_eq!(
        uri_sent(oa(), chat(), "m", "/v1/chat/completions"),
        "/v1/chat/completions"
    );
    // A key in the query never goes upstream, in any dialect; OpenAI's allow-list is
    // empty, so no other parameter does either.
    assert_eq!(
        uri_sent(
            oa(),
            chat(),
            "m",
            "/v1/chat/completions?key=tg_x&a=1&&key&b=2"
        ),
        "/v1/chat/completions"
    );
    assert_eq!(
        uri_sent(oa(), chat(), "m", "/v1/chat/completions?key=tg_x"),
        "/v1/chat/completions"
    );
    // An absolute-form request line becomes origin-form.
    assert_eq!(
        uri_sent(
            oa(),
            chat(),
            "m",
            "http://gateway.local/v1/chat/completions"
        ),
        "/v1/chat/completions"
    );
    let based = target(ProviderKind::OpenAi, "/openai", &["k"]);
    assert_eq!(
        uri_sent(based, chat(), "m", "/v1/chat/completions?a=1"),
        "/openai/v1/chat/completions"
    );
    // Gemini's path names the served model even without a base path or a query.
    let gemini = target(ProviderKind::Gemini, "", &["k"]);
    let generate = Endpoint::Gemini {
        model: "fast".into(),
        stream: false,
    };
    assert_eq!(
        uri_sent(
            gemini,
            generate,
            "gemini-2.5-pro",
            "/v1beta/models/fast:generateContent"
        ),
        "/v1beta/models/gemini-2.5-pro:generateContent"
    );
}

#[test]
fn upstream_paths_without_a_route_keep_the_clients_path() {
    let mut c = RequestCtx::new("r".into());
    c.dialect = crate::providers::Dialect::Gemini;
    c.endpoint = Some(Endpoint::Gemini {
        model: "fast".into(),
        stream: true,
    });
    assert_eq!(
        upstream_path(&c, "/b", "/v1beta/models/fast:x", Some("alt=sse")),
        "/b/v1beta/models/fast:x?alt=sse"
    );
    assert_eq!(upstream_path(&c, "", "/p", Some("")), "/p");
    assert_eq!(upstream_path(&c, "", "/p", None), "/p");
}

#[test]
fn hop_by_hop_and_cookie_headers_never_reach_the_client() {
    let mut resp = ResponseHeader::build(200, None).unwrap_or_else(|e| panic!("{e}"));
    for name in RESPONSE_DROP {
        let _ = resp.insert_header(*name, "x");
    }
    let _ = resp.insert_header("content-type", "text/event-stream");
    let mut c = RequestCtx::new("rid-3".into());
    let f = UpstreamHeaders::default();
    f.on_response(&mut resp, &mut c)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut left: Vec<String> = resp.headers.keys().map(|k| k.to_string()).collect();
    left.sort();
    assert_eq!(left, ["content-type", REQUEST_ID_HEADER]);
    assert_eq!(f.name(), "upstream_headers");
    assert_eq!(f.phases(), crate::Phases::NONE);
}

/// The head as Pingora's HTTP/1 writer sends it: its fields, in order.
fn wire_request(up: &RequestHeader) -> String {
    let mut buf = Vec::new();
    up.header_to_h1_wire(&mut buf);
    String::from_utf8(buf).unwrap()
}

/// Every field, lowercased name and value, in the order the header holds them.
fn fields(map: &http::HeaderMap) -> Vec<(String, String)> {
    map.iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
        .collect()
}

#[test]
fn a_request_without_name_case_keeps_every_field_value_and_order() {
    let mut up = RequestHeader::build("POST", b"/v1/chat/completions?alt=sse", None).unwrap();
    for (k, v) in [
        ("X-Stainless-Lang", "js"),
        ("Content-Type", "application/json"),
        ("accept", "text/event-stream"),
        ("X-Stainless-Lang", "python"),
        ("idempotency-key", "k1"),
    ] {
        up.append_header(k.to_owned(), v).unwrap();
    }
    let before = fields(&up.headers);
    assert!(wire_request(&up).starts_with("X-Stainless-Lang: js\r\n"));

    drop_name_case_request(&mut up);

    assert!(!up.has_case());
    assert_eq!(fields(&up.headers), before);
    assert_eq!(up.method, http::Method::POST);
    assert_eq!(up.raw_path(), b"/v1/chat/completions?alt=sse");
    // Pingora's spelling: the names it knows titled, the others lowercase; a line each,
    // the values of one name together, as Pingora's header map holds them.
    assert_eq!(
        wire_request(&up),
        "x-stainless-lang: js\r\nx-stainless-lang: python\r\nContent-Type: application/json\r\n\
         accept: text/event-stream\r\nidempotency-key: k1\r\n"
    );
    // Edits after it still work, on the one map left.
    up.insert_header("x-stainless-lang", "rust").unwrap();
    up.remove_header("accept");
    assert_eq!(
        fields(&up.headers),
        [
            ("x-stainless-lang".into(), "rust".into()),
            ("content-type".into(), "application/json".into()),
            ("idempotency-key".into(), "k1".into()),
        ]
    );
    // A second call finds nothing to drop.
    drop_name_case_request(&mut up);
    assert_eq!(fields(&up.headers).len(), 3);
}

#[test]
fn a_response_without_name_case_keeps_status_fields_and_order() {
    let mut resp = ResponseHeader::build(429, None).unwrap();
    resp.set_reason_phrase(Some("Slow Down")).unwrap();
    resp.set_version(http::Version::HTTP_10);
    for (k, v) in [
        ("Retry-After", "7"),
        ("X-Request-Id", "req_1"),
        ("Content-Type", "application/json"),
        ("x-ratelimit-remaining-requests", "0"),
    ] {
        resp.append_header(k.to_owned(), v).unwrap();
    }
    let before = fields(&resp.headers);

    drop_name_case_response(&mut resp);

    assert!(!resp.has_case());
    assert_eq!(fields(&resp.headers), before);
    assert_eq!(resp.status, http::StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.version, http::Version::HTTP_10);
    // The status code's own reason phrase from now on.
    assert_eq!(resp.get_reason_phrase(), Some("Too Many Requests"));
    let mut buf = Vec::new();
    resp.header_to_h1_wire(&mut buf);
    assert_eq!(
        String::from_utf8(buf).unwrap(),
        "retry-after: 7\r\nx-request-id: req_1\r\nContent-Type: application/json\r\n\
         x-ratelimit-remaining-requests: 0\r\n"
    );
}
