//! Typed reads of stream events that keep the lenient tree read's meaning.
//!
//! A usage event used to be parsed whole into a `serde_json::Value` and then looked up;
//! a typed parse skips every other member without building anything. [`Member`] gives
//! the typed parse the lookups' meaning: a member absent, present with an object, or
//! present with any other value (which the tree read passed over, and so does this).

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, value::MapAccessDeserializer, Deserializer, Visitor};
use serde::Deserialize;

use crate::limits::estimate::read_past;

/// An object member as `value.get(key)` sees it, with its value read as `T` only when
/// it is an object.
#[derive(Debug, Default, PartialEq, Eq)]
pub enum Member<T> {
    #[default]
    Absent,
    /// Present; `None` when its value is not an object (`null` included).
    Present(Option<T>),
}

impl<T> Member<T> {
    /// The value, when it is an object.
    pub fn object(self) -> Option<T> {
        match self {
            Member::Present(v) => v,
            Member::Absent => None,
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Member<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ObjectOr(PhantomData))
    }
}

/// Reads an object as `T` and passes over any other value.
struct ObjectOr<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectOr<T> {
    type Value = Member<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Member<T>, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map)).map(|v| Member::Present(Some(v)))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Member<T>, A::Error> {
        while seq.next_element::<de::IgnoredAny>()?.is_some() {}
        Ok(Member::Present(None))
    }

    read_past!(Member<T> => Member::Present(None); visit_u64: u64);
    read_past!(Member<T> => Member::Present(None));
}

/// Whether an array holds an object with the member `key`, as
/// `value.as_array().is_some_and(|a| a.iter().any(|c| c.get(key).is_some()))` says: any
/// other value is `false`. Gemini's finishing chunk is the one whose candidates carry a
/// `finishReason`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AnyHasFinishReason(pub bool);

impl<'de> Deserialize<'de> for AnyHasFinishReason {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ArrayVisitor)
    }
}

struct ArrayVisitor;

impl<'de> Visitor<'de> for ArrayVisitor {
    type Value = AnyHasFinishReason;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut any = false;
        while let Some(c) = seq.next_element::<Member<FinishReason>>()? {
            any |= c.object().is_some_and(|c| c.finish_reason.0);
        }
        Ok(AnyHasFinishReason(any))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map
            .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
            .is_some()
        {}
        Ok(AnyHasFinishReason(false))
    }

    read_past!(AnyHasFinishReason => AnyHasFinishReason(false); visit_u64: u64);
    read_past!(AnyHasFinishReason => AnyHasFinishReason(false));
}

/// A candidate, for whether it has a `finishReason` member (of any value, `null` too).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct FinishReason {
    finish_reason: Seen,
}

/// Whether a member is there, whatever its value (`null` too, unlike an `Option`).
#[derive(Debug, Default)]
pub struct Seen(pub bool);

