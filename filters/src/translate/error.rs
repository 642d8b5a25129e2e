//! Why a request cannot be translated: a typed error naming the field, which the proxy
//! answers with 400 in the client's own error envelope (CONTRACT section 7: refused,
//! never silently mistranslated).

use super::Wire;

/// A request Tollgate refuses to translate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// The body does not parse as the client's dialect (`at` is the JSON path).
    #[error("request body is not a valid {dialect} request at {at}: {message}")]
    Invalid {
        dialect: &'static str,
        at: String,
        message: String,
    },
    /// A field (or value) with no counterpart upstream that cannot be dropped safely.
    #[error("`{field}` cannot be translated for this model's provider: {why}")]
    Unsupported { field: String, why: String },
}

impl TranslateError {
    /// A refusal of `field`, saying why.
    pub fn unsupported(field: impl Into<String>, why: impl Into<String>) -> Self {
        TranslateError::Unsupported {
            field: field.into(),
            why: why.into(),
        }
    }

    /// The field the error names (OpenAI's `param`).
    pub fn field(&self) -> Option<&str> {
        match self {
            TranslateError::Invalid { at, .. } => Some(at),
            TranslateError::Unsupported { field, .. } => Some(field),
        }
    }

    /// The HTTP status the client gets.
    pub fn status(&self) -> u16 {
        400
    }

    /// The error in `client`'s envelope, as JSON bytes: what the proxy answers, through
    /// the [`GatewayError`](crate::error::GatewayError) it becomes.
    pub fn client_body(&self, client: Wire) -> Vec<u8> {
        let err = crate::error::GatewayError::from(self.clone());
        client.dialect().error_body(&err).to_vec()
    }
}

/// Reads `body` as `T`, naming the JSON path of the first problem. The path is only
/// tracked on a second read after a failure (tracking it costs more than the parse).
pub(crate) fn parse<T: serde::de::DeserializeOwned>(
    body: &[u8],
    dialect: Wire,
) -> Result<T, TranslateError> {
    // serde reads a struct from an array too (its fields in order): a request is an
    // object.
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|&b| b != b'{') {
        return Err(TranslateError::Invalid {
            dialect: dialect.as_str(),
            at: ".".into(),
            message: "expected a JSON object".into(),
        });
    }
    if let Ok(v) = crate::providers::wire::from_json(body) {
        return Ok(v);
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| TranslateError::Invalid {
        dialect: dialect.as_str(),
        at: e.path().to_string(),
        message: e.inner().to_string(),
    })
}

/// `value` as `T`, naming `at` when it does not fit.
pub(crate) fn from_value<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
    dialect: Wire,
    at: &str,
) -> Result<T, TranslateError> {
    if let Ok(v) = T::deserialize(&value) {
        return Ok(v);
    }
    serde_path_to_error::deserialize(value).map_err(|e| TranslateError::Invalid {
        dialect: dialect.as_str(),
        at: join_path(at, &e.path().to_string()),
        message: e.inner().to_string(),
    })
}

fn join_path(at: &str, inner: &str) -> String {
    if inner == "." || inner.is_empty() {
        at.to_owned()
    } else {
        format!("{at}.{inner}")
    }
}

/// An invalid-request error at `at`.
pub(crate) fn invalid(
    dialect: Wire,
    at: impl Into<String>,
    message: impl Into<String>,
) -> TranslateError {
    TranslateError::Invalid {
        dialect: dialect.as_str(),
        at: at.into(),
        message: message.into(),
    }
}
