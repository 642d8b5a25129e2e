//! Splitting a streamed JSON array (`[{...},\r\n{...}]`, Gemini's
//! `:streamGenerateContent` without `alt=sse`) into its elements as the bytes arrive.
//!
//! Only braces count, and only outside strings, so the scan jumps between the few bytes
//! that matter with `memchr`. A whole element inside one chunk is handed over without a
//! copy; one split across chunks is carried over, up to a bound past which it is skipped
//! (usage never rides on a giant element), so memory per stream stays bounded.

/// Cuts a JSON array stream into its top-level object elements.
#[derive(Debug, Default)]
pub struct ElementSplitter {
    /// The part of an element begun in an earlier chunk.
    buf: Vec<u8>,
    /// Brace depth inside the current element; 0 between elements.
    depth: u32,
    in_string: bool,
    /// The previous chunk ended with a backslash inside a string.
    escaped: bool,
    /// The current element outgrew the bound: its bytes are dropped until it ends.
    skipping: bool,
}

impl ElementSplitter {
    /// Calls `each` with every element that `chunk` completes, in order.
    pub fn feed(&mut self, chunk: &[u8], max: usize, mut each: impl FnMut(&[u8])) {
        let mut i = 0;
        // Where the element still open at the end of the scan began in `chunk`.
        let mut start = 0;
        if self.escaped && !chunk.is_empty() {
            self.escaped = false;
            i = 1;
        }
        while i < chunk.len() {
            let rest = &chunk[i..];
            if self.in_string {
                let Some(j) = memchr::memchr2(b'"', b'\\', rest) else {
                    break;
                };
                if rest[j] == b'"' {
                    self.in_string = false;
                    i += j + 1;
                } else if i + j + 1 < chunk.len() {
                    i += j + 2; // the backslash and the byte it escapes
                } else {
                    self.escaped = true;
                    break;
                }
            } else if self.depth == 0 {
                let Some(j) = memchr::memchr(b'{', rest) else {
                    break;
                };
                self.depth = 1;
                start = i + j;
                i += j + 1;
            } else {
                let Some(j) = memchr::memchr3(b'"', b'{', b'}', rest) else {
                    break;
                };
                i += j + 1;
                match rest[j] {
                    b'"' => self.in_string = true,
                    b'{' => self.depth += 1,
                    _ => {
                        self.depth -= 1;
                        if self.depth == 0 {
                            self.complete(&chunk[start..i], &mut each);
                        }
                    }
                }
            }
        }
        if self.depth > 0 {
            self.carry(&chunk[start..], max);
        }
    }

    /// Hands over an element whose last byte is in `tail` (all of it when nothing was
    /// carried over).
    fn complete(&mut self, tail: &[u8], each: &mut impl FnMut(&[u8])) {
        if self.skipping {
            self.skipping = false;
        } else if self.buf.is_empty() {
            each(tail);
        } else {
            self.buf.extend_from_slice(tail);
            each(&self.buf);
        }
        self.buf.clear();
    }

    /// Keeps the open element's bytes from this chunk, within the bound.
    fn carry(&mut self, part: &[u8], max: usize) {
        if self.skipping {
            return;
        }
        if self.buf.len() + part.len() > max {
            self.buf.clear();
            self.skipping = true;
        } else {
            self.buf.extend_from_slice(part);
        }
    }

    /// Bytes held for an element split across chunks.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.buf.len()
    }

    /// Ends the stream: an element left open (a cut stream) is handed over as it is.
    pub fn finish(&mut self, mut each: impl FnMut(&[u8])) {
        if !self.buf.is_empty() && !self.skipping {
            each(&self.buf);
        }
        self.buf = Vec::new();
    }
}
