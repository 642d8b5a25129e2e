//! Reading usage out of response bytes, shared by the provider modules: the last usage
//! object after a key in a body's tail, and the cheap test that a stream event carries
//! one at all. What the object's fields mean is each provider's own ([`NativeUsage`]).
//!
//! A usage object is read by a typed parse of the provider's usage struct, which skips
//! every other key without building a tree (the per-request path); an object that the
//! typed parse refuses (a field of an unexpected type) is read leniently from a
//! `serde_json::Value` instead, so odd providers are metered exactly, only slower.

use std::sync::LazyLock;

use memchr::memmem::Finder;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::quick::{self, Quick};
use crate::usage::{find_key_objects, value_at, Reported};

/// A provider's own usage object, as its API spells it.
pub trait NativeUsage: DeserializeOwned + for<'q> Quick<'q> {
    /// The fields of a parsed value, each read on its own: a field of another type is
    /// absent rather than spoiling the rest.
    fn from_value(v: &Value) -> Self;

    /// The counts folded into the disjoint buckets of the README's "Usage and cost";
    /// `None` when the object carries none of the counts that make a report.
    fn reported(&self) -> Option<Reported>;
}

/// The count at `path` below `v`, if it is a non-negative integer.
pub fn count(v: &Value, path: &[&str]) -> Option<u64> {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_u64)
}

/// The usage object that follows the last `"key":` in `buf` (a value that is `null` or
/// does not parse is passed over for the one before).
pub fn last_usage_of<T: NativeUsage>(buf: &[u8], key: &[u8]) -> Option<T> {
    find_key_objects(buf, key).find_map(|pos| {
        let rest = buf[pos..].trim_ascii_start();
        // Only an object takes the typed parse: serde would also read an array into the
        // struct's fields by position.
        if rest.starts_with(b"{") {
            // The usual shape by hand; the typed parse decides anything else.
            if let Some(fields) = quick::leading::<T>(rest) {
                return Some(fields);
            }
            let mut typed = serde_json::Deserializer::from_slice(rest).into_iter::<T>();
            if let Some(Ok(fields)) = typed.next() {
                return Some(fields);
            }
        }
        value_at(rest).map(|v| T::from_value(&v))
    })
}

/// The searcher for `"usage`, the start of every usage key, built once (building one
/// costs more than a search).
static USAGE_KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"usage"));

/// Where `"usage` first occurs in `data`.
pub fn usage_key_in(data: &[u8]) -> Option<usize> {
    USAGE_KEY.find(data)
}

/// Where `"usage` first occurs in `data` if that occurrence starts before `end` (it may
/// run on past it): only the bytes such a key can cover are searched.
pub fn usage_key_starting_before(data: &[u8], end: usize) -> Option<usize> {
    let reach = end.saturating_add(USAGE_KEY.needle().len() - 1);
    USAGE_KEY.find(&data[..reach.min(data.len())])
}

/// Where `"usage` occurs in a run of stream events, found in one pass as the events are
/// taken in order: an event with no occurrence holds no usage key, and most events are
/// such, so each is spared a search of its own.
pub struct UsageKeys<'a> {
    data: &'a [u8],
    /// The first occurrence at or after the last event asked about.
    next: Option<usize>,
}

impl<'a> UsageKeys<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        UsageKeys {
            data,
            next: USAGE_KEY.find(data),
        }
    }

    /// The same, with the first occurrence already found by a search of the same
    /// bytes (`None`: there is none before the last line feed of `data`, after which no
    /// event is asked about).
    pub fn found(data: &'a [u8], first: Option<usize>) -> Self {
        UsageKeys { data, next: first }
    }

    /// Where `"usage` first occurs at or after the last event asked about, if it does.
    pub fn next(&self) -> Option<usize> {
        self.next
    }

    /// Whether `"usage` occurs within `data[start..end]`; events must be asked about in
    /// order (each `start` at or after the previous `end`).
    pub fn within(&mut self, start: usize, end: usize) -> bool {
        if self.next.is_some_and(|at| at < start) {
            let from = start.min(self.data.len());
            self.next = USAGE_KEY.find(&self.data[from..]).map(|i| from + i);
        }
        self.next.is_some_and(|at| at + 6 <= end)
    }
}

