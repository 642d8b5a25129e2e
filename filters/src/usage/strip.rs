//! Removing the one usage chunk Tollgate asked for on a client's behalf.
//!
//! When a client streams from an OpenAI-style API without
//! `stream_options.include_usage`, Tollgate adds it upstream so that it can bill the
//! stream, and removes what that addition changed from what the client receives: the
//! extra event (`"choices":[]` with a `usage` object), and the `"usage":null` member the
//! provider then ends every other chunk with. Every other byte passes unchanged; only an
//! incomplete trailing event is held back until its end arrives.

use std::sync::LazyLock;

use bytes::{Bytes, BytesMut};
use memchr::memmem::Finder;

use super::FirstUsageKey;
use crate::providers::read::{usage_key_starting_before, UsageKeys};

/// Longest incomplete event held back; past it the bytes pass through as they are (a
/// usage event is never that long).
const MAX_HELD: usize = 64 * 1024;

#[derive(Debug, Default)]
pub struct UsageChunkStripper {
    held: BytesMut,
    removed: bool,
}

/// Where the first complete event in `buf` ends (after its blank line: `\n\n` or
/// `\r\n\r\n`, whichever ends first). It looks only at the line feeds, found with
/// `memchr`: an event has two or three, and this runs on every event of every stream
/// whose usage chunk is removed.
fn event_end(buf: &[u8]) -> Option<usize> {
    memchr::memchr_iter(b'\n', buf).find_map(|nl| {
        let next = buf.get(nl + 1..).unwrap_or_default();
        if next.starts_with(b"\n") {
            Some(nl + 2)
        } else if nl > 0 && buf[nl - 1] == b'\r' && next.starts_with(b"\r\n") {
            Some(nl + 3)
        } else {
            None
        }
    })
}

/// An end of an event (as [`event_end`] finds them one after another from the start) at
/// or before `limit`, found backwards: after the last `\n\n` before `limit` when the byte
/// before that is neither `\n` nor `\r`; 0 (the start) otherwise. No earlier line feed can
/// end the event that such a blank line is in (that would take a `\n` or `\r` just before
/// it), so the scan from the start ends an event there too. The events before it hold no
/// `"usage` when `limit` is the first one, and need no look at all.
fn event_end_before(buf: &[u8], limit: usize) -> usize {
    match last_blank_line(&buf[..limit]) {
        Some(i) if i == 0 || !matches!(buf[i - 1], b'\n' | b'\r') => i + 2,
        _ => 0,
    }
}

/// Where the last `\n\n` in `buf` starts: the line feeds from the end, found with
/// `memrchr` (a stream's chunk ends in one, or a line from one).
fn last_blank_line(buf: &[u8]) -> Option<usize> {
    let mut end = buf.len();
    while let Some(nl) = memchr::memrchr(b'\n', &buf[..end]) {
        if nl > 0 && buf[nl - 1] == b'\n' {
            return Some(nl - 1);
        }
        end = nl;
    }
    None
}

/// Whether `[` is followed by `]` with only whitespace between: necessary for the
/// compacted event to hold `"choices":[]`, and cheap, so that ordinary content events
/// (`"choices":[{...`) are not compacted at all.
fn has_empty_array(event: &[u8]) -> bool {
    memchr::memchr_iter(b'[', event)
        .any(|i| event[i + 1..].iter().find(|b| !b.is_ascii_whitespace()) == Some(&b']'))
}

/// The searchers of the compacted usage event, built once (building one costs more than
/// a search).
static DATA: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"data:"));
static CHOICES_EMPTY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"choices\":[]"));
static USAGE_OBJECT: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"usage\":{"));

fn is_usage_only_event(event: &[u8]) -> bool {
    // Both tests are necessary and cheap: content events carry no usage object.
    if !crate::providers::read::has_usage_object(event) || !has_empty_array(event) {
        return false;
    }
    let compact = without_whitespace(event);
    let data = DATA.find(&compact).map(|i| &compact[i + 5..]);
    data.is_some_and(|d| CHOICES_EMPTY.find(d).is_some() && USAGE_OBJECT.find(d).is_some())
}

/// `event` without its ASCII whitespace. An event holds little (`data: `, its line
/// ends): the runs between are found with `memchr` and copied whole, unless it holds a
/// `\r` or form feed, which are left to the byte-by-byte filter.
fn without_whitespace(event: &[u8]) -> Vec<u8> {
    let mut compact = Vec::with_capacity(event.len());
    if memchr::memchr2(b'\r', b'\x0c', event).is_some() {
        compact.extend(event.iter().copied().filter(|b| !b.is_ascii_whitespace()));
        return compact;
    }
    let mut from = 0;
    for ws in memchr::memchr3_iter(b' ', b'\n', b'\t', event) {
        compact.extend_from_slice(&event[from..ws]);
        from = ws + 1;
    }
    compact.extend_from_slice(&event[from..]);
    compact
}

