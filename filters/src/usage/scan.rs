//! Allocation-free scanning of JSON text: finding a key's object without parsing the
//! whole document, and counting generated text for estimates.

use std::borrow::Cow;
use std::sync::LazyLock;

use memchr::memmem::Finder;

/// Positions just after each `"key"` (a real key, not text inside a string, which would
/// carry escaped quotes) followed by `:`, from last to first. The pattern is searched
/// with `memchr::memmem` (vectorised) rather than compared at every byte. Its matches do
/// not overlap, which loses nothing: a match overlapping a later one is followed by the
/// key's first byte, never by `:`.
pub fn find_key_objects<'a>(buf: &'a [u8], key: &'a [u8]) -> impl Iterator<Item = usize> + 'a {
    let pat_len = key.len() + 2;
    let finder = finder_for(key);
    let mut end = buf.len();
    std::iter::from_fn(move || {
        let i = rfind(&finder, &buf[..end], FIRST_WINDOW)?;
        end = i;
        Some(i)
    })
    .filter_map(move |i| {
        if i > 0 && buf[i - 1] == b'\\' {
            return None;
        }
        let rest = &buf[i + pat_len..];
        let colon = rest.iter().position(|b| !b.is_ascii_whitespace())?;
        (rest[colon] == b':').then_some(i + pat_len + colon + 1)
    })
}

/// The bytes from the end that [`rfind`] searches first: an answer's usage is its last
/// member, within a few hundred bytes of its end.
const FIRST_WINDOW: usize = 256;

/// Where the last match of `finder` in `buf` starts. memchr's reverse search is not
/// vectorised (several instructions a byte): this searches forward, vectorised, in
/// windows from the end back, each twice the last, which overlap by the needle's length
/// less one so that a match across their border is found in the earlier one.
fn rfind(finder: &Finder<'_>, buf: &[u8], first_window: usize) -> Option<usize> {
    let overlap = finder.needle().len().saturating_sub(1);
    let (mut end, mut size) = (buf.len(), first_window.max(1));
    loop {
        let start = end.saturating_sub(size);
        let window = &buf[start..end];
        // The last match in the window: the matches may overlap, so each search
        // starts one byte past the one before.
        let mut last = None;
        let mut from = 0;
        while let Some(i) = finder.find(&window[from..]) {
            last = Some(from + i);
            from += i + 1;
        }
        if let Some(i) = last {
            return Some(start + i);
        }
        if start == 0 {
            return None;
        }
        end = (start + overlap).min(end);
        size = size.saturating_mul(2);
    }
}

/// The searchers for the quoted usage keys, built once: building one costs more than a
/// search of a whole response.
static USAGE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"usage\""));
static USAGE_METADATA: LazyLock<Finder<'static>> =
    LazyLock::new(|| Finder::new(b"\"usageMetadata\""));

/// The searcher for `"key"`: a shared one for the usage keys, a new one otherwise.
fn finder_for(key: &[u8]) -> Cow<'static, Finder<'static>> {
    match key {
        b"usage" => Cow::Borrowed(&*USAGE),
        b"usageMetadata" => Cow::Borrowed(&*USAGE_METADATA),
        _ => {
            let mut pattern = Vec::with_capacity(key.len() + 2);
            pattern.push(b'"');
            pattern.extend_from_slice(key);
            pattern.push(b'"');
            Cow::Owned(Finder::new(&pattern).into_owned())
        }
    }
}

/// The JSON value that follows the last `"key":` in `buf`, if it parses.
pub fn last_value_of(buf: &[u8], key: &[u8]) -> Option<serde_json::Value> {
    find_key_objects(buf, key).find_map(|pos| value_at(&buf[pos..]))
}

/// The first JSON value in `rest` (what follows a key's colon), unless it is `null` or
/// does not parse.
pub fn value_at(rest: &[u8]) -> Option<serde_json::Value> {
    let mut de = serde_json::Deserializer::from_slice(rest).into_iter::<serde_json::Value>();
    match de.next() {
        Some(Ok(v)) if !v.is_null() => Some(v),
        _ => None,
    }
}

/// Keys whose string values are generated text (or tool arguments), across providers.
const TEXT_KEYS: &[&[u8]] = &[
    b"content",
    b"text",
    b"thinking",
    b"partial_json",
    b"arguments",
    b"delta",
    b"refusal",
];

