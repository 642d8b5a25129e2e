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
pub mod write;

use std::fmt;

use serde::de::{value::SeqAccessDeserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::quick::skip_ws;

/// Reads a JSON string as `text(..)` or an array as `seq(..)` of its elements: what
/// `#[serde(untagged)]` does for such an enum, without its buffering (it copies the
/// whole value into an owned tree first, then tries each variant against the copy),
/// which was a large part of reading a translated request or answer. The text is
/// borrowed from the bytes when it has no escapes (a stream chunk keeps it so; an owned
/// type takes `Cow::into_owned`, one copy as before). `what` names the expected shape in
/// errors.
pub(crate) fn text_or_seq<'de, D, T, R>(
    de: D,
    text: fn(std::borrow::Cow<'de, str>) -> R,
    seq: fn(Vec<T>) -> R,
    what: &'static str,
) -> Result<R, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    use std::borrow::Cow;
    struct Either<'de, T, R> {
        text: fn(Cow<'de, str>) -> R,
        seq: fn(Vec<T>) -> R,
        what: &'static str,
    }
    impl<'de, T: Deserialize<'de>, R> Visitor<'de> for Either<'de, T, R> {
        type Value = R;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.what)
        }
        fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<R, E> {
            Ok((self.text)(Cow::Borrowed(v)))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<R, E> {
            Ok((self.text)(Cow::Owned(v.to_owned())))
        }
        fn visit_string<E: serde::de::Error>(self, v: String) -> Result<R, E> {
            Ok((self.text)(Cow::Owned(v)))
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

/// A function call's `arguments`: a JSON string, as OpenAI sends them, or the arguments
/// object itself, as some OpenAI-compatible hosts answer (and some clients feed back),
/// kept as its JSON text; `null` is absent. Borrowed from the bytes when it can be.
pub(crate) fn arguments_text<'de: 'a, 'a, D: Deserializer<'de>>(
    de: D,
) -> Result<Option<std::borrow::Cow<'a, str>>, D::Error> {
    use std::borrow::Cow;
    struct Arguments;
    impl<'de> Visitor<'de> for Arguments {
        type Value = Option<Cow<'de, str>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("the arguments as a JSON string or an object")
        }
        fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Borrowed(v)))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_owned())))
        }
        fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v)))
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
            de.deserialize_any(self)
        }
        fn visit_map<A: MapAccess<'de>>(self, members: A) -> Result<Self::Value, A::Error> {
            let object = Map::deserialize(serde::de::value::MapAccessDeserializer::new(members))?;
            Ok(Some(Cow::Owned(Value::Object(object).to_string())))
        }
    }
    de.deserialize_option(Arguments)
}

/// [`arguments_text`] as an owned string, empty when absent.
pub(crate) fn arguments_string<'de, D: Deserializer<'de>>(de: D) -> Result<String, D::Error> {
    Ok(arguments_text(de)?
        .map(std::borrow::Cow::into_owned)
        .unwrap_or_default())
}

/// A member sent as `null` read as if it were absent (its default), as the providers
/// read an optional parameter: SDKs send `null` for what the caller left unset (an
/// assistant message fed back from the OpenAI SDK's `model_dump()` carries
/// `"tool_calls": null`), and compatible hosts answer with it.
pub(crate) fn null_as_default<'de, D, T>(de: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(de)?.unwrap_or_default())
}

/// The other members of an object (a `flatten`ed map), leaving out those sent as
/// `null`: absent, as for a named member ([`null_as_default`]) and for the body's own
/// unknown members ([`unknown_members`]).
pub(crate) fn non_null_members<'de, D: Deserializer<'de>>(
    de: D,
) -> Result<Map<String, Value>, D::Error> {
    let mut members = Map::<String, Value>::deserialize(de)?;
    members.retain(|_, v| !v.is_null());
    Ok(members)
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
/// known keys are skipped, not built), leaving out those sent as `null`: absent, as for
/// a known member ([`null_as_default`]). Not an object: no members.
pub fn unknown_members(body: &[u8], known: &'static [&'static str]) -> Map<String, Value> {
    // Usually every key is known: a scan of the top-level keys says so without a second
    // parse of the body (for an agent's request of 100 KB of history, most of the cost).
    if all_keys_known(body, known) == Some(true) {
        return Map::new();
    }
    read_unknown_members(body, known)
}

