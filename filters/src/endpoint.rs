//! The client-facing API surface: which endpoint (and so which dialect) a request path
//! belongs to. Each dialect's paths are its provider module's (`providers/`); the
//! gateway's own (`/healthz`) are here.

pub use crate::providers::Dialect;

/// One proxied (or locally answered) endpoint (README "Using it").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    ChatCompletions,
    Completions,
    Embeddings,
    Responses,
    /// `GET /v1/models`, answered by the gateway itself.
    Models,
    Messages,
    CountTokens,
    /// Gemini `generateContent` / `streamGenerateContent`; the model comes from the path.
    Gemini {
        model: String,
        stream: bool,
    },
    /// `GET /healthz`.
    Health,
}

/// Why a path is not served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathRejection {
    /// A `..` or `.` segment (plain or percent-encoded): refused outright.
    Traversal,
    /// Not one of our paths (or not with this method).
    NotFound,
    /// A known path with the wrong method.
    MethodNotAllowed,
}

impl Endpoint {
    /// The dialect whose errors this endpoint's clients understand.
    pub fn dialect(&self) -> Dialect {
        match self {
            Endpoint::Messages | Endpoint::CountTokens => Dialect::Anthropic,
            Endpoint::Gemini { .. } => Dialect::Gemini,
            _ => Dialect::OpenAi,
        }
    }

    /// A stable label for metrics and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "chat_completions",
            Endpoint::Completions => "completions",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Responses => "responses",
            Endpoint::Models => "models",
            Endpoint::Messages => "messages",
            Endpoint::CountTokens => "count_tokens",
            Endpoint::Gemini { stream: false, .. } => "generate_content",
            Endpoint::Gemini { stream: true, .. } => "stream_generate_content",
            Endpoint::Health => "healthz",
        }
    }

    /// Whether the request carries a JSON body whose `model` picks the route.
    pub fn model_in_body(&self) -> bool {
        !matches!(
            self,
            Endpoint::Models | Endpoint::Health | Endpoint::Gemini { .. }
        )
    }

    /// Classifies `path` (without the query string).
    pub fn from_request(method: &str, path: &str) -> Result<Endpoint, PathRejection> {
        if has_dot_segment(path) {
            return Err(PathRejection::Traversal);
        }
        let (endpoint, wanted) = match path {
            "/healthz" => (Endpoint::Health, Method::Get),
            _ => Dialect::of_path(path)
                .endpoint(path)
                .ok_or(PathRejection::NotFound)?,
        };
        if wanted.is(method) {
            Ok(endpoint)
        } else {
            Err(PathRejection::MethodNotAllowed)
        }
    }
}

/// The method an endpoint takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

impl Method {
    /// Whether a request's method is this one (in any case).
    pub fn is(self, method: &str) -> bool {
        let name = match self {
            Method::Get => "GET",
            Method::Post => "POST",
        };
        method.eq_ignore_ascii_case(name)
    }
}

/// True when any segment is `.` or `..`, also when percent-encoded (`%2e%2E`), or when
/// an encoded slash or backslash could smuggle one past a later decoder.
fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|seg| {
        let Some(decoded) = percent_decode(seg) else {
            return true;
        };
        decoded == "."
            || decoded == ".."
            || decoded.contains('/')
            || decoded.contains('\\') && decoded.split('\\').any(|s| s == ".." || s == ".")
    })
}

/// Decodes `%XX` escapes; `None` for a malformed escape or a result that is not UTF-8.
/// Borrows when there is nothing to decode (every segment of every ordinary path).
pub fn percent_decode(s: &str) -> Option<std::borrow::Cow<'_, str>> {
    if !s.contains('%') {
        return Some(std::borrow::Cow::Borrowed(s));
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok().map(std::borrow::Cow::Owned)
}

#[cfg(test)]
mod path_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_every_contract_path() {
        let ok = |m, p| Endpoint::from_request(m, p).map_err(|e| format!("{p}: {e:?}"));
        assert_eq!(
            ok("POST", "/v1/chat/completions"),
            Ok(Endpoint::ChatCompletions)
        );
        assert_eq!(ok("POST", "/v1/completions"), Ok(Endpoint::Completions));
        assert_eq!(ok("POST", "/v1/embeddings"), Ok(Endpoint::Embeddings));
        assert_eq!(ok("POST", "/v1/responses"), Ok(Endpoint::Responses));
        assert_eq!(ok("GET", "/v1/models"), Ok(Endpoint::Models));
        assert_eq!(ok("POST", "/v1/messages"), Ok(Endpoint::Messages));
        assert_eq!(
            ok("POST", "/v1/messages/count_tokens"),
            Ok(Endpoint::CountTokens)
        );
        assert_eq!(
            ok(
                "POST",
                "/v1beta/models/gemini-2.0-flash:streamGenerateContent"
            ),
            Ok(Endpoint::Gemini {
                model: "gemini-2.0-flash".into(),
                stream: true
            })
        );
        assert_eq!(ok("GET", "/healthz"), Ok(Endpoint::Health));
        assert_eq!(
            Endpoint::from_request("GET", "/v1/messages"),
            Err(PathRejection::MethodNotAllowed)
        );
        assert_eq!(
            Endpoint::from_request("POST", "/admin/users"),
            Err(PathRejection::NotFound)
        );
        assert_eq!(
            Endpoint::from_request("POST", "/v1beta/models/x:delete"),
            Err(PathRejection::NotFound)
        );
    }

    #[test]
    fn refuses_dot_segments_plain_and_encoded() {
        for p in [
            "/v1/../admin",
            "/v1/chat/./completions",
            "/v1/%2e%2e/admin",
            "/v1/%2E./x",
            "/v1beta/models/..%2f..%2fetc:generateContent",
            "/v1beta/models/%zz:generateContent",
        ] {
            assert_eq!(
                Endpoint::from_request("POST", p),
                Err(PathRejection::Traversal),
                "{p}"
            );
        }
    }
}
