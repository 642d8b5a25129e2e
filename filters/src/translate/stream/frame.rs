//! Incremental framers for upstream streams: server-sent events (lines split anywhere,
//! `\n` or `\r\n`, multi-line `data:`, comments) and Gemini's JSON-array stream. Each is
//! fed chunks as they arrive and hands out complete events borrowed from its buffer,
//! which is reused (compacted, not reallocated) from chunk to chunk.

/// One complete server-sent event: its `event:` name (empty if none) and its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub event: &'a [u8],
    pub data: &'a [u8],
}

/// The framer an upstream stream needs.
#[derive(Debug)]
pub enum Framer {
    Sse(SseFramer),
    Array(ArrayFramer),
}

impl Framer {
    /// Appends a chunk.
    pub fn push(&mut self, chunk: &[u8]) {
        match self {
            Framer::Sse(f) => f.push(chunk),
            Framer::Array(f) => f.push(chunk),
        }
    }

    /// Marks the end of the stream: a last event without its blank line still counts.
    pub fn close(&mut self) {
        if let Framer::Sse(f) = self {
            f.close();
        }
    }

    /// The next complete event, if one is buffered.
    pub fn next_frame(&mut self) -> Option<Frame<'_>> {
        match self {
            Framer::Sse(f) => f.next_frame(),
            Framer::Array(f) => f.next_frame(),
        }
    }
}

/// Server-sent events.
#[derive(Debug, Default)]
pub struct SseFramer {
    buf: Vec<u8>,
    /// Where the event being read starts (everything before is consumed).
    frame_start: usize,
    /// Where the next unread line starts.
    line_start: usize,
    event: Option<(usize, usize)>,
    data: Vec<(usize, usize)>,
    scratch: Vec<u8>,
}

impl SseFramer {
    fn push(&mut self, chunk: &[u8]) {
        if self.frame_start > 0 {
            let k = self.frame_start;
            self.buf.drain(..k);
            self.line_start -= k;
            self.event = self.event.map(|(a, b)| (a - k, b - k));
            self.data.iter_mut().for_each(|r| *r = (r.0 - k, r.1 - k));
            self.frame_start = 0;
        }
        self.buf.extend_from_slice(chunk);
    }

    fn close(&mut self) {
        if self.line_start < self.buf.len() {
            self.buf.push(b'\n');
        }
        self.buf.push(b'\n');
    }

    fn next_frame(&mut self) -> Option<Frame<'_>> {
        loop {
            let rel = memchr::memchr(b'\n', &self.buf[self.line_start..])?;
            let nl = self.line_start + rel;
            let end = if nl > self.line_start && self.buf[nl - 1] == b'\r' {
                nl - 1
            } else {
                nl
            };
            let start = std::mem::replace(&mut self.line_start, nl + 1);
            if start == end {
                if self.data.is_empty() && self.event.is_none() {
                    self.frame_start = self.line_start;
                    continue;
                }
                return Some(self.dispatch());
            }
            self.field(start, end);
        }
    }

    fn field(&mut self, start: usize, end: usize) {
        let line = &self.buf[start..end];
        if line[0] == b':' {
            return;
        }
        let (name_end, mut value) = match memchr::memchr(b':', line) {
            Some(c) => (start + c, start + c + 1),
            None => (end, end),
        };
        if value < end && self.buf[value] == b' ' {
            value += 1;
        }
        match &self.buf[start..name_end] {
            b"data" => self.data.push((value, end)),
            b"event" => self.event = Some((value, end)),
            _ => {}
        }
    }

    fn dispatch(&mut self) -> Frame<'_> {
        self.frame_start = self.line_start;
        let event = self.event.take().map_or(&[][..], |(a, b)| &self.buf[a..b]);
        let data = match self.data.as_slice() {
            [] => &[][..],
            [(a, b)] => &self.buf[*a..*b],
            many => {
                self.scratch.clear();
                for (i, (a, b)) in many.iter().enumerate() {
                    if i > 0 {
                        self.scratch.push(b'\n');
                    }
                    self.scratch.extend_from_slice(&self.buf[*a..*b]);
                }
                &self.scratch[..]
            }
        };
        self.data.clear();
        Frame { event, data }
    }
}

/// Gemini's JSON-array stream: `[` then objects separated by `,` then `]`.
#[derive(Debug, Default)]
pub struct ArrayFramer {
    buf: Vec<u8>,
    pos: usize,
    obj_start: Option<usize>,
    depth: u32,
    in_str: bool,
    esc: bool,
}

impl ArrayFramer {
    fn push(&mut self, chunk: &[u8]) {
        let keep = self.obj_start.unwrap_or(self.pos);
        if keep > 0 {
            self.buf.drain(..keep);
            self.pos -= keep;
            self.obj_start = self.obj_start.map(|s| s - keep);
        }
        self.buf.extend_from_slice(chunk);
    }

