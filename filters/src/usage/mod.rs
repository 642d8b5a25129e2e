//! Token usage from provider responses, observed without changing a byte.
//!
//! A [`UsageMeter`] is fed every response body chunk. In an SSE stream only the lines
//! that hold `"usage` are cut out and parsed (a part-line is carried over, bounded); the
//! chunks are kept for the text count, split into lines only if it is asked for. A
//! stream that opens with `[` is a streamed JSON array (Gemini without `alt=sse`): its
//! elements are read as the SSE payloads would be, with the same bound. Whole
//! JSON bodies keep a bounded tail, since every provider puts `usage` at the end. While
//! it reads, the meter also counts the generated text it sees, for an estimate when the
//! provider reports nothing (stream cut, provider silent).

mod array;
pub mod cost;
mod lines;
mod pending;
mod scan;
pub mod strip;

use bytes::Bytes;

use crate::providers::read::usage_key_in;
use crate::upstream::ProviderKind;
use lines::{data_of, Carry, DeferredText};
use pending::PendingText;

pub use cost::{Price, PriceTable};
pub(crate) use scan::value_at;
pub use scan::{count_text_chars, find_key_objects, last_value_of};

/// Token counts in disjoint buckets (CONTRACT §5), so that cost is a plain sum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens not read from cache.
    pub input: u64,
    /// Every generated token, reasoning included.
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    /// The reasoning part of `output`, for information.
    pub reasoning: u64,
}

/// The most tokens a provider's report may count in one bucket of one response; a
/// larger figure is not believed (the request is recorded with Tollgate's estimate).
/// The longest context windows hold a few million tokens and a request body is at most
/// `server.max_body_bytes`, so 10^9 is hundreds of times any real count, while it keeps
/// a cost (at most ~4*10^9 tokens times a price) and any sum of a year's events far
/// below 2^63.
pub const MAX_REPORTED_TOKENS: u64 = 1_000_000_000;

impl Usage {
    /// The first bucket above [`MAX_REPORTED_TOKENS`], by name, with its count.
    pub fn implausible(&self) -> Option<(&'static str, u64)> {
        [
            ("input", self.input),
            ("output", self.output),
            ("cache read", self.cache_read),
            ("cache write", self.cache_write),
            ("reasoning", self.reasoning),
        ]
        .into_iter()
        .find(|(_, n)| *n > MAX_REPORTED_TOKENS)
    }
}

/// What the provider reported, before folding into [`Usage`]. Fields are `None` until
/// seen, so that later events fill in only what they carry (Anthropic's message_delta).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reported {
    pub input: Option<u64>,
    pub output: Option<u64>,
    pub cache_read: Option<u64>,
    pub cache_write: Option<u64>,
    pub reasoning: Option<u64>,
    /// The provider's final count arrived (OpenAI's usage, Anthropic's message_delta,
    /// Gemini's finishing chunk, or a whole body); false for a stream cut before it.
    pub complete: bool,
}

impl Reported {
    fn merge(&mut self, other: Reported) {
        let take = |a: &mut Option<u64>, b: Option<u64>| {
            if b.is_some() {
                *a = b;
            }
        };
        take(&mut self.input, other.input);
        take(&mut self.output, other.output);
        take(&mut self.cache_read, other.cache_read);
        take(&mut self.cache_write, other.cache_write);
        take(&mut self.reasoning, other.reasoning);
        self.complete |= other.complete;
    }

    fn any(&self) -> bool {
        self.input.is_some() || self.output.is_some()
    }

    fn usage(&self) -> Usage {
        Usage {
            input: self.input.unwrap_or(0),
            output: self.output.unwrap_or(0),
            cache_read: self.cache_read.unwrap_or(0),
            cache_write: self.cache_write.unwrap_or(0),
            reasoning: self.reasoning.unwrap_or(0),
        }
    }
}

/// Longest SSE line kept whole; longer lines (giant deltas) are skipped for usage, which
/// never rides on them, so memory per stream stays bounded.
const MAX_LINE: usize = 256 * 1024;
/// Tail of a non-stream body kept for the final usage scan.
const JSON_TAIL: usize = 64 * 1024;

