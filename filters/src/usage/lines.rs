//! An SSE stream's lines, as the meter reads them: the part-line carried from one chunk
//! to the next, and the generated text kept as the chunks themselves until a count is
//! asked for.
//!
//! The meter needs a stream's lines for two things: the usage events, which are few and
//! found by a search for `"usage` (their lines only are cut out), and the generated text,
//! which is counted only for an estimate, needed only when the provider's report is
//! missing or partial. So the chunks are kept as they came (a reference count each, no
//! copy) and split into lines only when the text is counted: at a bound, or when asked.
//! Both splits carry part-lines the same way ([`Carry`]), so they see the same lines.

use bytes::Bytes;

use super::pending::PendingText;
use super::MAX_LINE;

/// The part of a line that a chunk ended in, until the line feed that ends it.
#[derive(Debug, Default, Clone)]
pub struct Carry {
    buf: Vec<u8>,
    /// Passing over the rest of a line longer than [`MAX_LINE`]: it is not read.
    skipping: bool,
}

impl Carry {
    /// Whether a line is open (the next chunk's first line ends it).
    pub fn is_open(&self) -> bool {
        self.skipping || !self.buf.is_empty()
    }

    /// Ends the open line with `head` (up to its line feed, excluded): the whole line, or
    /// `None` for a line past the bound. The caller reads the line, then calls
    /// [`Carry::clear`].
    pub fn end_with(&mut self, head: &[u8]) -> Option<&[u8]> {
        if std::mem::take(&mut self.skipping) {
            return None;
        }
        self.buf.extend_from_slice(head);
        Some(&self.buf)
    }

    pub fn clear(&mut self) {
        self.buf.clear();
    }

    /// Keeps `tail`, bytes after a chunk's last line feed (or a chunk without one).
    pub fn keep(&mut self, tail: &[u8]) {
        if self.skipping {
            return;
        }
        if self.buf.len() + tail.len() > MAX_LINE {
            self.buf.clear();
            self.skipping = true;
        } else {
            self.buf.extend_from_slice(tail);
        }
    }

    /// The line the stream ended in without a line feed (empty if none), unless it is
    /// past the bound.
    pub fn last(&self) -> Option<&[u8]> {
        (!self.skipping).then_some(&self.buf[..])
    }

    /// Every line of `chunk` in order, each whole (a part-line carried over, `f` called
    /// once its end arrives).
    pub fn split(&mut self, chunk: &[u8], mut f: impl FnMut(&[u8])) {
        let mut rest = chunk;
        // memchr: with an estimate, this runs over every byte of the stream.
        while let Some(nl) = memchr::memchr(b'\n', rest) {
            let (head, tail) = rest.split_at(nl);
            if self.is_open() {
                if let Some(line) = self.end_with(head) {
                    f(line);
                }
                self.clear();
            } else {
                f(head);
            }
            rest = &tail[1..];
        }
        self.keep(rest);
    }
}

/// The `data:` payload of an SSE line, if it is one.
pub fn data_of(line: &[u8]) -> Option<&[u8]> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    line.strip_prefix(b"data:").map(<[u8]>::trim_ascii_start)
}

/// Chunks kept, not yet split, past this many bytes...
const KEPT_MAX: usize = 64 * 1024;
/// ...or this many chunks (a paced stream sends one per event: a few hundred bytes
/// each, 32 bytes of reference), are split and their text kept for a count
/// ([`PendingText`]). Most answers' streams fit whole, and are never split.
const KEPT_CHUNKS: usize = 512;

/// The chunks a stream's first keep makes room for.
const FIRST_CHUNKS: usize = 32;

/// A stream's generated text: its chunks, split into payloads only when counted.
#[derive(Debug, Default)]
pub struct DeferredText {
    chunks: Vec<Bytes>,
    kept: usize,
    lines: Carry,
    text: PendingText,
}

