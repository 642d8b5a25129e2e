//! What crosses the gateway in headers: the request allow-list, the credential swap, Host
//! and framing for the upstream; the response clean-up and our request id for the client.

use std::sync::Arc;

use pingora_http::{RequestHeader, ResponseHeader};

use crate::context::{ProviderKeys, RequestCtx};
use crate::endpoint::percent_decode;
use crate::error::GatewayError;
use crate::providers;
use crate::upstream::UpstreamTarget;
use crate::Filter;

/// Request headers that go upstream unchanged, with those of each provider's API
/// ([`providers::forwards_request_header`]). Everything else (cookies, the client's
/// credentials, `x-forwarded-*`, `forwarded`, hop-by-hop and unknown headers) is dropped.
const REQUEST_ALLOW: &[&str] = &["content-type", "accept", "user-agent", "idempotency-key"];

/// Request headers the upstream request always gets from us (the credential header too,
/// when there is a key to send): the client's values are replaced, not removed first.
const REPLACED: [http::HeaderName; 3] = [
    http::header::HOST,
    http::header::ACCEPT_ENCODING,
    http::header::CONTENT_LENGTH,
];

/// Prefixes of allowed request headers (the OpenAI and Anthropic SDKs' own metadata).
const REQUEST_ALLOW_PREFIX: &[&str] = &["x-stainless-"];

/// Response headers the client never sees; and every header a `Connection` field names
/// (RFC 9110 §7.6.1), but for the framing headers Pingora writes the body by.
const RESPONSE_DROP: &[&str] = &[
    "set-cookie",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "te",
    "trailer",
    "upgrade",
];

/// The header carrying Tollgate's id for the request.
pub const REQUEST_ID_HEADER: &str = "x-tollgate-request-id";

/// Builds the upstream request header and cleans the response header.
#[derive(Default)]
pub struct UpstreamHeaders {
    /// Users' own provider keys, preferred over the upstream's configured keys.
    user_keys: Option<Arc<dyn ProviderKeys>>,
}

impl UpstreamHeaders {
    pub fn new(user_keys: Option<Arc<dyn ProviderKeys>>) -> Self {
        UpstreamHeaders { user_keys }
    }
}

fn allowed(name: &str) -> bool {
    REQUEST_ALLOW.contains(&name)
        || providers::forwards_request_header(name)
        || REQUEST_ALLOW_PREFIX.iter().any(|p| name.starts_with(p))
}

fn internal(e: impl std::fmt::Display) -> GatewayError {
    GatewayError::Internal(e.to_string())
}

/// `len` in decimal, on the stack: the common upload is compared with the client's own
/// `Content-Length` without formatting a `String`.
fn decimal(mut len: usize, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (len % 10) as u8;
        len /= 10;
        if len == 0 {
            return &buf[i..];
        }
    }
}

/// Sets `Content-Length` to `len`, replacing every value the client sent. When the
/// client's one value is already exactly `len` in the canonical form (the common
/// upload), the header is left as it is: setting it again would send the same bytes.
fn set_content_length(up: &mut RequestHeader, len: usize) -> Result<(), GatewayError> {
    let mut buf = [0u8; 20];
    let canonical = decimal(len, &mut buf);
    let mut sent = up.headers.get_all(http::header::CONTENT_LENGTH).iter();
    if let (Some(v), None) = (sent.next(), sent.next()) {
        if v.as_bytes() == canonical {
            return Ok(());
        }
    }
    up.insert_header(http::header::CONTENT_LENGTH, http::HeaderValue::from(len))
        .map_err(internal)
}

/// The upstream path and query: the upstream's base path, the client's path (or the
/// form the client's dialect builds, as Gemini's with the served model), and of the
/// client's query only the parameters its dialect allows, with allowed values
/// ([`providers::Dialect::forwards_query_param`]). An allow-list rather than removing the `key`
/// credential: no spelling of a credential (`;` separators, `%6Bey`, repeats, case) can
/// slip through one.
pub fn upstream_path(
    ctx: &RequestCtx,
    base_path: &str,
    client_path: &str,
    query: Option<&str>,
) -> String {
    let mut out = String::with_capacity(base_path.len() + client_path.len() + 16);
    out.push_str(base_path);
    match (&ctx.endpoint, &ctx.route) {
        (Some(endpoint), Some(route)) => endpoint.dialect().push_upstream_path(
            &mut out,
            endpoint,
            &route.served_model,
            client_path,
        ),
        _ => out.push_str(client_path),
    }
    let mut first = true;
    for pair in query.unwrap_or_default().split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let Some(name) = percent_decode(name) else {
            continue;
        };
        if !ctx.dialect.forwards_query_param(&name, value) {
            continue;
        }
        out.push(if first { '?' } else { '&' });
        out.push_str(&name);
        out.push('=');
        out.push_str(value);
        first = false;
    }
    out
}

