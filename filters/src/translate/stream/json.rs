//! Small writers of JSON fragments into a reused output buffer: the stream encoders
//! write their events from fixed templates and these, instead of building values.

use std::io::Write;

use serde::Serialize;

/// `s` as a JSON string literal (quoted and escaped).
pub fn str(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// `n` in decimal.
pub fn num(out: &mut Vec<u8>, n: u64) {
    let _ = write!(out, "{n}");
}

/// `v` serialized (for the few structured values: usage objects, output items).
pub fn value<T: Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    let _ = serde_json::to_writer(&mut *out, v);
}

/// `"key":` followed by the string `s`.
pub fn field_str(out: &mut Vec<u8>, key: &str, s: &str) {
    out.push(b'"');
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
    str(out, s);
}

/// Tracks whether a JSON text fed in pieces has closed its top-level value (used to
/// tell when a streamed tool call's arguments are complete).
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonEnd {
    depth: u32,
    in_str: bool,
    esc: bool,
    seen: bool,
}

impl JsonEnd {
    /// Feeds a piece; true once the top-level object or array has closed.
    pub fn feed(&mut self, piece: &[u8]) -> bool {
        for &b in piece {
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
                b'"' => self.in_str = true,
                b'{' | b'[' => {
                    self.depth += 1;
                    self.seen = true;
                }
                b'}' | b']' => self.depth = self.depth.saturating_sub(1),
                _ => {}
            }
        }
        self.complete()
    }

    /// Whether the value has closed.
    pub fn complete(&self) -> bool {
        self.seen && self.depth == 0 && !self.in_str
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_end_tracks_strings_and_nesting() {
        let mut j = JsonEnd::default();
        assert!(!j.feed(br#"{"a":"}\"""#));
        assert!(!j.feed(br#",[1,{"b":2}]"#));
        assert!(j.feed(b"}"));
        let mut out = Vec::new();
        str(&mut out, "a\"b\n");
        assert_eq!(out, br#""a\"b\n""#);
    }
}
