//! The dashboard's HTTP plumbing: responses with the browser-hardening headers of
//! CONTRACT §6 (every response under `/ui/` carries them), the session cookie, and the
//! request parts pages read (query and form fields, cookies, the request's own origin).

use http::Response;
use maud::Markup;
use pingora::protocols::http::ServerSession;
use tollgate_filters::endpoint::percent_decode;

use crate::admin::{read_body, ApiError};

/// The session cookie: the signed session token of `POST /admin/login`.
pub const COOKIE: &str = "tollgate_session";

/// No script but our own file, no framing, forms only to ourselves, no plugins.
pub const CSP: &str = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'";

/// The headers every dashboard response carries; nothing but the assets is cached.
fn hardened(status: u16, content_type: &str) -> http::response::Builder {
    cached(status, content_type, "no-store")
}

fn cached(status: u16, content_type: &str, cache_control: &str) -> http::response::Builder {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("content-security-policy", CSP)
        .header("x-content-type-options", "nosniff")
        .header("referrer-policy", "same-origin")
        .header("x-frame-options", "DENY")
        .header("cache-control", cache_control)
}

fn finish(builder: http::response::Builder, body: Vec<u8>) -> Response<Vec<u8>> {
    builder
        .header("content-length", body.len())
        .body(body)
        .unwrap_or_else(|_| Response::new(Vec::new()))
}

/// An HTML page.
pub fn html(status: u16, page: Markup) -> Response<Vec<u8>> {
    finish(
        hardened(status, "text/html; charset=utf-8"),
        page.into_string().into_bytes(),
    )
}

/// `303 See Other` to `location` (a path of ours).
pub fn redirect(location: &str) -> Response<Vec<u8>> {
    finish(
        hardened(303, "text/plain; charset=utf-8").header("location", location),
        Vec::new(),
    )
}

/// A CSV download.
pub fn csv(filename: &str, body: String) -> Response<Vec<u8>> {
    finish(
        hardened(200, "text/csv; charset=utf-8").header(
            "content-disposition",
            format!("attachment; filename=\"{filename}\""),
        ),
        body.into_bytes(),
    )
}

/// An embedded asset: its name carries its content hash, so it may be cached for good.
pub fn asset(content_type: &str, etag: &str, body: &'static [u8]) -> Response<Vec<u8>> {
    finish(
        cached(200, content_type, "public, max-age=31536000, immutable")
            .header("etag", format!("\"{etag}\"")),
        body.to_vec(),
    )
}

/// Adds the hardening headers to a response made elsewhere (the backup download).
pub fn harden(mut resp: Response<Vec<u8>>) -> Response<Vec<u8>> {
    let headers = resp.headers_mut();
    for (name, value) in [
        ("content-security-policy", CSP),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "same-origin"),
        ("x-frame-options", "DENY"),
        ("cache-control", "no-store"),
    ] {
        headers.insert(name, http::HeaderValue::from_static(value));
    }
    resp
}

/// Adds a `set-cookie` header.
pub fn set_cookie(resp: &mut Response<Vec<u8>>, cookie: &str) {
    if let Ok(v) = http::HeaderValue::from_str(cookie) {
        resp.headers_mut().append("set-cookie", v);
    }
}

/// The session cookie holding `token` for `max_age_s` seconds (0 ends it).
pub fn session_cookie(token: &str, max_age_s: i64, secure: bool) -> String {
    format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        max_age_s.max(0),
        if secure { "; Secure" } else { "" }
    )
}

/// A request header as text.
pub fn header<'a>(session: &'a ServerSession, name: &str) -> Option<&'a str> {
    session
        .req_header()
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
}

/// The value of cookie `name`, if sent.
pub fn cookie<'a>(session: &'a ServerSession, name: &str) -> Option<&'a str> {
    session
        .req_header()
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

/// Whether a state-changing request comes from our own pages: its `Origin`, when
/// sent, must be this listener's (scheme and the `Host` the browser used), and a
/// browser that says the request is cross-site is believed.
pub fn same_origin(session: &ServerSession, tls: bool) -> bool {
    if matches!(
        header(session, "sec-fetch-site"),
        Some("cross-site" | "same-site")
    ) {
        return false;
    }
    let Some(origin) = header(session, "origin") else {
        return true;
    };
    let host = header(session, "host").or_else(|| session.req_header().uri.host());
    let scheme = if tls { "https" } else { "http" };
    host.is_some_and(|h| origin.eq_ignore_ascii_case(&format!("{scheme}://{h}")))
}

/// Fields of a query string or an `application/x-www-form-urlencoded` body.
#[derive(Debug, Default, Clone)]
pub struct Form(Vec<(String, String)>);

impl Form {
    pub fn parse(text: &str) -> Form {
        let decode = |s: &str| {
            percent_decode(&s.replace('+', " "))
                .map(std::borrow::Cow::into_owned)
                .unwrap_or_default()
        };
        Form(
            text.split('&')
                .filter(|kv| !kv.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    (decode(k), decode(v))
                })
                .collect(),
        )
    }

    /// The field's value, trimmed; `None` when absent or blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// The field's value untrimmed (passwords, keys).
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

/// The form a browser posted (only urlencoded forms are accepted).
pub async fn read_form(session: &mut ServerSession) -> Result<Form, ApiError> {
    let ctype = header(session, "content-type").unwrap_or("");
    let urlencoded = ctype.split(';').next().is_some_and(|t| {
        t.trim()
            .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    });
    let body = read_body(session).await?;
    if !body.is_empty() && !urlencoded {
        return Err(ApiError::new(
            415,
            "forms are posted as application/x-www-form-urlencoded",
        ));
    }
    let text = String::from_utf8(body).map_err(|_| ApiError::new(400, "the form is not UTF-8"))?;
    Ok(Form::parse(&text))
}

/// A query string of `pairs`, percent-encoded, without the `?`.
pub fn query(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes everything but unreserved characters.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_plus_and_percent() {
        let f = Form::parse("a=1+2&b=%3Cscript%3E&c=&d=%2B&e=+x+&a=second&bad=%ZZ");
        assert_eq!(f.get("a"), Some("1 2"));
        assert_eq!(f.get("b"), Some("<script>"));
        assert_eq!(f.get("c"), None);
        assert_eq!(f.get("d"), Some("+"));
        assert_eq!(f.get("e"), Some("x"));
        assert_eq!(f.raw("e"), Some(" x "));
        assert_eq!(f.get("bad"), None);
        assert_eq!(f.get("nope"), None);
    }

    #[test]
    fn queries_round_trip() {
        let q = query(&[("by", "model"), ("empty", ""), ("m", "a b&c=<d>/é")]);
        assert_eq!(q, "by=model&m=a%20b%26c%3D%3Cd%3E%2F%C3%A9");
        assert_eq!(Form::parse(&q).get("m"), Some("a b&c=<d>/é"));
    }

    #[test]
    fn the_cookie_is_strict_and_http_only() {
        assert_eq!(
            session_cookie("t.s", 60, false),
            "tollgate_session=t.s; Path=/; HttpOnly; SameSite=Strict; Max-Age=60"
        );
        assert!(session_cookie("t", -5, true).ends_with("Max-Age=0; Secure"));
    }
}
