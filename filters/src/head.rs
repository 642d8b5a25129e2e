//! Finding where a request head ends (its blank line, CRLF CRLF) in bytes that arrive in
//! reads of any size: the pure part of the proxy's head deadline, so it can be checked
//! against every split here.

/// The end of a request head.
pub const END: &[u8; 4] = b"\r\n\r\n";

/// Steps the [`END`] matcher (`matched` bytes of it seen) over `bytes`; true once it is
/// complete.
fn advance(matched: &mut u8, bytes: &[u8]) -> bool {
    for &b in bytes {
        *matched = if b == END[usize::from(*matched)] {
            *matched + 1
        } else if b == b'\r' {
            1
        } else {
            0
        };
        if usize::from(*matched) == END.len() {
            return true;
        }
    }
    false
}

/// Advances over the bytes of one read, `matched` bytes of [`END`] having ended the
/// reads before; true once the head's end is among them (and `matched` is 0 again, for
/// the next head). Otherwise `matched` is what the next read starts from.
pub fn scan(matched: &mut u8, bytes: &[u8]) -> bool {
    let done = scan_read(matched, bytes);
    if done {
        *matched = 0;
    }
    done
}

fn scan_read(matched: &mut u8, bytes: &[u8]) -> bool {
    // The first bytes may complete a blank line begun in the last read.
    let (first, rest) = bytes.split_at(bytes.len().min(END.len() - 1));
    if advance(matched, first) {
        return true;
    }
    if rest.is_empty() {
        return false;
    }
    // A whole blank line inside this read: vectorised search instead of a state step per
    // byte (a read usually holds a whole head and body).
    if memchr::memmem::find(bytes, END).is_some() {
        return true;
    }
    // None: what carries over to the next read is decided by the last bytes.
    *matched = 0;
    advance(matched, &bytes[bytes.len() - (END.len() - 1)..]);
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carries_a_partial_end_and_resets_on_anything_else() {
        let mut m = 0;
        assert!(!scan(&mut m, b"GET / HTTP/1.1\r\nx: y\r\r\n\n\n\r\n\r"));
        assert_eq!(m, 3);
        assert!(!scan(&mut m, b"\r\n"));
        assert_eq!(m, 2, "CR restarts the match");
        assert!(scan(&mut m, b"\r\n"));
        let mut m = 2;
        assert!(!scan(&mut m, b"x"));
        assert_eq!(m, 0);
        let mut m = 0;
        assert!(scan(&mut m, b"a\r\n\r\nbody"));
        assert_eq!(m, 0, "the next head starts from nothing");
        let mut m = 3;
        assert!(scan(&mut m, b"\n"));
        assert_eq!(m, 0);
        let mut m = 0;
        assert!(!scan(&mut m, b"abcdef\n\n"));
        assert_eq!(m, 0, "bare LFs end nothing");
        assert!(!scan(&mut m, b""));
        assert_eq!(m, 0);
    }
}
