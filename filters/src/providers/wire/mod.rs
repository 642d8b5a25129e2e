//! The wire types of each dialect's requests, responses and stream events, as the
//! providers publish them: what `translate/` reads and writes. Each module is one
//! dialect's; they hold shapes only (no translation logic), and nothing in the native
//! (same-dialect) path uses them.
//!
//! Request types get the fields they do not know in `extra` (filled by
//! [`unknown_members`], a second pass that skips known values without building them,
//! cheaper than serde's `flatten`, which copies the whole body), so a reader can refuse
//! or drop them by name instead of losing them silently. Stream event types borrow from
//! the event's bytes (`Cow`), so a chunk is parsed once without copying its text.

pub mod anthropic;
pub mod gemini;
pub mod openai;
pub mod responses;

use std::fmt;

use serde::de::{value::SeqAccessDeserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// Reads a JSON string as `text(..)` or an array as `seq(..)` of its elements: what
/// `#[serde(untagged)]` does for such an enum, without its buffering (it copies the
/// whole value into an owned tree first, then tries each variant against the copy),
/// which was a large part of reading a translated request or answer. `what` names the
/// expected shape in errors.
pub(crate) fn text_or_seq<'de, D, T, R>(
    de: D,
    text: fn(String) -> R,
    seq: fn(Vec<T>) -> R,
    what: &'static str,
) -> Result<R, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Either<T, R> {
        text: fn(String) -> R,
        seq: fn(Vec<T>) -> R,
        what: &'static str,
    }
    impl<'de, T: Deserialize<'de>, R> Visitor<'de> for Either<T, R> {
        type Value = R;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.what)
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<R, E> {
            Ok((self.text)(v.to_owned()))
        }
        fn visit_string<E: serde::de::Error>(self, v: String) -> Result<R, E> {
            Ok((self.text)(v))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, items: A) -> Result<R, A::Error> {
            Ok((self.seq)(Vec::deserialize(SeqAccessDeserializer::new(
                items,
            ))?))
        }
    }
    de.deserialize_any(Either { text, seq, what })
}

/// An optional string borrowed from the event's bytes when it has no escapes: serde's
/// `borrow` borrows only a field of type `Cow<str>` itself, and an `Option<Cow<str>>`
/// was copied into a new `String` every time (three per streamed chunk).
pub(crate) fn borrowed_str<'de: 'a, 'a, D: Deserializer<'de>>(
    de: D,
) -> Result<Option<std::borrow::Cow<'a, str>>, D::Error> {
    #[derive(Deserialize)]
    struct Borrowed<'b>(#[serde(borrow)] std::borrow::Cow<'b, str>);
    Ok(Option::<Borrowed<'a>>::deserialize(de)?.map(|b| b.0))
}

/// A string or an array of strings (OpenAI `stop`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    /// The strings, however they were sent.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// `serde_json::from_slice`, with the bytes checked for UTF-8 once, up front, instead of
/// string by string: serde checks each string it reads from bytes on its own (a call of
/// ~100 instructions, and an answer or event holds dozens of strings). Bytes that are not
/// UTF-8 go to `from_slice`, for the error it has always given.
pub fn from_json<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> serde_json::Result<T> {
    match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(bytes),
    }
}

/// The members of the JSON object `body` whose keys are not among `known` (values of
/// known keys are skipped, not built). Not an object: no members.
pub fn unknown_members(body: &[u8], known: &'static [&'static str]) -> Map<String, Value> {
    struct Unknown(&'static [&'static str]);
    impl<'de> Visitor<'de> for Unknown {
        type Value = Map<String, Value>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Map::new();
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if self.0.contains(&key.as_ref()) {
                    map.next_value::<IgnoredAny>()?;
                } else {
                    out.insert(key.into_owned(), map.next_value::<Value>()?);
                }
            }
            Ok(out)
        }
    }
    // From text when it is UTF-8, as `from_json` does, for the same reason.
    match std::str::from_utf8(body) {
        Ok(text) => serde_json::Deserializer::from_str(text).deserialize_map(Unknown(known)),
        Err(_) => serde_json::Deserializer::from_slice(body).deserialize_map(Unknown(known)),
    }
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    #[derive(Debug, PartialEq, Deserialize)]
    struct Doc<'a> {
        #[serde(borrow)]
        text: Cow<'a, str>,
        n: u64,
    }

    /// The text read gives what the byte read gives, borrows the same plain strings, and
    /// bytes that are not UTF-8 get the byte read's own error.
    #[test]
    fn from_json_reads_as_from_slice_does() {
        let body = br#"{"text":"plain \u00e9t\u00e9","n":7}"#;
        let (a, b) = (from_json::<Doc>(body), serde_json::from_slice::<Doc>(body));
        assert_eq!(a.as_ref().ok(), b.as_ref().ok());
        assert_eq!(a.map(|d| d.text).ok(), Some(Cow::Owned("plain été".into())));
        let plain = br#"{"text":"plain","n":1}"#;
        assert!(matches!(
            from_json::<Doc>(plain).map(|d| d.text),
            Ok(Cow::Borrowed("plain"))
        ));
        for bad in [
            &b"{\"text\":\"\xff\",\"n\":1}"[..],
            b"{\"text\":\"ok\",\"n\":1}\xc3",
            b"{\"text\":1,\"n\":1}",
            b"",
        ] {
            let (a, b) = (from_json::<Doc>(bad), serde_json::from_slice::<Doc>(bad));
            assert_eq!(
                a.map_err(|e| e.to_string()),
                b.map_err(|e| e.to_string()),
                "{bad:?}"
            );
        }
    }

    /// Unknown members come out the same from text and from bytes that are not UTF-8.
    #[test]
    fn unknown_members_reads_text_and_bytes_alike() {
        let known: &'static [&'static str] = &["model"];
        let got = unknown_members(br#"{"model":"m","extra":{"a":[1,"x"]},"z":null}"#, known);
        assert_eq!(
            Value::Object(got),
            serde_json::json!({"extra": {"a": [1, "x"]}, "z": null})
        );
        // A skipped value is not checked for UTF-8 by the byte read: the rest still comes.
        let got = unknown_members(b"{\"model\":\"\xff\",\"x\":1}", known);
        assert_eq!(Value::Object(got), serde_json::json!({"x": 1}));
        assert!(unknown_members(b"[1]", known).is_empty());
    }
}
