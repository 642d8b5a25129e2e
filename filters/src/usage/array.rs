//! Splitting a streamed JSON array (`[{...},\r\n{...}]`, Gemini's
//! `:streamGenerateContent` without `alt=sse`) into its elements as the bytes arrive.
//!
//! Only braces count, and only outside strings, so the scan jumps between the few bytes
//! that matter with `memchr`. A whole element inside one chunk is handed over without a
//! copy; one split across chunks is carried over, up to a bound past which it is skipped
//! (usage never rides on a giant element), so memory per stream stays bounded.

use super::lines::Carry;

/// Cuts a JSON array stream into its top-level object elements.
#[derive(Debug, Default)]
pub struct ElementSplitter {
    /// The part of an element begun in an earlier chunk, within the bound (the same
    /// carry as an SSE line's).
    carry: Carry,
    /// Brace depth inside the current element; 0 between elements.
    depth: u32,
    in_string: bool,
    /// The previous chunk ended with a backslash inside a string.
    escaped: bool,
}

/// The bytes the scan stops at.
const OPEN: u8 = b'{';
const CLOSE: u8 = b'}';
const QUOTE: u8 = b'"';
const BACKSLASH: u8 = b'\\';

impl ElementSplitter {
    /// Calls `each` with every element that `chunk` completes, in order.
    pub fn feed(&mut self, chunk: &[u8], mut each: impl FnMut(&[u8])) {
        // Where the element still open at the end of the scan began in `chunk`.
        let mut start = 0;
        let mut i = self.resume(chunk);
        while i < chunk.len() {
            let next = if self.in_string {
                self.skip_string(chunk, i)
            } else if self.depth == 0 {
                self.open_element(chunk, i).map(|at| {
                    start = at;
                    at + 1
                })
            } else {
                self.scan_element(chunk, i, start, &mut each)
            };
            let Some(next) = next else {
                break;
            };
            i = next;
        }
        if self.depth > 0 {
            self.carry.keep(&chunk[start..]);
        }
    }

    /// Where the scan of `chunk` starts: past the byte that a backslash ending the
    /// previous chunk escaped.
    fn resume(&mut self, chunk: &[u8]) -> usize {
        if self.escaped && !chunk.is_empty() {
            self.escaped = false;
            1
        } else {
            0
        }
    }

    /// Inside a string, from `i`: the position after its closing quote, or `None` when
    /// the chunk ends first (noting a backslash that ends it).
    fn skip_string(&mut self, chunk: &[u8], i: usize) -> Option<usize> {
        let rest = &chunk[i..];
        let j = memchr::memchr2(QUOTE, BACKSLASH, rest)?;
        if rest[j] == QUOTE {
            self.in_string = false;
            Some(i + j + 1)
        } else if i + j + 1 < chunk.len() {
            Some(i + j + 2) // the backslash and the byte it escapes
        } else {
            self.escaped = true;
            None
        }
    }

    /// Between elements, from `i`: enters the next element, returning where it begins
    /// (its opening brace); `None` when none opens in the chunk.
    fn open_element(&mut self, chunk: &[u8], i: usize) -> Option<usize> {
        let j = memchr::memchr(OPEN, &chunk[i..])?;
        self.depth = 1;
        Some(i + j)
    }

    /// Inside an element (begun at `start` in `chunk`), from `i`: the position after
    /// the next quote or brace, handing the element over when that brace closes it;
    /// `None` when the chunk has neither.
    fn scan_element(
        &mut self,
        chunk: &[u8],
        i: usize,
        start: usize,
        each: &mut impl FnMut(&[u8]),
    ) -> Option<usize> {
        let rest = &chunk[i..];
        let j = memchr::memchr3(QUOTE, OPEN, CLOSE, rest)?;
        let next = i + j + 1;
        match rest[j] {
            QUOTE => self.in_string = true,
            OPEN => self.depth += 1,
            _ => {
                self.depth -= 1;
                if self.depth == 0 {
                    self.complete(&chunk[start..next], each);
                }
            }
        }
        Some(next)
    }

    /// Hands over an element whose last byte is in `tail` (all of it when nothing was
    /// carried over).
    fn complete(&mut self, tail: &[u8], each: &mut impl FnMut(&[u8])) {
        if !self.carry.is_open() {
            each(tail);
            return;
        }
        if let Some(element) = self.carry.end_with(tail) {
            each(element);
        }
        self.carry.clear();
    }

    /// Bytes held for an element split across chunks.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.carry.last().map_or(0, <[u8]>::len)
    }

    /// Ends the stream: an element left open (a cut stream) is handed over as it is.
    pub fn finish(&mut self, mut each: impl FnMut(&[u8])) {
        if let Some(element) = self.carry.last().filter(|e| !e.is_empty()) {
            each(element);
        }
        self.carry = Carry::default();
    }
}