impl UpstreamHeaders {
    /// The credential for this attempt, choosing its key: the user's own provider key,
    /// else a key stored for the upstream, else the upstream's configured key the
    /// request's rotation position (past the keys already tried) gives.
    fn credential(
        &self,
        target: &UpstreamTarget,
        ctx: &mut RequestCtx,
    ) -> Result<Option<http::HeaderValue>, GatewayError> {
        let own = match (&self.user_keys, &ctx.principal) {
            (Some(keys), Some(p)) => keys.key_for(p.user_id, &target.name),
            _ => None,
        };
        let own_used = own.is_some();
        // A key stored for the upstream itself stands in for the config file's keys.
        let other = own.or_else(|| {
            self.user_keys
                .as_ref()
                .and_then(|k| k.shared_key_for(&target.name))
        });
        let invalid = || {
            GatewayError::Internal(format!(
                "upstream {} has a key that is not a valid header value",
                target.name
            ))
        };
        match other {
            Some(k) => {
                ctx.attempts.send_other_key(target, own_used);
                let value = target.kind.credential_value(&k).ok_or_else(invalid)?;
                Ok(Some(value))
            }
            None => {
                let i = ctx.attempts.send_configured_key(target);
                match target.credential_at(i) {
                    Some(v) => Ok(Some(v.ok_or_else(invalid)?.clone())),
                    None => Ok(None),
                }
            }
        }
    }
}

