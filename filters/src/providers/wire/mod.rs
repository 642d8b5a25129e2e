//! The wire types of each dialect's requests, responses and stream events, as the
//! providers publish them: what `translate/` reads and writes. Each module is one
//! dialect's; they hold shapes only (no translation logic), and nothing in the native
//! (same-dialect) path uses them.
//!
//! Request types keep the fields they do not know in `extra`, so a reader can refuse or
//! drop them by name instead of losing them silently. Stream event types borrow from
//! the event's bytes (`Cow`), so a chunk is parsed once without copying its text.

pub mod anthropic;
pub mod gemini;
pub mod openai;
pub mod responses;

use serde::{Deserialize, Serialize};

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
