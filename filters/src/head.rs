//! Finding where a request head ends in bytes that arrive in reads of any size: the pure
//! part of the proxy's head deadline, so it can be checked against every split here.
//!
//! The head ends at its first empty line, with the line ends Pingora's parser (httparse)
//! accepts: CRLF or a bare LF, so `\n\n`, `\n\r\n` as well as `\r\n\r\n`. Empty lines
//! before the request line end nothing (httparse skips them), so they cannot stop the
//! clock on a head that has not started.

/// No request-line byte yet (the state a head starts in)...
const START: u8 = 0;
/// ...inside a line...
const LINE: u8 = 1;
/// ...just after a line's LF...
const AFTER_LF: u8 = 2;
/// ...or after LF CR. An LF now is an empty line: the end of the head.
const AFTER_LF_CR: u8 = 3;

/// One step of the scan from `state` over byte `b`; `None` when the head ends at `b`.
/// Never taken from [`LINE`]: inside a line only the LFs matter, and [`scan_read`] finds
/// those vectorised.
fn step(state: u8, b: u8) -> Option<u8> {
    match (state, b) {
        (START, b'\r' | b'\n') => Some(START),
        (AFTER_LF | AFTER_LF_CR, b'\n') => None,
        (AFTER_LF, b'\r') => Some(AFTER_LF_CR),
        _ => Some(LINE),
    }
}

/// Advances over the bytes of one read, the scan standing at `matched` after the reads
/// before (0 for a new head); true once the head's end is among them (and `matched` is 0
/// again, for the next head). Otherwise `matched` is what the next read starts from.
pub fn scan(matched: &mut u8, bytes: &[u8]) -> bool {
    let done = scan_read(matched, bytes);
    if done {
        *matched = START;
    }
    done
}

fn scan_read(state: &mut u8, bytes: &[u8]) -> bool {
    // A state carried over from the last read, and empty lines before the request line,
    // are resolved a byte at a time: at most two bytes, or those empty lines.
    let mut rest = bytes;
    while *state != LINE {
        let Some((&b, tail)) = rest.split_first() else {
            return false;
        };
        match step(*state, b) {
            Some(next) => *state = next,
            None => return true,
        }
        rest = tail;
    }
    // Inside the head only the LFs matter, found vectorised (a read usually holds a
    // whole head, often its body too).
    let empty_line_after =
        |at: usize| matches!(rest.get(at + 1..), Some([b'\n', ..] | [b'\r', b'\n', ..]));
    if memchr::memchr_iter(b'\n', rest).any(empty_line_after) {
        return true;
    }
    *state = match rest {
        [.., b'\n'] => AFTER_LF,
        [.., b'\n', b'\r'] => AFTER_LF_CR,
        _ => LINE,
    };
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carries_a_partial_end_and_resets_on_anything_else() {
        let mut m = 0;
        assert!(!scan(&mut m, b"GET / HTTP/1.1\r\nx: y\r\r\n\r"));
        assert_eq!(m, AFTER_LF_CR);
        assert!(!scan(&mut m, b"\r\n"));
        assert_eq!(m, AFTER_LF, "CR CR is no empty line");
        assert!(scan(&mut m, b"\r\n"));
        let mut m = AFTER_LF;
        assert!(!scan(&mut m, b"x"));
        assert_eq!(m, LINE);
        let mut m = 0;
        assert!(scan(&mut m, b"a\r\n\r\nbody"));
        assert_eq!(m, 0, "the next head starts from nothing");
        let mut m = AFTER_LF_CR;
        assert!(scan(&mut m, b"\n"));
        assert_eq!(m, 0);
        assert!(!scan(&mut m, b""));
        assert_eq!(m, 0);
    }

    #[test]
    fn a_bare_lf_ends_lines_as_crlf_does_but_not_before_the_request_line() {
        for head in [
            &b"GET / HTTP/1.1\nhost: x\n\n"[..],
            b"GET / HTTP/1.1\r\nhost: x\n\r\n",
            b"GET / HTTP/1.1\nhost: x\r\n\n",
            b"abcdef\n\n",
        ] {
            for split in 0..head.len() {
                let mut m = 0;
                assert!(!scan(&mut m, &head[..split]), "{head:?} at {split}");
                assert!(scan(&mut m, &head[split..]), "{head:?} at {split}");
            }
        }
        let mut m = 0;
        assert!(
            !scan(&mut m, b"\r\n\n\r\n\n"),
            "empty lines first end nothing"
        );
        assert_eq!(m, START);
        assert!(!scan(&mut m, b"GET / HTTP/1.1\n"));
        assert!(scan(&mut m, b"\n"));
    }
}