impl Filter for UpstreamHeaders {
    fn name(&self) -> &'static str {
        "upstream_headers"
    }

    fn phases(&self) -> crate::Phases {
        crate::Phases::NONE
    }

    fn on_upstream_request(
        &self,
        up: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<(), GatewayError> {
        let target = ctx
            .upstream()
            .cloned()
            .ok_or_else(|| internal("no upstream chosen"))?;
        let credential = self.credential(&target, ctx)?;
        let credential_header = credential.as_ref().map(|_| target.kind.credential_header());
        // The headers set below replace every value the client sent under their names;
        // of the others, those not allowed go, first, so that the inserts take the room
        // they leave in Pingora's header maps instead of growing them (a translated
        // request's own credential header, for one). Usually none is left to remove:
        // removing what is then set again would be work done twice on every request.
        let replaced = |n: &http::HeaderName| {
            REPLACED.contains(n) || credential_header.is_some_and(|c| n.as_str() == c)
        };
        let dropped = |n: &http::HeaderName| !replaced(n) && !allowed(n.as_str());
        if up.headers.keys().any(dropped) {
            let drop: Vec<_> = up.headers.keys().filter(|n| dropped(n)).cloned().collect();
            for name in drop {
                up.remove_header(&name);
            }
        }
        match target.host_value() {
            Some(host) => up.insert_header(http::header::HOST, host.clone()),
            None => up.insert_header(http::header::HOST, target.host_header.as_str()),
        }
        .map_err(internal)?;
        up.insert_header(
            http::header::ACCEPT_ENCODING,
            http::HeaderValue::from_static("identity"),
        )
        .map_err(internal)?;
        set_content_length(up, ctx.outgoing_body().len())?;
        if let (Some(name), Some(value)) = (credential_header, credential) {
            up.insert_header(name, value).map_err(internal)?;
        }
        // The common case, an origin-form OpenAI-style path on an upstream without a base
        // path and no query, needs no new URI.
        let rewrites = ctx
            .endpoint
            .as_ref()
            .is_some_and(|e| e.dialect().rewrites_path());
        let unchanged = !rewrites
            && target.base_path.is_empty()
            && up.uri.query().is_none()
            && up.uri.authority().is_none();
        if !unchanged {
            let path = upstream_path(ctx, &target.base_path, up.uri.path(), up.uri.query());
            let uri: http::Uri = path.parse().map_err(internal)?;
            up.set_uri(uri);
        }
        Ok(())
    }

    fn on_response(
        &self,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<(), GatewayError> {
        // One pass over the names present (a handful) instead of seven removals, each
        // parsing and hashing a name, on every response; usually none is there.
        if resp
            .headers
            .keys()
            .any(|k| RESPONSE_DROP.contains(&k.as_str()))
        {
            for name in connection_nominated(resp) {
                resp.remove_header(&name);
            }
            for name in RESPONSE_DROP {
                resp.remove_header(*name);
            }
        }
        resp.insert_header(REQUEST_ID_HEADER, ctx.request_id.as_str())
            .map_err(internal)?;
        Ok(())
    }
}

/// Pingora keeps each header's name as the peer spelled it in a second map beside the
/// values, so that every insert and removal is done twice, and its HTTP/1 writer
/// spells names from that map. Neither peer of the gateway needs the spelling (header
/// names are case-insensitive, and HTTP/2 lowercases them all). After this the header
/// leaves with Pingora's spelling (the names it knows titled, as `Content-Type`, the
/// others lowercase), its fields, values and order unchanged, and each edit touches one
/// map. Done once, before the first edit, on the upstream request and on the response.
pub fn drop_name_case_request(up: &mut RequestHeader) {
    if up.has_case() {
        let empty = RequestHeader::from(http::Request::new(()).into_parts().0);
        let head = std::mem::replace(up, empty);
        *up = RequestHeader::from(http::request::Parts::from(head));
    }
}

/// [`drop_name_case_request`] for a response header. Its reason phrase goes too: the
/// client gets the status code's own.
pub fn drop_name_case_response(resp: &mut ResponseHeader) {
    if resp.has_case() {
        let empty = ResponseHeader::from(http::Response::new(()).into_parts().0);
        let head = std::mem::replace(resp, empty);
        *resp = ResponseHeader::from(http::response::Parts::from(head));
    }
}

/// The header names the response's `Connection` fields list (hop-by-hop by nomination),
/// except `Content-Length` and `Transfer-Encoding`, which frame the body.
fn connection_nominated(resp: &ResponseHeader) -> Vec<http::HeaderName> {
    resp.headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|token| http::HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .filter(|n| *n != http::header::CONTENT_LENGTH && *n != http::header::TRANSFER_ENCODING)
        .collect()
}

#[cfg(test)]
mod header_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::RouteDecision;
    use crate::endpoint::Endpoint;
    use crate::providers::Dialect;
    use crate::secret::Secret;
    use crate::upstream::{ProviderKind, UpstreamSpec};
    use bytes::Bytes;

    #[test]
    fn decimal_writes_every_length_as_its_digits() {
        for n in [0usize, 7, 10, 99, 100, 123_456, usize::MAX] {
            let mut buf = [0u8; 20];
            assert_eq!(decimal(n, &mut buf), n.to_string().as_bytes());
        }
    }

    /// The client's own value is kept when it is exactly the length (the same bytes,
    /// not a copy); any other is replaced, and every value the client sent goes.
    #[test]
    fn content_length_keeps_the_clients_exact_value_and_replaces_any_other() {
        let header = |values: &[&'static str]| {
            let mut h = RequestHeader::build("POST", b"/v1/chat/completions", None).unwrap();
            for v in values {
                h.append_header("content-length", http::HeaderValue::from_static(v))
                    .unwrap();
            }
            h
        };
        let sent = |h: &RequestHeader| -> Vec<Vec<u8>> {
            h.headers
                .get_all("content-length")
                .iter()
                .map(|v| v.as_bytes().to_vec())
                .collect()
        };
        let mut h = header(&["42"]);
        let before = h.headers.get("content-length").unwrap().as_bytes().as_ptr();
        set_content_length(&mut h, 42).unwrap();
        assert_eq!(sent(&h), [b"42".to_vec()]);
        let after = h.headers.get("content-length").unwrap().as_bytes().as_ptr();
        assert_eq!(before, after, "the client's value reused");
        for (values, len) in [
            (&["042"][..], 42),
            (&["42", "42"], 42),
            (&["42"], 43),
            (&[], 5),
        ] {
            let mut h = header(values);
            set_content_length(&mut h, len).unwrap();
            assert_eq!(sent(&h), [len.to_string().into_bytes()], "{values:?}");
        }
    }

    fn ctx(kind: ProviderKind, endpoint: Endpoint, served: &str) -> RequestCtx {
        let up = Arc::new(UpstreamTarget::new(UpstreamSpec {
            name: "up".into(),
            kind,
            host: "api.example.com".into(),
            port: 443,
            tls: true,
            base_path: "/base".into(),
            keys: vec![Secret::new("sk-provider")],
            ..UpstreamSpec::default()
        }));
        let mut c = RequestCtx::new("rid-1".into());
        c.endpoint = Some(endpoint);
        c.body = Bytes::from_static(b"{\"model\":\"m\"}");
        c.route = Some(RouteDecision {
            served_model: served.into(),
            chain: vec![up],
        });
        c
    }

    #[test]
    fn allow_list_key_swap_host_and_framing() {
        let mut req = RequestHeader::build("POST", b"/v1/chat/completions", None)
            .unwrap_or_else(|_| unreachable!());
        for (k, v) in [
            ("authorization", "Bearer tg_client"),
            ("cookie", "a=b"),
            ("x-forwarded-for", "1.2.3.4"),
            ("forwarded", "for=1.2.3.4"),
            ("connection", "keep-alive"),
            ("x-unknown", "1"),
            ("content-type", "application/json"),
            ("anthropic-beta", "tools-2024"),
            ("x-stainless-lang", "js"),
            ("transfer-encoding", "chunked"),
            ("host", "gateway.local"),
            ("accept-encoding", "gzip"),
        ] {
            let _ = req.insert_header(k, v);
        }
        let mut c = ctx(ProviderKind::OpenAi, Endpoint::ChatCompletions, "m");
        UpstreamHeaders::default()
            .on_upstream_request(&mut req, &mut c)
            .unwrap_or_else(|e| panic!("{e}"));
        let h = |n: &str| {
            req.headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        assert_eq!(h("authorization").as_deref(), Some("Bearer sk-provider"));
        for gone in [
            "cookie",
            "x-forwarded-for",
            "forwarded",
            "connection",
            "x-unknown",
            "transfer-encoding",
        ] {
            assert_eq!(h(gone), None, "{gone}");
        }
        assert_eq!(h("content-type").as_deref(), Some("application/json"));
        assert_eq!(h("anthropic-beta").as_deref(), Some("tools-2024"));
        assert_eq!(h("x-stainless-lang").as_deref(), Some("js"));
        assert_eq!(h("host").as_deref(), Some("api.example.com"));
        assert_eq!(h("accept-encoding").as_deref(), Some("identity"));
        assert_eq!(h("content-length").as_deref(), Some("13"));
        assert_eq!(req.uri.to_string(), "/base/v1/chat/completions");
    }

    #[test]
    fn only_allowed_query_parameters_with_allowed_values_go_up() {
        let mut c = ctx(
            ProviderKind::Gemini,
            Endpoint::Gemini {
                model: "g".into(),
                stream: true,
            },
            "g",
        );
        c.dialect = Dialect::Gemini;
        let up = |c: &RequestCtx, q: &str| upstream_path(c, "", "/x", Some(q));
        let path = "/v1beta/models/g:streamGenerateContent";
        assert_eq!(up(&c, "alt=sse&key=k"), format!("{path}?alt=sse"));
        assert_eq!(up(&c, "alt=sse;key=k"), path);
        assert_eq!(up(&c, "%61lt=sse&%6Bey=k&KEY=k"), format!("{path}?alt=sse"));
        assert_eq!(up(&c, "alt=k_secret&alt"), path);
        assert_eq!(up(&c, ""), path);
        c.dialect = Dialect::Anthropic;
        c.endpoint = Some(Endpoint::Messages);
        assert_eq!(up(&c, "beta=true&alt=sse"), "/x?beta=true");
        c.dialect = Dialect::OpenAi;
        c.endpoint = Some(Endpoint::ChatCompletions);
        assert_eq!(up(&c, "beta=true&alt=sse&api-version=1"), "/x");
    }

    #[test]
    fn gemini_path_gets_served_model_and_loses_key_param() {
        let mut req = RequestHeader::build(
            "POST",
            b"/v1beta/models/fast:streamGenerateContent?key=tg_x&alt=sse",
            None,
        )
        .unwrap_or_else(|_| unreachable!());
        let mut c = ctx(
            ProviderKind::Gemini,
            Endpoint::Gemini {
                model: "fast".into(),
                stream: true,
            },
            "gemini-2.0-flash",
        );
        c.dialect = Dialect::Gemini;
        UpstreamHeaders::default()
            .on_upstream_request(&mut req, &mut c)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            req.uri.to_string(),
            "/base/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
        );
        assert_eq!(
            req.headers
                .get("x-goog-api-key")
                .and_then(|v| v.to_str().ok()),
            Some("sk-provider")
        );
    }

    #[test]
    fn response_loses_the_headers_connection_names_but_not_its_framing() {
        let mut resp = ResponseHeader::build(200, None).unwrap_or_else(|_| unreachable!());
        for (k, v) in [
            ("connection", "X-Hop, keep-alive"),
            ("connection", " content-length ,transfer-encoding,,bad name"),
            ("x-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-authenticate", "Basic"),
            ("content-length", "2"),
            ("x-kept", "1"),
        ] {
            let _ = resp.append_header(k, v);
        }
        UpstreamHeaders::default()
            .on_response(&mut resp, &mut RequestCtx::new("r".into()))
            .unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = resp.headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["content-length", "x-kept", REQUEST_ID_HEADER]);
    }

    #[test]
    fn response_loses_cookies_and_gains_request_id() {
        let mut resp = ResponseHeader::build(200, None).unwrap_or_else(|_| unreachable!());
        let _ = resp.insert_header("set-cookie", "a=b");
        let _ = resp.insert_header("x-request-id", "req_1");
        let mut c = RequestCtx::new("rid-9".into());
        UpstreamHeaders::default()
            .on_response(&mut resp, &mut c)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(resp.headers.get("set-cookie").is_none());
        assert_eq!(
            resp.headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok()),
            Some("req_1")
        );
        assert_eq!(
            resp.headers
                .get(REQUEST_ID_HEADER)
                .and_then(|v| v.to_str().ok()),
            Some("rid-9")
        );
    }
}