/// Where the `,"usage":null` member that ends an event's payload lies (from its comma to
/// the end of `null`), if it does. Read backwards from the payload's closing brace: in a
/// JSON object the member just before that brace is a top-level one, so a `"usage":null`
/// nested deeper or quoted inside a string (its quotes escaped) never matches. Only a
/// member after another is taken: OpenAI appends it last.
fn null_usage_member(event: &[u8]) -> Option<std::ops::Range<usize>> {
    let payload = event.trim_ascii_end();
    let rest = payload.strip_suffix(b"}")?.trim_ascii_end();
    let end = rest.len();
    let rest = rest.strip_suffix(b"null")?.trim_ascii_end();
    let rest = rest.strip_suffix(b":")?.trim_ascii_end();
    let rest = rest.strip_suffix(b"\"usage\"")?.trim_ascii_end();
    let start = rest.strip_suffix(b",")?.len();
    Some(start..end)
}

impl UsageChunkStripper {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the usage event was found and removed.
    pub fn removed(&self) -> bool {
        self.removed
    }

    /// The bytes to send to the client for this chunk (possibly empty while an event is
    /// incomplete). `end` flushes whatever is held.
    ///
    /// The usual chunk (whole events, none to edit) passes as it is, with no copy and no
    /// allocation, a trailing part-event held back; an edited one is copied once, around
    /// the cuts. Only events that hold `"usage` are looked at closely.
    pub fn process(&mut self, chunk: Bytes, end: bool) -> Bytes {
        self.process_searched(chunk, end, None)
    }

    /// [`UsageChunkStripper::process`], told what the meter's search of the same chunk
    /// found: a chunk that follows whole events (nothing held) is not searched again.
    pub fn process_searched(
        &mut self,
        chunk: Bytes,
        end: bool,
        searched: Option<FirstUsageKey>,
    ) -> Bytes {
        let found = searched.and_then(|s| s.in_chunk(&chunk));
        let held = self.held.len();
        let data = if held == 0 {
            chunk
        } else {
            self.held.extend_from_slice(&chunk);
            self.held.split().freeze()
        };
        let mut out: Option<BytesMut> = None;
        // `data` before this is in `out` already, or cut.
        let mut done = 0;
        let mut usage = match found {
            // After held bytes, only a key that starts in them (and perhaps runs on into
            // the chunk) is looked for; past them, the chunk's is the meter's.
            Some(first) if held == 0 => UsageKeys::found(&data, first),
            Some(first) => UsageKeys::found(
                &data,
                usage_key_starting_before(&data, held).or(first.map(|at| held + at)),
            ),
            None => UsageKeys::new(&data),
        };
        // The events before the first `"usage` pass as they are: skip them at once (in
        // a bulk stream, dozens of content events a chunk).
        let mut pos = event_end_before(&data, usage.next().unwrap_or(data.len()));
        while let Some(n) = event_end(&data[pos..]) {
            if usage.within(pos, pos + n) {
                if let Some(cut) = self.cut(&data[pos..pos + n]) {
                    let o = out.get_or_insert_with(|| BytesMut::with_capacity(data.len()));
                    o.extend_from_slice(&data[done..pos + cut.start]);
                    done = pos + cut.end;
                }
            }
            pos += n;
        }
        let sent = if end || data.len() - pos > MAX_HELD {
            data.len()
        } else {
            pos
        };
        self.held.extend_from_slice(&data[sent..]);
        match out {
            None => data.slice(..sent),
            Some(mut o) => {
                o.extend_from_slice(&data[done..sent]);
                o.freeze()
            }
        }
    }

