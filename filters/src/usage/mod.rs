//! Token usage from provider responses, observed without changing a byte.
//!
//! A [`UsageMeter`] is fed every response body chunk. Streams are split into SSE lines
//! with a bounded carry-over; only `data:` lines that can hold usage are parsed. A
//! stream that opens with `[` is a streamed JSON array (Gemini without `alt=sse`): its
//! elements are read as the SSE payloads would be, with the same bound. Whole
//! JSON bodies keep a bounded tail, since every provider puts `usage` at the end. While
//! it reads, the meter also counts the generated text it sees, for an estimate when the
//! provider reports nothing (stream cut, provider silent).

mod array;
pub mod cost;
mod pending;
mod scan;
pub mod strip;

use crate::providers::read::UsageKeys;
use crate::upstream::ProviderKind;
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

/// Measures one response.
#[derive(Debug)]
pub struct UsageMeter {
    kind: ProviderKind,
    stream: bool,
    framing: Framing,
    /// The elements of a JSON array stream.
    elements: array::ElementSplitter,
    /// Partial SSE line (stream) or body tail (JSON).
    buf: Vec<u8>,
    /// Skipping the rest of an over-long SSE line.
    skipping: bool,
    reported: Reported,
    /// Generated text seen (for estimation), counted only if asked.
    text: PendingText,
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
            skipping: false,
            reported: Reported::default(),
            text: PendingText::default(),
            tail_uncounted: false,
            finished: false,
        }
    }

    /// Shows the meter one chunk of the response body.
    pub fn feed(&mut self, chunk: &[u8]) {
        if self.finished || chunk.is_empty() {
            return;
        }
        if !self.stream {
            self.buf.extend_from_slice(chunk);
            if self.buf.len() > 2 * JSON_TAIL {
                self.text
                    .add(count_text_chars(&self.buf[..self.buf.len() - JSON_TAIL]));
                let cut = self.buf.len() - JSON_TAIL;
                self.buf.drain(..cut);
            }
            return;
        }
        match self.framed(chunk) {
            Framing::Sse => {}
            Framing::Undecided => return,
            Framing::JsonArray => {
                let (kind, reported, chars) = (self.kind, &mut self.reported, &mut self.text);
                self.elements
                    .feed(chunk, MAX_LINE, |e| payload(kind, e, reported, chars));
                return;
            }
        }
        let mut rest = chunk;
        // One search of the chunk for usage keys, rather than one per line.
        let mut usage = UsageKeys::new(chunk);
        // memchr: this runs over every byte of every stream.
        while let Some(nl) = memchr::memchr(b'\n', rest) {
            let (head, tail) = rest.split_at(nl);
            if self.skipping {
                self.skipping = false;
            } else if self.buf.is_empty() {
                let start = chunk.len() - rest.len();
                let may = usage.within(start, start + nl);
                self.line(head, may);
            } else {
                self.buf.extend_from_slice(head);
                let line = std::mem::take(&mut self.buf);
                self.line(&line, true);
                self.buf = line;
                self.buf.clear();
            }
            rest = &tail[1..];
        }
        if !rest.is_empty() && !self.skipping {
            if self.buf.len() + rest.len() > MAX_LINE {
                self.buf.clear();
                self.skipping = true;
            } else {
                self.buf.extend_from_slice(rest);
            }
        }
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

    /// One SSE line; `may_hold_usage` is false when it holds no usage key at all.
    fn line(&mut self, line: &[u8], may_hold_usage: bool) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(data) = line.strip_prefix(b"data:") else {
            return;
        };
        let data = data.trim_ascii_start();
        self.text.push(data);
        if may_hold_usage {
            usage_of(self.kind, data, &mut self.reported);
        }
    }

    /// Ends the response: the provider-reported usage, if any arrived.
    pub fn finish(&mut self) -> Option<Usage> {
        if !self.finished {
            self.finished = true;
            if self.framing == Framing::JsonArray {
                let (kind, reported, chars) = (self.kind, &mut self.reported, &mut self.text);
                self.elements.finish(|e| payload(kind, e, reported, chars));
            } else if self.stream {
                if !self.buf.is_empty() && !self.skipping {
                    let line = std::mem::take(&mut self.buf);
                    self.line(&line, true);
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
        if self.tail_uncounted {
            self.text.chars() + count_text_chars(&self.buf)
        } else {
            self.text.chars()
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
