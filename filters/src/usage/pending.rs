//! Stream payloads whose generated text is not counted yet.
//!
//! The text of a stream is counted only for an estimate, which is needed only when the
//! provider's final report is missing or partial, and that is known only at the end.
//! Counting every event as it passed (a scan of each payload's strings) was most of the
//! meter's work per event; keeping the payloads instead costs a copy. They are kept up
//! to a bound, then counted and dropped, so memory per stream stays small and a long
//! stream costs at most what counting as it flowed did. Each payload is kept whole and
//! counted on its own, so the count is exactly the sum over the payloads.

use super::scan::count_text_chars;

/// Bytes of payloads kept before they are counted; a payload longer than this is
/// counted at once. Most answers' whole streams fit, so they are never counted.
pub const PENDING_MAX: usize = 32 * 1024;
/// The first allocation: a short answer's stream in one, a longer one in a few.
const FIRST: usize = 4 * 1024;
/// Each kept payload is preceded by its length.
const LEN: usize = std::mem::size_of::<u32>();

/// Payloads kept for a later count, and the characters of those already counted.
#[derive(Debug, Default, Clone)]
pub struct PendingText {
    /// Each payload as its length (`u32`, little-endian) and its bytes.
    kept: Vec<u8>,
    counted: u64,
}

impl PendingText {
    /// Keeps `payload` for a later count (or counts it now, see [`PENDING_MAX`]).
    pub fn push(&mut self, payload: &[u8]) {
        if payload.len() + LEN > PENDING_MAX {
            self.counted += count_text_chars(payload);
            return;
        }
        if self.kept.len() + LEN + payload.len() > PENDING_MAX {
            self.counted += count_kept(&self.kept);
            self.kept.clear();
        }
        if self.kept.capacity() == 0 {
            self.kept.reserve(FIRST);
        }
        self.kept
            .extend_from_slice(&(payload.len() as u32).to_le_bytes());
        self.kept.extend_from_slice(payload);
    }

    /// Adds characters counted elsewhere.
    pub fn add(&mut self, chars: u64) {
        self.counted += chars;
    }

    /// Characters of generated text in every payload pushed so far.
    pub fn chars(&self) -> u64 {
        self.counted + count_kept(&self.kept)
    }
}

/// The characters of every payload in `kept`, each counted on its own.
fn count_kept(kept: &[u8]) -> u64 {
    let mut total = 0;
    let mut rest = kept;
    while let Some((len, tail)) = rest.split_first_chunk::<LEN>() {
        let len = (u32::from_le_bytes(*len) as usize).min(tail.len());
        let (payload, tail) = tail.split_at(len);
        total += count_text_chars(payload);
        rest = tail;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A payload with an unterminated string is counted on its own: its scan does not
    /// run on into the next payload.
    #[test]
    fn counts_each_payload_on_its_own() {
        let parts: [&[u8]; 3] = [br#"{"text":"abc"#, br#"{"text":"de"}"#, b"[DONE]"];
        let mut p = PendingText::default();
        for part in parts {
            p.push(part);
        }
        let each: u64 = parts.iter().map(|b| count_text_chars(b)).sum();
        assert_eq!(p.chars(), each);
        assert_eq!(p.chars(), 5);
        p.add(7);
        assert_eq!(p.chars(), 12);
    }

    #[test]
    fn memory_stays_bounded_and_the_count_exact() {
        let event = br#"{"choices":[{"delta":{"content":"hello "}}]}"#;
        let mut p = PendingText::default();
        let n = 3 * PENDING_MAX / event.len();
        for _ in 0..n {
            p.push(event);
            assert!(p.kept.len() <= PENDING_MAX);
        }
        assert_eq!(p.chars(), 6 * n as u64);
        // A payload longer than the bound is counted at once, never kept.
        let big = format!(r#"{{"text":"{}"}}"#, "x".repeat(PENDING_MAX));
        let before = p.kept.len();
        p.push(big.as_bytes());
        assert_eq!(p.kept.len(), before);
        assert_eq!(p.chars(), 6 * n as u64 + PENDING_MAX as u64);
    }

    /// The bound is 32 KiB of kept payloads, reached exactly before anything is counted;
    /// the first push takes one 4 KiB allocation.
    #[test]
    fn kept_payloads_fill_the_bound_exactly_and_start_in_one_allocation() {
        let mut p = PendingText::default();
        p.push(br#"{"text":"ab"}"#);
        assert!((4 * 1024..8 * 1024).contains(&p.kept.capacity()));
        assert_eq!(p.kept.len(), LEN + 13);
        // A second payload that brings the kept bytes to the bound exactly: both kept.
        let rest = 32 * 1024 - p.kept.len() - LEN;
        let filler = format!(r#"{{"text":"{}"}}"#, "c".repeat(rest - 11));
        p.push(filler.as_bytes());
        assert_eq!(p.kept.len(), 32 * 1024);
        assert_eq!(p.counted, 0, "nothing counted before the bound is passed");
        assert_eq!(p.chars(), 2 + (rest - 11) as u64);
        // One byte more is counted and let go.
        p.push(b"x");
        assert_eq!(p.counted, 2 + (rest - 11) as u64);
        assert_eq!(p.kept.len(), LEN + 1);
    }

    #[test]
    fn payloads_exactly_at_the_bound_are_kept_and_one_more_byte_is_counted() {
        let n = PENDING_MAX - LEN - 11;
        let fits = format!(r#"{{"text":"{}"}}"#, "y".repeat(n));
        assert_eq!(fits.len() + LEN, PENDING_MAX);
        let mut p = PendingText::default();
        p.push(fits.as_bytes());
        assert_eq!(p.kept.len(), PENDING_MAX);
        assert_eq!(p.counted, 0);
        // The next one does not fit beside it: the kept ones are counted first.
        p.push(br#"{"text":"z"}"#);
        assert_eq!(p.counted, n as u64);
        assert_eq!(p.chars(), n as u64 + 1);
        let over = format!(r#"{{"text":"{}"}}"#, "y".repeat(n + 1));
        let mut q = PendingText::default();
        q.push(over.as_bytes());
        assert!(q.kept.is_empty());
        assert_eq!(q.chars(), n as u64 + 1);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Payload bytes rich in what the count looks at: quotes, escapes, keys, multi-byte
    /// characters, and now and then a payload near or past the bound.
    fn payload() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(br#"{"content":""#.to_vec()),
            Just(br#""text":"ab\"c""#.to_vec()),
            Just(b"\"".to_vec()),
            Just(b"\\".to_vec()),
            Just("\u{e9}\u{1F600}".as_bytes().to_vec()),
            proptest::collection::vec(any::<u8>(), 0..8),
            (1usize..3).prop_map(|k| vec![b'x'; k * PENDING_MAX / 2]),
        ];
        proptest::collection::vec(piece, 0..6).prop_map(|p| p.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Kept or counted at once, the count is the sum of each payload's own.
        #[test]
        fn the_count_is_the_sum_of_each_payloads(payloads in proptest::collection::vec(payload(), 0..40)) {
            let mut p = PendingText::default();
            for x in &payloads {
                p.push(x);
                prop_assert!(p.kept.len() <= PENDING_MAX);
            }
            let each: u64 = payloads.iter().map(|x| count_text_chars(x)).sum();
            prop_assert_eq!(p.chars(), each);
        }
    }
}
