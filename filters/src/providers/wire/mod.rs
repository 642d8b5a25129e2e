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
    let mut de = serde_json::Deserializer::from_slice(body);
    de.deserialize_map(Unknown(known)).unwrap_or_default()
}