/// Characters of generated text in a JSON fragment: the string values of [`TEXT_KEYS`],
/// escapes counted as one character. Good enough for a chars/4 estimate.
pub fn count_text_chars(buf: &[u8]) -> u64 {
    let mut total = 0u64;
    let mut i = 0;
    // memchr: the quotes are far apart, and this runs over every response body.
    while let Some(off) = memchr::memchr(b'"', &buf[i..]) {
        let start = i + off + 1;
        let Some(len) = memchr::memchr(b'"', &buf[start..]) else {
            break;
        };
        let key = &buf[start..start + len];
        let mut j = start + len + 1;
        i = j;
        if !TEXT_KEYS.contains(&key) {
            continue;
        }
        while j < buf.len() && buf[j].is_ascii_whitespace() {
            j += 1;
        }
        if buf.get(j) != Some(&b':') {
            continue;
        }
        j += 1;
        while j < buf.len() && buf[j].is_ascii_whitespace() {
            j += 1;
        }
        if buf.get(j) != Some(&b'"') {
            continue;
        }
        j += 1;
        while j < buf.len() && buf[j] != b'"' {
            if buf[j] == b'\\' {
                j += 1;
            }
            // count characters, not UTF-8 continuation bytes
            if buf.get(j).is_some_and(|&b| b & 0xC0 != 0x80) {
                total += 1;
            }
            j += 1;
        }
        i = (j + 1).min(buf.len());
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]
        /// The windowed search finds what memchr's reverse search finds, whatever the
        /// first window: matches in the last one, across a border, or overlapping.
        #[test]
        fn the_windowed_search_finds_the_last_match(
            buf in proptest::collection::vec(proptest::sample::select(b"\"usage:x".to_vec()), 0..300),
            needle in proptest::sample::select(vec![&b"\"usage\""[..], b"\"u\"", b"\"", b"usage"]),
            first_window in 1usize..40,
        ) {
            let finder = Finder::new(needle);
            proptest::prop_assert_eq!(
                rfind(&finder, &buf, first_window),
                memchr::memmem::rfind(&buf, needle)
            );
        }
    }

    #[test]
    fn finds_the_last_real_key() {
        let doc = br#"{"content":"say \"usage\": 5","usage":{"a":1},"x":{"usage" : {"a":2}}}"#;
        assert_eq!(
            last_value_of(doc, b"usage"),
            Some(serde_json::json!({"a":2}))
        );
        assert_eq!(last_value_of(br#"{"usage":null}"#, b"usage"), None);
        // An escaped or key-less "usage" after the real one is passed over.
        let doc = br#"{"usage":{"a":3},"t":"\"usage\":{}","u":"usage","usage"x}"#;
        assert_eq!(
            last_value_of(doc, b"usage"),
            Some(serde_json::json!({"a":3}))
        );
        assert_eq!(last_value_of(br#""usage""#, b"usage"), None);
        assert_eq!(last_value_of(b"", b"usage"), None);
    }

    #[test]
    fn counts_text_values() {
        assert_eq!(count_text_chars(br#"{"delta":{"content":"Hello"}}"#), 5);
        assert_eq!(
            count_text_chars(br#"{"text": "a\"b", "role":"assistant"}"#),
            3
        );
        assert_eq!(count_text_chars("{\"text\":\"h\u{e9}\"}".as_bytes()), 2);
    }

    #[test]
    fn counts_every_text_key_as_characters_with_escapes_as_one() {
        let c = |s: &str| count_text_chars(s.as_bytes());
        let every = r#"{"content":"ab","text":"ab","thinking":"ab","partial_json":"ab","arguments":"ab","delta":"ab","refusal":"ab"}"#;
        assert_eq!(c(every), 14);
        assert_eq!(c(r#"{"role":"assistant","id":"x"}"#), 0);
        assert_eq!(c(r#"{"text" :  "abc"}"#), 3);
        assert_eq!(c(r#"{"text":"\\"}"#), 1);
        assert_eq!(c(r#"{"text":"\u00e9x"}"#), 6);
        assert_eq!(c("{\"text\":\"\u{1F600}\u{e9}\"}"), 2);
        assert_eq!(c(r#"{"content":null,"text":"ab"}"#), 2);
        assert_eq!(c(r#"{"content":[{"text":"abc"}],"delta":{"text":"d"}}"#), 4);
        assert_eq!(c(r#"{"text":"abc"#), 3, "unterminated: counted to the end");
        assert_eq!(
            c(r#"{"text":"ab\"#),
            2,
            "a trailing backslash escapes nothing"
        );
        assert_eq!(c(r#"{"text" "ab"}"#), 0, "no colon: not a key");
        assert_eq!(c(r#""text":"a","text":"b""#), 2);
        assert_eq!(c(r#"{"text":"a"} "text""#), 1);
        assert_eq!(c(r#"{"x":"text","content":"abcd"}"#), 4);
        assert_eq!(c(""), 0);
        assert_eq!(c("\""), 0);
        assert_eq!(c(r#"{"text": "#), 0, "cut after the colon's whitespace");
        assert_eq!(c(r#"{"text" "#), 0, "cut after the key's whitespace");
    }

    #[test]
    fn key_positions_run_from_the_last_and_skip_escaped_and_colonless_keys() {
        let doc = br#"{"usage":1,"usage" :2,\"usage\":3,"usage"}"#;
        let at: Vec<usize> = find_key_objects(doc, b"usage").collect();
        assert_eq!(at.len(), 2);
        assert_eq!(&doc[at[0]..at[0] + 1], b"2");
        assert_eq!(&doc[at[1]..at[1] + 1], b"1");
        assert!(at[0] > at[1]);
        // Any other key takes a searcher of its own.
        let doc = br#"{"foo": {"a":1}, "bar": [2], "foo":"x"}"#;
        assert_eq!(last_value_of(doc, b"foo"), Some(serde_json::json!("x")));
        assert_eq!(last_value_of(doc, b"bar"), Some(serde_json::json!([2])));
        assert_eq!(
            last_value_of(br#"{"usageMetadata" : {"a":1}}"#, b"usageMetadata"),
            Some(serde_json::json!({"a":1}))
        );
        assert_eq!(find_key_objects(br#""usage""#, b"usage").count(), 0);
        // A key whose own text is `"usage` ends like the real key but is not it.
        assert_eq!(last_value_of(br#"{"\"usage":{"a":1}}"#, b"usage"), None);
        assert_eq!(
            last_value_of(br#"{"usage":{"a":2},"\"usage":{"a":1}}"#, b"usage"),
            Some(serde_json::json!({"a":2}))
        );
        assert_eq!(find_key_objects(br#""usage"   "#, b"usage").count(), 0);
        assert_eq!(value_at(b" 5 trailing"), Some(serde_json::json!(5)));
        assert_eq!(value_at(b"null"), None);
        assert_eq!(value_at(b"{"), None);
    }
}
