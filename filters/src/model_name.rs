//! Model names as clients send them: what a name may hold before it routes a request,
//! goes into an upstream path, or is echoed in an error. A model in a Gemini path is
//! held to a strict character set, since it becomes part of the upstream URI; the
//! gateway builds that URI from the checked name and never from the client's bytes.

use std::borrow::Cow;
use std::fmt::Write as _;

use crate::error::GatewayError;

/// Longer names are refused (400): no provider's model name comes near, and a name is
/// stored with every usage row.
pub const MAX_MODEL_BYTES: usize = 256;

/// How much of a refused name an error message or a log line shows.
const SHOWN_CHARS: usize = 48;

/// Whether a byte may stand in a model name that is part of a path: letters, digits and
/// `.`, `_`, `-`, `@` (Vertex-style versions), nothing that could end a segment, start a
/// query or fragment, or need escaping.
fn path_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@')
}

/// Checks a model name a client chose (a body's `model`, a listing path's id): not
/// empty, at most [`MAX_MODEL_BYTES`], no control character (a name is logged, stored
/// and may be a metric label).
pub fn check_model(name: &str) -> Result<(), GatewayError> {
    check_length(name)?;
    if name.chars().any(char::is_control) {
        return Err(GatewayError::InvalidModel(format!(
            "model name {} holds a control character",
            shown(name)
        )));
    }
    Ok(())
}

/// Checks a model name taken from a request path (after percent-decoding).
pub fn check_path_model(name: &str) -> Result<(), GatewayError> {
    check_length(name)?;
    match name.bytes().position(|b| !path_safe(b)) {
        None => Ok(()),
        Some(_) => Err(GatewayError::InvalidModel(format!(
            "model name {} may hold only letters, digits, '.', '_', '-' and '@'",
            shown(name)
        ))),
    }
}

fn check_length(name: &str) -> Result<(), GatewayError> {
    if name.is_empty() {
        return Err(GatewayError::InvalidModel("model name is empty".into()));
    }
    if name.len() > MAX_MODEL_BYTES {
        return Err(GatewayError::InvalidModel(format!(
            "model name is longer than {MAX_MODEL_BYTES} bytes ({} bytes, starting {})",
            name.len(),
            shown(name)
        )));
    }
    Ok(())
}

/// Appends `name` as one path segment: bytes outside the path-safe set percent-encoded.
/// A checked client name goes as it is; an alias target from the config cannot break
/// out of its segment either.
pub fn push_path_segment(out: &mut String, name: &str) {
    for b in name.bytes() {
        if path_safe(b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// A bounded, quoted and escaped prefix of a client-chosen name, for messages and logs:
/// never more than a few dozen characters, never a raw control character.
pub fn shown(name: &str) -> String {
    let mut out = String::with_capacity(SHOWN_CHARS + 8);
    out.push('\'');
    let mut chars = name.chars();
    for c in chars.by_ref().take(SHOWN_CHARS) {
        out.extend(c.escape_debug());
    }
    if chars.next().is_some() {
        out.push('…');
    }
    out.push('\'');
    out
}

/// `name` unchanged when it is short, else its bounded prefix (for a log field).
pub fn for_log(name: &str) -> Cow<'_, str> {
    if name.len() <= SHOWN_CHARS && !name.chars().any(char::is_control) {
        Cow::Borrowed(name)
    } else {
        Cow::Owned(shown(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_models_hold_a_strict_set_and_a_bounded_length() {
        for ok in [
            "gemini-2.0-flash",
            "gemini-1.5-pro-002",
            "claude@20240620",
            "a_b.c",
        ] {
            assert_eq!(check_path_model(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "gemini:countTokens#",
            "g?key=x",
            "g\r\nx",
            "g x",
            "g%",
            "a/b",
            "g\0",
            "é",
        ] {
            assert!(
                matches!(check_path_model(bad), Err(GatewayError::InvalidModel(_))),
                "{bad:?}"
            );
        }
        let long = "a".repeat(MAX_MODEL_BYTES + 1);
        let Err(GatewayError::InvalidModel(msg)) = check_path_model(&long) else {
            panic!("a long name passed")
        };
        assert!(
            msg.len() < 150,
            "the message echoes a bounded prefix: {msg}"
        );
        assert_eq!(check_path_model(&long[1..]), Ok(()));
    }

    #[test]
    fn client_models_are_bounded_and_free_of_control_characters() {
        for ok in [
            "gpt-4o",
            "ft:gpt-4o:org:id",
            "openai/gpt-4o",
            "llama3.1:8b",
            "modèle x",
        ] {
            assert_eq!(check_model(ok), Ok(()), "{ok}");
        }
        for bad in ["", "gpt\r\n", "gpt\0", "a\u{7f}", "x\u{85}"] {
            assert!(check_model(bad).is_err(), "{bad:?}");
        }
        assert!(check_model(&"a".repeat(MAX_MODEL_BYTES + 1)).is_err());
        assert_eq!(check_model(&"é".repeat(MAX_MODEL_BYTES / 2)), Ok(()));
    }

    #[test]
    fn segments_are_encoded_and_names_shown_bounded_and_escaped() {
        let mut out = String::new();
        push_path_segment(&mut out, "models/gemini x:y");
        assert_eq!(out, "models%2Fgemini%20x%3Ay");
        assert_eq!(shown("a\r\nb"), "'a\\r\\nb'");
        let s = shown(&"x".repeat(10_000));
        assert!(
            s.chars().count() <= SHOWN_CHARS + 3 && s.ends_with("…'"),
            "{s}"
        );
        assert_eq!(for_log("gpt-4o"), "gpt-4o");
        assert_eq!(for_log("a\0"), "'a\\0'");
    }
}
