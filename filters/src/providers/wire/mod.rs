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

use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

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
