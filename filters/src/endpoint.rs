//! The client-facing API surface: which endpoint (and so which dialect) a request path
//! belongs to. Each dialect's paths are its provider module's (`providers/`); the
//! gateway's own (`/healthz`) are here.

use crate::error::GatewayError;
use crate::model_name;
pub use crate::providers::Dialect;

/// One proxied (or locally answered) endpoint (README "Using it").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    ChatCompletions,
    Completions,
    Embeddings,
    Responses,
    /// `GET /v1/models` (Gemini's `GET /v1beta/models`), answered by the gateway itself
    /// in the client's dialect.
    Models,
    /// `GET /v1/models/{id}` (Gemini's `GET /v1beta/models/{model}`): one model, answered
    /// by the gateway itself. The id is percent-decoded and checked.
    Model {
        id: String,
    },
    Messages,
    CountTokens,
    /// Gemini `generateContent` / `streamGenerateContent`; the model comes from the path.
    Gemini {
        model: String,
        stream: bool,
    },
    /// Gemini `countTokens`: forwarded like `generateContent`, recorded as a count (no
    /// tokens billed). The model comes from the path.
    GeminiCountTokens {
        model: String,
    },
    /// `GET /healthz`.
    Health,
    /// `HEAD /`: the connectivity probe of some clients (Claude Code), answered 200.
    Probe,
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
    /// A path that names its model (Gemini) with a name the gateway refuses: the
    /// message says why, showing at most a bounded prefix of it.
    InvalidModel(String),
}

impl PathRejection {
    /// The error the client gets for a refused `path`, which is echoed bounded.
    pub fn into_error(self, path: &str) -> GatewayError {
        let shown = || path.chars().take(200).collect::<String>();
        match self {
            PathRejection::Traversal => GatewayError::PathTraversal,
            PathRejection::NotFound => GatewayError::NotFound(shown()),
            PathRejection::MethodNotAllowed => GatewayError::MethodNotAllowed(shown()),
            PathRejection::InvalidModel(why) => GatewayError::InvalidModel(why),
        }
    }
}

impl Endpoint {
    /// The dialect whose errors this endpoint's clients understand. The model listing
    /// is shared by every dialect: its clients' dialect is [`Dialect::of_request`]'s.
    pub fn dialect(&self) -> Dialect {
        match self {
            Endpoint::Messages | Endpoint::CountTokens => Dialect::Anthropic,
            Endpoint::Gemini { .. } | Endpoint::GeminiCountTokens { .. } => Dialect::Gemini,
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
            Endpoint::Model { .. } => "model",
            Endpoint::Messages => "messages",
            Endpoint::CountTokens | Endpoint::GeminiCountTokens { .. } => "count_tokens",
            Endpoint::Gemini { stream: false, .. } => "generate_content",
            Endpoint::Gemini { stream: true, .. } => "stream_generate_content",
            Endpoint::Health => "healthz",
            Endpoint::Probe => "probe",
        }
    }

    /// Whether the request carries a JSON body whose `model` picks the route.
    pub fn model_in_body(&self) -> bool {
        !self.answered_here() && self.model_in_path().is_none()
    }

    /// The model named by the path, and whether the path asks for a stream (Gemini).
    pub fn model_in_path(&self) -> Option<(&str, bool)> {
        match self {
            Endpoint::Gemini { model, stream } => Some((model, *stream)),
            Endpoint::GeminiCountTokens { model } => Some((model, false)),
            _ => None,
        }
    }

    /// Whether the gateway answers this endpoint itself: nothing goes upstream, nothing
    /// is metered.
    pub fn answered_here(&self) -> bool {
        matches!(
            self,
            Endpoint::Models | Endpoint::Model { .. } | Endpoint::Health | Endpoint::Probe
        )
    }

    /// Whether the upstream answers with a token count, not a generation: nothing to
    /// bill, nothing to estimate.
    pub fn counts_tokens(&self) -> bool {
        matches!(
            self,
            Endpoint::CountTokens | Endpoint::GeminiCountTokens { .. }
        )
    }

    /// Classifies `path` (without the query string).
    pub fn from_request(method: &str, path: &str) -> Result<Endpoint, PathRejection> {
        if has_dot_segment(path) {
            return Err(PathRejection::Traversal);
        }
        let (endpoint, wanted) = match path {
            "/healthz" => (Endpoint::Health, Method::Get),
            // Only the probe: `GET /` stays no endpoint.
            "/" if Method::Head.is(method) => (Endpoint::Probe, Method::Head),
            _ => Dialect::of_path(path).endpoint(path)?,
        };
        if wanted.is(method) {
            Ok(endpoint)
        } else {
            Err(PathRejection::MethodNotAllowed)
        }
    }
}

/// The model id of a listing path segment (`/v1/models/{id}`), percent-decoded and held
/// to [`model_name::check_model`].
pub fn model_id(segment: &str) -> Result<String, PathRejection> {
    let id = percent_decode(segment).ok_or(PathRejection::Traversal)?;
    model_name::check_model(&id).map_err(|e| PathRejection::InvalidModel(e.to_string()))?;
    Ok(id.into_owned())
}

/// The method an endpoint takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Head,
}

impl Method {
    /// Whether a request's method is this one (in any case).
    pub fn is(self, method: &str) -> bool {
        let name = match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Head => "HEAD",
        };
        method.eq_ignore_ascii_case(name)
    }
}

/// True when any segment is `.` or `..`, also when percent-encoded (`%2e%2E`), or when
/// an encoded slash or backslash could smuggle one past a later decoder.
fn has_dot_segment(path: &str) -> bool {
    // Without a `.`, `%` or backslash no segment can be a dot segment, decoded or not: one
    // pass instead of decoding and searching every segment of every ordinary path.
    if !path.bytes().any(|b| matches!(b, b'.' | b'%' | b'\\')) {
        return false;
    }
    any_dot_segment(path)
}

/// [`has_dot_segment`] segment by segment, decoding each.
fn any_dot_segment(path: &str) -> bool {
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
        assert_eq!(ok("HEAD", "/"), Ok(Endpoint::Probe));
        assert_eq!(
            Endpoint::from_request("GET", "/"),
            Err(PathRejection::NotFound)
        );
        assert_eq!(
            ok("GET", "/v1/models/meta-llama/Llama-3"),
            Ok(Endpoint::Model {
                id: "meta-llama/Llama-3".into()
            })
        );
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

    /// Gemini's paths name the model (its count_tokens too, never a stream); the other
    /// dialects' model is in the body, and the gateway's own paths have none.
    #[test]
    fn the_model_is_in_the_path_only_for_gemini() {
        let model = "gemini-2.5-pro".to_owned();
        let count = Endpoint::GeminiCountTokens {
            model: model.clone(),
        };
        assert_eq!(count.model_in_path(), Some(("gemini-2.5-pro", false)));
        assert!(!count.model_in_body());
        let gen = Endpoint::Gemini {
            model,
            stream: true,
        };
        assert_eq!(gen.model_in_path(), Some(("gemini-2.5-pro", true)));
        assert_eq!(Endpoint::Messages.model_in_path(), None);
        assert!(Endpoint::Messages.model_in_body());
        assert!(!Endpoint::Models.model_in_body());
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