impl<'de> Deserialize<'de> for Seen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        de::IgnoredAny::deserialize(d).map(|_| Seen(true))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::Value;

    use crate::providers::{anthropic, gemini, openai};
    use crate::usage::Reported;

    /// Both reads of one event for every dialect: the typed one (`None` where it refuses
    /// the event) and the tree's.
    type Reads = [(Option<Option<Reported>>, Option<Reported>); 3];

    fn both_reads(doc: &str) -> Reads {
        let v: Value = serde_json::from_str(doc).unwrap();
        [
            (
                serde_json::from_str::<openai::Event>(doc)
                    .ok()
                    .map(openai::Event::reported),
                openai::usage_in_event(&v),
            ),
            (
                serde_json::from_str::<anthropic::Event>(doc)
                    .ok()
                    .map(anthropic::Event::reported),
                anthropic::usage_in_event(&v),
            ),
            (
                serde_json::from_str::<gemini::Event>(doc)
                    .ok()
                    .map(gemini::Event::reported),
                gemini::usage_in_event(&v),
            ),
        ]
    }

    /// The providers' own usage events take the typed read and agree with the tree's.
    #[test]
    fn real_usage_events_take_the_typed_read() {
        let openai = r#"{"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":19,"completion_tokens":20,"total_tokens":39,"prompt_tokens_details":{"cached_tokens":3},"completion_tokens_details":{"reasoning_tokens":2}}}"#;
        let responses = r#"{"type":"response.completed","response":{"id":"r","status":"completed","usage":{"input_tokens":9,"input_tokens_details":{"cached_tokens":1},"output_tokens":4,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":13}}}"#;
        let start = r#"{"type":"message_start","message":{"id":"m","type":"message","role":"assistant","content":[],"usage":{"input_tokens":12,"cache_creation_input_tokens":4,"cache_read_input_tokens":5,"output_tokens":1}}}"#;
        let delta = r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}"#;
        let gemini = r#"{"candidates":[{"content":{"parts":[{"text":"hi"}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":8,"candidatesTokenCount":4,"thoughtsTokenCount":2,"cachedContentTokenCount":3,"totalTokenCount":14}}"#;
        for (doc, dialect) in [
            (openai, 0),
            (responses, 0),
            (start, 1),
            (delta, 1),
            (gemini, 2),
        ] {
            let (typed, tree) = both_reads(doc)[dialect];
            assert_eq!(typed, Some(tree), "{doc}");
            assert!(tree.is_some(), "{doc}");
        }
        let (typed, _) = both_reads(delta)[1];
        assert!(typed
            .flatten()
            .is_some_and(|r| r.complete && r.output == Some(15)));
        let (typed, _) = both_reads(start)[1];
        assert!(typed
            .flatten()
            .is_some_and(|r| !r.complete && r.cache_read == Some(5)));
        let (typed, _) = both_reads(gemini)[2];
        assert!(typed.flatten().is_some_and(|r| r.complete));
    }

    /// A member's value as the events' generator may write it.
    fn value() -> impl Strategy<Value = String> {
        let count = prop_oneof![
            (0u64..1000).prop_map(|n| n.to_string()),
            Just("2.5".to_owned()),
            Just("-1".to_owned()),
            Just(r#""7""#.to_owned()),
            Just("null".to_owned()),
        ];
        let key = proptest::sample::select(vec![
            "prompt_tokens",
            "completion_tokens",
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "promptTokenCount",
            "candidatesTokenCount",
        ]);
        let usage = proptest::collection::vec((key, count), 0..4).prop_map(|fields| {
            let body: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!(r#""{k}":{v}"#))
                .collect();
            format!("{{{}}}", body.join(","))
        });
        let leaf = prop_oneof![
            usage,
            Just("null".to_owned()),
            Just("3".to_owned()),
            Just("[1,{}]".to_owned()),
            Just(r#""message_delta""#.to_owned()),
            Just("true".to_owned()),
        ];
        leaf.prop_recursive(2, 12, 3, |inner| {
            let member = (
                proptest::sample::select(vec![
                    "usage",
                    "message",
                    "response",
                    "type",
                    "candidates",
                    "finishReason",
                    "usageMetadata",
                ]),
                inner.clone(),
            );
            prop_oneof![
                proptest::collection::vec(member, 0..4).prop_map(|m| {
                    let body: Vec<String> =
                        m.iter().map(|(k, v)| format!(r#""{k}":{v}"#)).collect();
                    format!("{{{}}}", body.join(","))
                }),
                proptest::collection::vec(inner, 0..3).prop_map(|a| format!("[{}]", a.join(","))),
            ]
        })
    }

    fn event() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            (
                proptest::sample::select(vec![
                    "usage",
                    "message",
                    "response",
                    "type",
                    "candidates",
                    "usageMetadata",
                    "id",
                ]),
                value(),
            ),
            0..5,
        )
        .prop_map(|m| {
            let body: Vec<String> = m.iter().map(|(k, v)| format!(r#""{k}":{v}"#)).collect();
            format!("{{{}}}", body.join(","))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Wherever the typed read takes an event, it reports what the tree read does.
        #[test]
        fn the_typed_read_agrees_with_the_tree(doc in event()) {
            for (typed, tree) in both_reads(&doc) {
                if let Some(typed) = typed {
                    prop_assert_eq!(typed, tree, "{}", doc);
                }
            }
        }
    }
}