/// How a stream frames its payloads, known from its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No byte but whitespace seen yet.
    Undecided,
    Sse,
    JsonArray,
}

/// What the meter's search of an event-stream chunk for `"usage` found, handed on to
/// the usage stripper ([`strip`]), which would otherwise search the same bytes again:
/// where the key first occurs before the chunk's last line feed, if it does, and which
/// chunk that was (its address and length: a finding is never used for other bytes).
/// A key after the last line feed lies in an incomplete event, which the stripper holds
/// back unread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirstUsageKey {
    chunk: (usize, usize),
    at: Option<usize>,
}

impl FirstUsageKey {
    fn of(chunk: &[u8], at: Option<usize>) -> Self {
        FirstUsageKey {
            chunk: (chunk.as_ptr() as usize, chunk.len()),
            at,
        }
    }

    /// Where `"usage` first occurs before the last line feed of `chunk`, if this is
    /// the finding of `chunk`.
    pub fn in_chunk(self, chunk: &[u8]) -> Option<Option<usize>> {
        (self.chunk == (chunk.as_ptr() as usize, chunk.len())).then_some(self.at)
    }
}

/// Measures one response.
#[derive(Debug)]
pub struct UsageMeter {
    kind: ProviderKind,
    stream: bool,
    framing: Framing,
    /// The elements of a JSON array stream.
    elements: array::ElementSplitter,
    /// A JSON body's tail.
    buf: Vec<u8>,
    /// An SSE stream's part-line.
    carry: Carry,
    reported: Reported,
    /// Generated text seen (for estimation) in a JSON body or array, counted only if
    /// asked.
    text: PendingText,
    /// An SSE stream's chunks, for the same.
    deferred: DeferredText,
    /// A JSON body whose usage was found keeps its tail in `buf`, uncounted: the
    /// complete report means no estimate, so [`UsageMeter::text_chars`] counts it only if
    /// asked.
    tail_uncounted: bool,
    finished: bool,
}

impl UsageMeter {
    pub fn new(kind: ProviderKind, stream: bool) -> Self {
        UsageMeter {
            kind,
            stream,
            framing: Framing::Undecided,
            elements: array::ElementSplitter::default(),
            buf: Vec::new(),
            carry: Carry::default(),
            reported: Reported::default(),
            text: PendingText::default(),
            deferred: DeferredText::default(),
            tail_uncounted: false,
            finished: false,
        }
    }

    /// Shows the meter one chunk of the response body (a copy of it: the proxy's own
    /// chunks go to [`UsageMeter::feed_bytes`]).
    pub fn feed(&mut self, chunk: &[u8]) {
        self.feed_bytes(&Bytes::copy_from_slice(chunk));
    }

    /// Shows the meter one chunk of the response body; an SSE stream's chunks are kept
    /// by reference for the text count. What its search for `"usage` found, when it
    /// searched the chunk.
    pub fn feed_bytes(&mut self, chunk: &Bytes) -> Option<FirstUsageKey> {
        if self.finished || chunk.is_empty() {
            return None;
        }
        if !self.stream {
            self.buf.extend_from_slice(chunk);
            if self.buf.len() > 2 * JSON_TAIL {
                self.text
                    .add(count_text_chars(&self.buf[..self.buf.len() - JSON_TAIL]));
                let cut = self.buf.len() - JSON_TAIL;
                self.buf.drain(..cut);
            }
            return None;
        }
        match self.framed(chunk) {
            Framing::Sse => {}
            Framing::Undecided => return None,
            Framing::JsonArray => {
                let (kind, reported, chars) = (self.kind, &mut self.reported, &mut self.text);
                self.elements
                    .feed(chunk, |e| payload(kind, e, reported, chars));
                return None;
            }
        }
        self.deferred.keep(chunk);
        self.usage_lines(chunk)
    }