    fn next_frame(&mut self) -> Option<Frame<'_>> {
        while self.pos < self.buf.len() {
            let i = self.pos;
            let b = self.buf[i];
            self.pos += 1;
            if self.in_str {
                match (self.esc, b) {
                    (true, _) => self.esc = false,
                    (false, b'\\') => self.esc = true,
                    (false, b'"') => self.in_str = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' if self.obj_start.is_some() => self.in_str = true,
                b'{' => {
                    if self.depth == 0 {
                        self.obj_start = Some(i);
                    }
                    self.depth += 1;
                }
                b'}' if self.depth > 0 => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        let start = self.obj_start.take().unwrap_or(i);
                        return Some(Frame {
                            event: &[],
                            data: &self.buf[start..=i],
                        });
                    }
                }
                _ => {}
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(f: &mut Framer, chunks: &[&[u8]]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for c in chunks {
            f.push(c);
            while let Some(fr) = f.next_frame() {
                out.push((
                    String::from_utf8_lossy(fr.event).into_owned(),
                    String::from_utf8_lossy(fr.data).into_owned(),
                ));
            }
        }
        f.close();
        while let Some(fr) = f.next_frame() {
            out.push((
                String::from_utf8_lossy(fr.event).into_owned(),
                String::from_utf8_lossy(fr.data).into_owned(),
            ));
        }
        out
    }

    #[test]
    fn sse_lines_split_anywhere_crlf_comments_and_multiline_data() {
        let mut f = Framer::Sse(SseFramer::default());
        let got = all(
            &mut f,
            &[
                b": ping\r\n\r\nevent: a\r\nda",
                b"ta: {\"x\":1}\r",
                b"\n\r\ndata: one\ndata:two\n\n",
                b"data: last",
            ],
        );
        assert_eq!(
            got,
            vec![
                ("a".into(), "{\"x\":1}".into()),
                ("".into(), "one\ntwo".into()),
                ("".into(), "last".into()),
            ]
        );
    }

    /// Read events leave the buffer: a long stream holds at most the event being read
    /// (and the chunk that brought it), not everything before.
    #[test]
    fn read_events_leave_the_sse_buffer() {
        let mut f = SseFramer::default();
        let event = b"data: {\"choices\":[{\"delta\":{\"content\":\"word \"}}]}\n\n";
        for _ in 0..1000 {
            f.push(event);
            while f.next_frame().is_some() {}
        }
        f.push(b"data: {\"par");
        assert!(f.next_frame().is_none());
        assert!(f.buf.len() < 2 * event.len(), "{} bytes kept", f.buf.len());
        f.push(b"t\":1}\n\n");
        assert_eq!(
            f.next_frame().map(|fr| fr.data.to_vec()),
            Some(b"{\"part\":1}".to_vec())
        );
    }

    /// Read objects leave the array framer's buffer too, whether the next one has begun
    /// in the chunk or not.
    #[test]
    fn read_objects_leave_the_array_buffer() {
        let mut f = ArrayFramer::default();
        f.push(b"[");
        let object = b"{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"word \"}]}}]},";
        for _ in 0..1000 {
            f.push(object);
            while f.next_frame().is_some() {}
        }
        assert!(f.buf.len() <= object.len(), "{} bytes kept", f.buf.len());
        f.push(b"{\"par");
        assert!(f.next_frame().is_none());
        assert!(f.buf.len() < 2 * object.len(), "{} bytes kept", f.buf.len());
        f.push(b"t\":1}]");
        assert_eq!(
            f.next_frame().map(|fr| fr.data.to_vec()),
            Some(b"{\"part\":1}".to_vec())
        );
    }

    /// A closing brace outside any object (a broken upstream) is passed over.
    #[test]
    fn stray_closers_outside_objects_are_passed_over() {
        let mut f = Framer::Array(ArrayFramer::default());
        let got = all(&mut f, &[b"[}", b"]},{\"a\":1}}]"]);
        assert_eq!(got, vec![("".into(), "{\"a\":1}".into())]);
    }

    #[test]
    fn array_objects_split_anywhere_with_braces_in_strings() {
        let mut f = Framer::Array(ArrayFramer::default());
        let got = all(
            &mut f,
            &[b"[{\"a\":\"}{\\\"\"", b"},\r\n{\"b\":{\"c\":1}}", b"]"],
        );
        assert_eq!(
            got,
            vec![
                ("".into(), "{\"a\":\"}{\\\"\"}".into()),
                ("".into(), "{\"b\":{\"c\":1}}".into()),
            ]
        );
    }
}