    /// What to cut from an event: all of it (the first usage-only event), its
    /// `,"usage":null` member, or nothing.
    fn cut(&mut self, event: &[u8]) -> Option<std::ops::Range<usize>> {
        if !self.removed && is_usage_only_event(event) {
            self.removed = true;
            Some(0..event.len())
        } else {
            null_usage_member(event)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WITH_USAGE: &str = concat!(
        "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n",
        "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
        "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1,\"total_tokens\":6}}\n\n",
        "data: [DONE]\n\n",
    );

    /// What the provider sends a client that did not ask for usage: no usage chunk, no
    /// `"usage":null` member.
    const WITHOUT_USAGE: &str = concat!(
        "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n",
        "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
        "data: [DONE]\n\n",
    );

    /// Every pair of cuts of `input` gives `want`.
    fn every_cut_gives(input: &str, want: &str) {
        let bytes = input.as_bytes();
        for a in 0..=bytes.len() {
            for b in a..=bytes.len() {
                let mut s = UsageChunkStripper::new();
                let mut got = Vec::new();
                for (piece, end) in [
                    (&bytes[..a], false),
                    (&bytes[a..b], false),
                    (&bytes[b..], true),
                ] {
                    got.extend_from_slice(&s.process(Bytes::copy_from_slice(piece), end));
                }
                assert_eq!(String::from_utf8_lossy(&got), want, "cuts {a}, {b}");
            }
        }
    }

    #[test]
    fn the_client_gets_what_it_would_have_got_without_the_addition() {
        every_cut_gives(WITH_USAGE, WITHOUT_USAGE);
        // CRLF events, spaced members, and a member that only looks alike are handled
        // by the same rule: only a top-level `"usage":null` that ends the payload goes.
        let crlf = "data: {\"a\":[1], \"usage\" : null }\r\n\r\ndata: {\"b\":\"\\\",\\\"usage\\\":null}\r\n\r\ndata: {\"c\":{\"usage\":null}}\n\n";
        let want = "data: {\"a\":[1] }\r\n\r\ndata: {\"b\":\"\\\",\\\"usage\\\":null}\r\n\r\ndata: {\"c\":{\"usage\":null}}\n\n";
        every_cut_gives(crlf, want);
    }

    #[test]
    fn removes_exactly_the_usage_event_at_any_split() {
        let want = WITHOUT_USAGE;
        for split in 0..=WITH_USAGE.len() {
            let mut s = UsageChunkStripper::new();
            let (a, b) = WITH_USAGE.as_bytes().split_at(split);
            let mut got = s.process(Bytes::copy_from_slice(a), false).to_vec();
            got.extend_from_slice(&s.process(Bytes::copy_from_slice(b), true));
            assert_eq!(String::from_utf8_lossy(&got), want, "split {split}");
            assert!(s.removed());
        }
        // Three pieces, every pair of cuts: the fast path (whole events passed as they
        // are, a part-event held) and the copying path must join up exactly.
        for a in 0..=WITH_USAGE.len() {
            for b in a..=WITH_USAGE.len() {
                let mut s = UsageChunkStripper::new();
                let bytes = WITH_USAGE.as_bytes();
                let mut got = Vec::new();
                for (piece, end) in [
                    (&bytes[..a], false),
                    (&bytes[a..b], false),
                    (&bytes[b..], true),
                ] {
                    got.extend_from_slice(&s.process(Bytes::copy_from_slice(piece), end));
                }
                assert_eq!(String::from_utf8_lossy(&got), want, "cuts {a}, {b}");
            }
        }
    }

    /// The search the line-feed scan replaced: both blank lines searched for, the
    /// earlier end taken.
    fn event_end_reference(buf: &[u8]) -> Option<usize> {
        let lf = memchr::memmem::find(buf, b"\n\n").map(|i| i + 2);
        let crlf = memchr::memmem::find(buf, b"\r\n\r\n").map(|i| i + 4);
        match (lf, crlf) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        #[test]
        fn event_ends_agree_with_the_reference(
            bytes in proptest::collection::vec(proptest::sample::select(b"a\r\n".to_vec()), 0..24)
        ) {
            proptest::prop_assert_eq!(event_end(&bytes), event_end_reference(&bytes));
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1024))]
        /// The runs between whitespace, copied whole, are the event without its
        /// whitespace, whichever whitespace it holds.
        #[test]
        fn whitespace_goes_as_the_byte_filter_takes_it(
            mut bytes in proptest::collection::vec(proptest::sample::select(b"ab \t\n\x0b".to_vec()), 0..40),
            odd in proptest::option::of((proptest::prelude::any::<proptest::sample::Index>(), proptest::prelude::any::<bool>())),
        ) {
            // Now and then a carriage return or form feed, which take the other path.
            if let Some((at, cr)) = odd {
                bytes.insert(at.index(bytes.len() + 1), if cr { b'\r' } else { b'\x0c' });
            }
            let want: Vec<u8> = bytes.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
            proptest::prop_assert_eq!(without_whitespace(&bytes), want);
        }

        #[test]
        fn the_last_blank_line_is_the_last_found_from_the_end(
            bytes in proptest::collection::vec(proptest::sample::select(b"a\r\n\n".to_vec()), 0..40)
        ) {
            proptest::prop_assert_eq!(last_blank_line(&bytes), memchr::memmem::rfind(&bytes, b"\n\n"));
        }
    }