    /// Reads the SSE lines of `chunk` that can hold usage: the line carried over from
    /// the last chunk, whole, once this one ends it; of the rest, only the lines a
    /// search for `"usage` finds (a line without it holds no usage), cut out around it.
    /// Every byte of every stream passes here: no per-line work. The first search
    /// covers the whole chunk up to its last line feed, the carried line's end too, so
    /// that what it found serves the usage stripper as well.
    fn usage_lines(&mut self, chunk: &[u8]) -> Option<FirstUsageKey> {
        let Some(last) = memchr::memrchr(b'\n', chunk) else {
            self.carry.keep(chunk);
            return None;
        };
        let first = usage_key_in(&chunk[..last]);
        let mut start = 0;
        if self.carry.is_open() {
            // There is a line feed: `last` is one.
            let nl = memchr::memchr(b'\n', chunk).unwrap_or(last);
            if let Some(data) = self.carry.end_with(&chunk[..nl]).and_then(data_of) {
                usage_of(self.kind, data, &mut self.reported);
            }
            self.carry.clear();
            // The rest starts at that line feed: it ends no line of its own, and a line
            // found after it starts after it.
            start = nl;
        }
        let mut from = start;
        let mut key = match first {
            Some(at) if at < start => usage_key_in(&chunk[start..last]).map(|i| start + i),
            found => found,
        };
        while let Some(at) = key {
            let line_start =
                memchr::memrchr(b'\n', &chunk[from..at]).map_or(from, |i| from + i + 1);
            let line_end = memchr::memchr(b'\n', &chunk[at..last]).map_or(last, |i| at + i);
            if let Some(data) = data_of(&chunk[line_start..line_end]) {
                usage_of(self.kind, data, &mut self.reported);
            }
            // The next search starts at the line feed that ended this line.
            from = line_end;
            key = usage_key_in(&chunk[from..last]).map(|i| from + i);
        }
        self.carry.keep(&chunk[last + 1..]);
        Some(FirstUsageKey::of(chunk, first))
    }

    /// The stream's framing, decided by its first byte other than whitespace (leading
    /// whitespace carries nothing in either framing and is skipped).
    fn framed(&mut self, chunk: &[u8]) -> Framing {
        if self.framing == Framing::Undecided {
            self.framing = match chunk.iter().find(|b| !b.is_ascii_whitespace()) {
                Some(b'[') => Framing::JsonArray,
                Some(_) => Framing::Sse,
                None => Framing::Undecided,
            };
        }
        self.framing
    }

    /// Ends the response: the provider-reported usage, if any arrived.
    pub fn finish(&mut self) -> Option<Usage> {
        if !self.finished {
            self.finished = true;
            if self.framing == Framing::JsonArray {
                let (kind, reported, chars) = (self.kind, &mut self.reported, &mut self.text);
                self.elements.finish(|e| payload(kind, e, reported, chars));
            } else if self.stream {
                if let Some(data) = self.carry.last().and_then(data_of) {
                    usage_of(self.kind, data, &mut self.reported);
                }
            } else {
                if let Some(mut r) = self.kind.dialect().usage_in_body(&self.buf) {
                    r.complete = true;
                    self.reported.merge(r);
                    self.tail_uncounted = true;
                } else {
                    self.text.add(count_text_chars(&self.buf));
                    self.buf = Vec::new();
                }
            }
        }
        self.reported.any().then(|| self.reported.usage())
    }

    /// Whether the provider's final usage arrived (see [`Reported::complete`]).
    pub fn complete(&self) -> bool {
        self.reported.complete
    }

    /// Whether the response is an event stream.
    pub fn is_stream(&self) -> bool {
        self.stream
    }

    /// Characters of generated text seen so far (for the estimate).
    pub fn text_chars(&self) -> u64 {
        let seen = self.text.chars() + self.deferred.chars(self.finished);
        if self.tail_uncounted {
            seen + count_text_chars(&self.buf)
        } else {
            seen
        }
    }
}

/// One stream payload (an SSE `data:` line's, or a JSON array element): its generated
/// text is kept for a count if one is needed, and its usage, if any, merged into what
/// was reported.
fn payload(kind: ProviderKind, data: &[u8], reported: &mut Reported, text: &mut PendingText) {
    text.push(data);
    usage_of(kind, data, reported);
}

/// Merges the usage a stream payload carries, if any, into what was reported.
fn usage_of(kind: ProviderKind, data: &[u8], reported: &mut Reported) {
    if let Some(r) = kind.dialect().usage_in_event(data) {
        reported.merge(r);
    }
}

#[cfg(test)]
mod tests;