/// [`unknown_members`] by serde: the unknown members' values are built, the others
/// skipped. Bytes that are not a JSON object give none.
fn read_unknown_members(body: &[u8], known: &'static [&'static str]) -> Map<String, Value> {
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
                    let v = map.next_value::<Value>()?;
                    if !v.is_null() {
                        out.insert(key.into_owned(), v);
                    }
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

/// Whether every top-level key of the JSON object `body` is among `known`, found by
/// passing over the values by their quotes and brackets, without reading them. `None`
/// when this scan does not decide: a key with an escape, or bytes it does not expect
/// (which the typed parse, run first on every caller's body, has refused anyway).
fn all_keys_known(body: &[u8], known: &[&str]) -> Option<bool> {
    let mut i = skip_ws(body, 0);
    (body.get(i) == Some(&b'{')).then_some(())?;
    i = skip_ws(body, i + 1);
    if body.get(i) == Some(&b'}') {
        return Some(true);
    }
    loop {
        (body.get(i) == Some(&b'"')).then_some(())?;
        let len = memchr::memchr2(b'"', b'\\', body.get(i + 1..)?)?;
        (body[i + 1 + len] == b'"').then_some(())?;
        let key = std::str::from_utf8(&body[i + 1..i + 1 + len]).ok()?;
        if !known.contains(&key) {
            return Some(false);
        }
        i = skip_ws(body, i + len + 2);
        (body.get(i) == Some(&b':')).then_some(())?;
        i = skip_value(body, skip_ws(body, i + 1))?;
        i = skip_ws(body, i);
        match body.get(i)? {
            b',' => i = skip_ws(body, i + 1),
            b'}' => return Some(true),
            _ => return None,
        }
    }
}

/// Where the value at `i` ends: past a string's closing quote, a container's closing
/// bracket, or a number's or literal's last byte.
fn skip_value(b: &[u8], mut i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => skip_string(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            loop {
                match *b.get(i)? {
                    b'"' => {
                        i = skip_string(b, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            let end = b[i..]
                .iter()
                .position(|c| matches!(c, b',' | b'}' | b']' | b' ' | b'\n' | b'\t' | b'\r'))
                .unwrap_or(b.len() - i);
            (end > 0).then_some(i + end)
        }
    }
}

/// Past the closing quote of the string whose opening quote is at `i`.
fn skip_string(b: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    loop {
        i += memchr::memchr2(b'"', b'\\', b.get(i..)?)?;
        match b[i] {
            b'"' => return Some(i + 1),
            // An escape: the byte after the backslash is never the string's end.
            _ => i += 2,
        }
    }
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

    /// Arguments are read from their JSON text (borrowed when plain) or from the object
    /// itself; `null` and absence read as none; any other value is refused, naming what
    /// was expected.
    #[test]
    fn arguments_are_read_from_text_or_object() {
        #[derive(Debug, Deserialize)]
        struct Delta<'a> {
            #[serde(borrow, default, deserialize_with = "arguments_text")]
            arguments: Option<Cow<'a, str>>,
        }
        #[derive(Debug, Deserialize)]
        struct Call {
            #[serde(default, deserialize_with = "arguments_string")]
            arguments: String,
        }
        fn read(body: &str) -> Result<Option<Cow<'_, str>>, serde_json::Error> {
            from_json::<Delta>(body.as_bytes()).map(|d| d.arguments)
        }
        assert!(matches!(
            read(r#"{"arguments":"{\"a\":1}"}"#),
            Ok(Some(Cow::Owned(a))) if a == r#"{"a":1}"#
        ));
        assert!(matches!(
            read(r#"{"arguments":"{}"}"#),
            Ok(Some(Cow::Borrowed("{}")))
        ));
        let object = read(r#"{"arguments": {"city": "Paris", "n": [1, {"x": null}]}}"#);
        assert_eq!(
            object.ok().flatten().as_deref(),
            Some(r#"{"city":"Paris","n":[1,{"x":null}]}"#)
        );
        assert!(matches!(read(r#"{"arguments":null}"#), Ok(None)));
        assert!(matches!(read("{}"), Ok(None)));
        for bad in [
            r#"{"arguments":1}"#,
            r#"{"arguments":[1]}"#,
            r#"{"arguments":true}"#,
        ] {
            let err = read(bad).unwrap_err().to_string();
            assert!(err.contains("a JSON string or an object"), "{bad}: {err}");
        }
        let call = |body: &str| serde_json::from_str::<Call>(body).map(|c| c.arguments).ok();
        assert_eq!(
            call(r#"{"arguments":{"a":"b"}}"#).as_deref(),
            Some(r#"{"a":"b"}"#)
        );
        assert_eq!(call(r#"{"arguments":null}"#).as_deref(), Some(""));
        assert_eq!(call(r#"{"arguments":"x"}"#).as_deref(), Some("x"));
        // Read from a tree (as an internally tagged enum reads its fields): owned strings.
        let from_tree = |v: Value| serde_json::from_value::<Call>(v).map(|c| c.arguments).ok();
        assert_eq!(
            from_tree(serde_json::json!({"arguments": "{}"})).as_deref(),
            Some("{}")
        );
        assert_eq!(
            from_tree(serde_json::json!({"arguments": null})).as_deref(),
            Some("")
        );
    }

    /// A JSON value whose strings hold what could mislead a scan: quotes, backslashes,
    /// brackets and braces, UTF-8.
    fn tricky_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let text = prop::sample::select(vec![
            "",
            "plain",
            "a\"b",
            "back\\slash",
            "}{",
            "][",
            "\\\"",
            "caf\u{e9} \u{1f600}",
            "line\nbreak",
            "{\"model\":1}",
            ",\"x\":",
            "\\",
        ]);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            (-1e6f64..1e6).prop_map(Value::from),
            text.prop_map(|t| Value::String(t.to_owned())),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec(("[a-z\"]{1,3}", inner), 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(2000))]

        /// The scan of the top-level keys decides as the serde read does: all known
        /// exactly when the object has no unknown key, whatever the values hold and
        /// however the object is printed; a key with an escape is left to serde, which
        /// gives the unknown members not sent as `null`.
        #[test]
        fn the_key_scan_agrees_with_the_serde_read(
            members in proptest::collection::vec(
                (proptest::sample::select(vec!["model", "messages", "stream", "max_tokens", "extra", "mod\"el"]), tricky_value()),
                0..6,
            ),
            pretty in proptest::bool::ANY,
        ) {
            let known: &'static [&'static str] = &["model", "messages", "stream", "max_tokens"];
            let object = Value::Object(members.into_iter().map(|(k, v)| (k.to_owned(), v)).collect());
            let body = if pretty {
                serde_json::to_vec_pretty(&object).unwrap()
            } else {
                serde_json::to_vec(&object).unwrap()
            };
            let read = read_unknown_members(&body, known);
            let o = object.as_object().unwrap();
            // (Keys only: a float read back may differ in its last digit.)
            let unknown: Vec<&String> = o
                .iter()
                .filter(|(k, v)| !known.contains(&k.as_str()) && !v.is_null())
                .map(|(k, _)| k)
                .collect();
            proptest::prop_assert_eq!(read.keys().collect::<Vec<_>>(), unknown);
            match all_keys_known(&body, known) {
                Some(all) => proptest::prop_assert_eq!(all, o.keys().all(|k| known.contains(&k.as_str()))),
                None => proptest::prop_assert!(object.as_object().unwrap().keys().any(|k| k.contains('"'))),
            }
            proptest::prop_assert_eq!(unknown_members(&body, known), read);
        }
    }

    /// Bytes that are not one JSON object: the scan does not say all are known unless
    /// serde finds no unknown member either.
    #[test]
    fn the_key_scan_of_broken_bodies_agrees_with_the_serde_read() {
        let known: &'static [&'static str] = &["model"];
        for body in [
            &b""[..],
            b"[]",
            b"{",
            b"{\"model\"",
            b"{\"model\":",
            b"{\"model\":\"m",
            b"{\"model\":1,",
            b"{\"model\":1 x}",
            b"{\"model\":]}",
            b"{\"model\":[1}",
            b"{\"model\":\"a\\\"}",
            b"{\"model\":1}trailing",
            b"{\"x\":1",
            b" {\"model\" : {\"x\":[\"]\"]} } ",
        ] {
            let all = all_keys_known(body, known);
            if all == Some(true) {
                assert!(read_unknown_members(body, known).is_empty(), "{body:?}");
            }
            assert_eq!(
                unknown_members(body, known),
                read_unknown_members(body, known),
                "{body:?}"
            );
        }
        assert_eq!(
            all_keys_known(b" {\"model\" : {\"x\":[\"]\"]} } ", known),
            Some(true)
        );
        assert_eq!(
            all_keys_known(b"{\"model\":1,\"x\":{}}", known),
            Some(false)
        );
    }

    /// Unknown members come out the same from text and from bytes that are not UTF-8;
    /// one sent as `null` is absent (a `null` inside a value is kept).
    #[test]
    fn unknown_members_reads_text_and_bytes_alike() {
        let known: &'static [&'static str] = &["model"];
        let got = unknown_members(
            br#"{"model":"m","extra":{"a":[1,"x"],"n":null},"z":null}"#,
            known,
        );
        assert_eq!(
            Value::Object(got),
            serde_json::json!({"extra": {"a": [1, "x"], "n": null}})
        );
        // A skipped value is not checked for UTF-8 by the byte read: the rest still comes.
        let got = unknown_members(b"{\"model\":\"\xff\",\"x\":1}", known);
        assert_eq!(Value::Object(got), serde_json::json!({"x": 1}));
        assert!(unknown_members(b"[1]", known).is_empty());
    }
}