    /// Every end the scan from the start finds in `buf`.
    fn event_ends(buf: &[u8]) -> Vec<usize> {
        let mut ends = vec![0];
        let mut pos = 0;
        while let Some(n) = event_end(&buf[pos..]) {
            pos += n;
            ends.push(pos);
        }
        ends
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1024))]
        /// The end found backwards is one the scan from the start finds, and the last
        /// before the limit when events end with one blank line each.
        #[test]
        fn an_end_found_backwards_is_one_found_forwards(
            bytes in proptest::collection::vec(proptest::sample::select(b"aa\r\n".to_vec()), 0..40),
            limit in proptest::prelude::any::<proptest::sample::Index>(),
        ) {
            let limit = limit.index(bytes.len() + 1);
            let back = event_end_before(&bytes, limit);
            let ends = event_ends(&bytes);
            proptest::prop_assert!(back <= limit && ends.contains(&back), "{back} of {ends:?}");
            let regular = !bytes.contains(&b'\r') && memchr::memmem::find(&bytes, b"\n\n\n").is_none();
            if regular {
                let last = ends.iter().copied().filter(|&e| e <= limit).max();
                proptest::prop_assert_eq!(Some(back), last);
            }
        }
    }

    #[test]
    fn events_end_at_the_first_blank_line_of_either_kind() {
        assert_eq!(event_end(b"a\n\nb\r\n\r\n"), Some(3));
        assert_eq!(event_end(b"a\r\n\r\nb\n\n"), Some(5));
        assert_eq!(event_end(b"a\r\n\r\n"), Some(5));
        assert_eq!(event_end(b"a\r\n\n"), Some(4));
        assert_eq!(event_end(b"a\r\n\r"), None);
        assert_eq!(event_end(b""), None);
        assert!(has_empty_array(b"x [ \n ] y") && has_empty_array(b"[]"));
        assert!(!has_empty_array(b"[1]") && !has_empty_array(b"[") && !has_empty_array(b"]["));
        let usage = b"data: {\"choices\" : [ ],\n\"usage\": {\"prompt_tokens\":1}}\n\n";
        assert!(is_usage_only_event(usage));
        assert!(!is_usage_only_event(
            b"data: {\"choices\":[],\"usage\":null}\n\n"
        ));
        assert!(!is_usage_only_event(
            b"data: {\"choices\":[{}],\"usage\":{}}\n\n"
        ));
        assert!(!is_usage_only_event(
            b"event: {\"choices\":[],\"usage\":{}}\n\n"
        ));
        assert!(!is_usage_only_event(b"data: {\"x\":[],\"usage\":{}}\n\n"));
    }

    #[test]
    fn only_the_first_usage_event_goes_and_the_rest_passes_as_it_is() {
        let usage = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\n\n";
        let twice = format!("{usage}{usage}data: [DONE]\n\n");
        let mut s = UsageChunkStripper::new();
        assert!(!s.removed());
        let out = s.process(Bytes::from(twice.clone()), true);
        assert_eq!(
            String::from_utf8_lossy(&out),
            format!("{usage}data: [DONE]\n\n")
        );
        assert!(s.removed());
        // After it, whole chunks pass without a copy.
        let after = Bytes::from_static(b"data: {\"a\":1}\n\n");
        let out = s.process(after.clone(), false);
        assert_eq!(out.as_ptr(), after.as_ptr());
        // A chunk of whole events with nothing to change is not copied either.
        let mut s = UsageChunkStripper::new();
        let plain = Bytes::from_static(b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\n");
        let out = s.process(plain.clone(), false);
        assert_eq!((out.as_ptr(), out.len()), (plain.as_ptr(), plain.len()));
    }

    #[test]
    fn a_part_event_is_held_until_its_end_or_the_bound() {
        let mut s = UsageChunkStripper::new();
        let out = s.process(
            Bytes::from_static(b"data: {\"a\":1}\n\ndata: {\"b\""),
            false,
        );
        assert_eq!(&out[..], b"data: {\"a\":1}\n\n");
        let out = s.process(Bytes::from_static(b":2}"), false);
        assert!(out.is_empty(), "still incomplete");
        let out = s.process(Bytes::new(), true);
        assert_eq!(&out[..], b"data: {\"b\":2}", "the end flushes what is held");
        // A part-event longer than the bound passes through as it comes.
        let mut s = UsageChunkStripper::new();
        let big = format!("data: {{\"t\":\"{}", "x".repeat(MAX_HELD + 1));
        let out = s.process(Bytes::from(big.clone()), false);
        assert_eq!(out.len(), big.len());
        let mut s = UsageChunkStripper::new();
        let first = format!("data: {{\"t\":\"{}", "x".repeat(MAX_HELD - 100));
        assert!(s.process(Bytes::from(first.clone()), false).is_empty());
        let out = s.process(Bytes::from("y".repeat(200)), false);
        assert_eq!(out.len(), first.len() + 200, "past the bound: let go");
        // The end of the stream flushes a part-event at once.
        let mut s = UsageChunkStripper::new();
        let out = s.process(Bytes::from_static(b"data: {\"c\""), true);
        assert_eq!(&out[..], b"data: {\"c\"");
    }
}