/// Whether a payload has a `"usage"` or `"usageMetadata"` key whose value is an object.
/// Most stream events carry none (or `"usage":null`), and this check keeps them from
/// being parsed at all.
pub fn has_usage_object(data: &[u8]) -> bool {
    let mut rest = data;
    while let Some(i) = USAGE_KEY.find(rest) {
        let mut after = &rest[i + 6..];
        if let Some(r) = after.strip_prefix(b"Metadata") {
            after = r;
        }
        if let Some(r) = after.strip_prefix(b"\"") {
            let r = r.trim_ascii_start();
            if let Some(r) = r.strip_prefix(b":") {
                if r.trim_ascii_start().starts_with(b"{") {
                    return true;
                }
            }
        }
        rest = &rest[i + 6..];
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::openai;

    #[test]
    fn a_key_is_found_only_when_it_starts_before_the_bound() {
        let data = br#"ab"usage":1"#;
        // The key starts at 2 and runs to 8.
        assert_eq!(usage_key_starting_before(data, 3), Some(2));
        assert_eq!(usage_key_starting_before(data, 2), None);
        assert_eq!(usage_key_starting_before(data, 0), None);
        assert_eq!(usage_key_starting_before(data, 100), Some(2));
        assert_eq!(usage_key_starting_before(b"\"usa", 1), None);
    }

    #[test]
    fn odd_values_fall_back_to_the_lenient_read() {
        // A float, a negative and a string where a count belongs: those fields are
        // absent, the others still count.
        let doc = br#"{"usage":{"prompt_tokens":10.0,"completion_tokens":4,"total_tokens":-1,"prompt_tokens_details":{"cached_tokens":"2"}}}"#;
        let f: openai::Usage = last_usage_of(doc, b"usage").unwrap();
        assert_eq!((f.prompt_tokens, f.completion_tokens), (None, Some(4)));
        assert_eq!(f.cached(), None);
        // null passes over to the earlier object; an array is not read by position.
        let doc = br#"{"usage":{"prompt_tokens":6},"x":{"usage":null}}"#;
        let f: openai::Usage = last_usage_of(doc, b"usage").unwrap();
        assert_eq!(f.prompt_tokens, Some(6));
        let doc = br#"{"usage":[1,2,3]}"#;
        assert_eq!(last_usage_of(doc, b"usage"), Some(openai::Usage::default()));
        assert_eq!(
            last_usage_of::<openai::Usage>(br#"{"usage":null}"#, b"usage"),
            None
        );
        assert_eq!(
            last_usage_of::<openai::Usage>(br#"{"usage":{"prompt_tokens":"#, b"usage"),
            None
        );
    }

    #[test]
    fn usage_keys_are_found_per_event_in_order() {
        let data = br#"{"a":1}|{"usage":null}|{"b":"x"}|{"usage":{},"usageMetadata":{}}|"usage|"#;
        let events: Vec<(usize, usize)> = {
            let mut start = 0;
            data.iter()
                .enumerate()
                .filter(|(_, b)| **b == b'|')
                .map(|(i, _)| {
                    let e = (start, i);
                    start = i + 1;
                    e
                })
                .collect()
        };
        let mut keys = UsageKeys::new(data);
        let found: Vec<bool> = events.iter().map(|&(a, b)| keys.within(a, b)).collect();
        assert_eq!(found, [false, true, false, true, true]);
        // A key cut by the event's end is not in it; none at all in an empty run.
        let mut keys = UsageKeys::new(br#"x"usage"#);
        assert!(!keys.within(0, 5));
        assert!(keys.within(1, 7));
        assert!(!UsageKeys::new(b"").within(0, 0));
        // Asked past the last key: none.
        let mut keys = UsageKeys::new(br#""usage"..."#);
        assert!(!keys.within(7, 10));
    }

    #[test]
    fn usage_objects_are_told_from_null_and_from_text() {
        assert!(has_usage_object(br#"{"usage":{"prompt_tokens":1}}"#));
        assert!(has_usage_object(
            br#"{"usageMetadata" : {"promptTokenCount":1}}"#
        ));
        assert!(!has_usage_object(br#"{"choices":[],"usage":null}"#));
        assert!(!has_usage_object(
            br#"{"delta":{"text":"the \"usage\" of words"}}"#
        ));
    }
}