impl DeferredText {
    /// Keeps `chunk` (a reference, no copy) for a later count.
    pub fn keep(&mut self, chunk: &Bytes) {
        if self.kept + chunk.len() > KEPT_MAX || self.chunks.len() == KEPT_CHUNKS {
            let chunks = std::mem::take(&mut self.chunks);
            for c in &chunks {
                split_text(&mut self.lines, c, &mut self.text);
            }
            self.kept = 0;
        }
        if chunk.len() > KEPT_MAX {
            split_text(&mut self.lines, chunk, &mut self.text);
        } else {
            if self.chunks.capacity() == 0 {
                // Room for a whole paced answer's chunks at once (~1 KiB): growing from
                // nothing was four reallocations per stream.
                self.chunks.reserve(FIRST_CHUNKS);
            }
            self.chunks.push(chunk.clone());
            self.kept += chunk.len();
        }
    }

    /// Characters of generated text in the stream so far, its last line (without a line
    /// feed) included when `ended`. Asked for only for an estimate: the kept chunks are
    /// split on copies of the state, so that asking twice gives the same.
    pub fn chars(&self, ended: bool) -> u64 {
        let (mut lines, mut text) = (self.lines.clone(), self.text.clone());
        for c in &self.chunks {
            split_text(&mut lines, c, &mut text);
        }
        if ended {
            if let Some(data) = lines.last().and_then(data_of) {
                text.push(data);
            }
        }
        text.chars()
    }
}

fn split_text(lines: &mut Carry, chunk: &[u8], text: &mut PendingText) {
    lines.split(chunk, |line| {
        if let Some(data) = data_of(line) {
            text.push(data);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line_of(n: usize) -> Bytes {
        let text = "x".repeat(n - 45);
        let line = format!("data: {{\"choices\":[{{\"delta\":{{\"content\":\"{text}\"}}}}]}}\n");
        assert_eq!(line.len(), n);
        Bytes::from(line)
    }

    /// Chunks are kept until the next would pass 64 KiB, then the kept ones are split
    /// and counted, and the new one kept; the count is the same as ever.
    #[test]
    fn chunks_are_kept_up_to_the_byte_bound() {
        let mut d = DeferredText::default();
        for i in 1..=65 {
            d.keep(&line_of(1000));
            assert_eq!((d.chunks.len(), d.kept), (i, i * 1000));
        }
        assert_eq!(d.text.chars(), 0, "nothing split yet");
        d.keep(&line_of(1000));
        assert_eq!(
            (d.chunks.len(), d.kept),
            (1, 1000),
            "65,000 + 1,000 > 65,536"
        );
        assert_eq!(d.text.chars(), 65 * 955);
        assert_eq!(d.chars(false), 66 * 955);
        // A chunk of exactly the room left is kept, and so is one of the whole bound.
        let mut d = DeferredText::default();
        d.keep(&line_of(KEPT_MAX - 100));
        d.keep(&line_of(100));
        assert_eq!((d.chunks.len(), d.kept), (2, KEPT_MAX));
        let mut d = DeferredText::default();
        d.keep(&line_of(KEPT_MAX));
        assert_eq!((d.chunks.len(), d.kept, d.text.chars()), (1, KEPT_MAX, 0));
    }

    /// ...or past 512 chunks; a chunk larger than the bound is split at once.
    #[test]
    fn chunks_are_kept_up_to_the_count_bound_and_a_big_one_is_split_at_once() {
        let mut d = DeferredText::default();
        for _ in 0..KEPT_CHUNKS {
            d.keep(&line_of(50));
        }
        assert_eq!((d.chunks.len(), d.kept), (KEPT_CHUNKS, KEPT_CHUNKS * 50));
        d.keep(&line_of(50));
        assert_eq!((d.chunks.len(), d.kept), (1, 50));
        assert_eq!(d.chars(false), (KEPT_CHUNKS as u64 + 1) * 5);
        let mut d = DeferredText::default();
        d.keep(&line_of(50));
        d.keep(&line_of(KEPT_MAX + 1));
        assert_eq!((d.chunks.len(), d.kept), (0, 0));
        assert_eq!(d.text.chars(), 5 + (KEPT_MAX + 1 - 45) as u64);
    }
}
