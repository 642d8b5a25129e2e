//! Collecting a request body from the chunks the HTTP layer hands over, within the size
//! cap. The proxy does the reading (and the deadline); this holds what the reads give.
//!
//! A read may hold framing and no payload (a chunked body's size line, split or with a
//! long extension, arrives alone): it yields an empty chunk, which says nothing about the
//! end of the body. Only the end of the reads ends it.

use bytes::{Bytes, BytesMut};

use crate::error::GatewayError;

/// The body read so far.
#[derive(Debug)]
pub struct BodyCollector {
    max: u64,
    declared: Option<u64>,
    /// The first non-empty chunk, kept without a copy while it is the only one (the
    /// common body arrives in one read).
    first: Bytes,
    /// The body joined, once a second non-empty chunk arrived.
    joined: Option<BytesMut>,
}

impl BodyCollector {
    /// A collector for a body of `declared` bytes (`Content-Length`, if any) and at most
    /// `max`; a declared length over the cap is refused before anything is read.
    pub fn new(declared: Option<u64>, max: u64) -> Result<Self, GatewayError> {
        if declared.is_some_and(|n| n > max) {
            return Err(GatewayError::BodyTooLarge(max));
        }
        Ok(BodyCollector {
            max,
            declared,
            first: Bytes::new(),
            joined: None,
        })
    }

    /// Bytes collected so far.
    pub fn len(&self) -> u64 {
        match &self.joined {
            Some(j) => j.len() as u64,
            None => self.first.len() as u64,
        }
    }

    /// Whether nothing was collected yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds the payload of one read; refuses a body that grows past the cap.
    pub fn push(&mut self, chunk: Bytes) -> Result<(), GatewayError> {
        if self.len() + chunk.len() as u64 > self.max {
            return Err(GatewayError::BodyTooLarge(self.max));
        }
        if chunk.is_empty() {
            return Ok(());
        }
        match &mut self.joined {
            Some(j) => j.extend_from_slice(&chunk),
            None if self.first.is_empty() => self.first = chunk,
            None => {
                let room = self.declared.unwrap_or(0).min(self.max) as usize;
                let mut j = BytesMut::with_capacity(room.max(self.first.len() + chunk.len()));
                j.extend_from_slice(&self.first);
                j.extend_from_slice(&chunk);
                self.first = Bytes::new();
                self.joined = Some(j);
            }
        }
        Ok(())
    }

    /// The whole body.
    pub fn finish(self) -> Bytes {
        match self.joined {
            Some(j) => j.freeze(),
            None => self.first,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(declared: Option<u64>, max: u64, chunks: &[&str]) -> Result<Bytes, GatewayError> {
        let mut c = BodyCollector::new(declared, max)?;
        for chunk in chunks {
            c.push(Bytes::copy_from_slice(chunk.as_bytes()))?;
        }
        Ok(c.finish())
    }

    #[test]
    fn empty_reads_neither_end_nor_change_the_body() {
        let want = Ok(Bytes::from_static(b"{\"model\":\"m\"}"));
        assert_eq!(
            collect(None, 100, &["", "{\"model\"", "", ":\"m\"}", ""]),
            want
        );
        assert_eq!(collect(Some(13), 100, &["{\"model\":\"m\"}"]), want);
        assert_eq!(collect(Some(13), 100, &["", "{\"model\":\"m\"}"]), want);
        assert_eq!(collect(None, 100, &["{\"mo", "del\":", "\"m\"}"]), want);
        assert_eq!(collect(None, 100, &[]), Ok(Bytes::new()));
        assert_eq!(collect(Some(0), 0, &[""]), Ok(Bytes::new()));
    }

    #[test]
    fn the_common_single_read_is_not_copied() {
        let chunk = Bytes::from_static(b"{\"model\":\"m\"}");
        let mut c = BodyCollector::new(Some(13), 100).unwrap_or_else(|_| unreachable!());
        assert!(c.is_empty());
        assert_eq!(c.push(Bytes::new()), Ok(()));
        assert_eq!(c.push(chunk.clone()), Ok(()));
        assert_eq!(c.len(), 13);
        assert!(!c.is_empty());
        let body = c.finish();
        assert_eq!(body.as_ptr(), chunk.as_ptr(), "the same bytes, not a copy");
    }

    #[test]
    fn the_cap_holds_for_declared_and_read_lengths() {
        let too_large = Err(GatewayError::BodyTooLarge(4));
        assert_eq!(collect(Some(5), 4, &[]).map(|_| ()), too_large);
        assert_eq!(
            collect(Some(4), 4, &["abcd"]),
            Ok(Bytes::from_static(b"abcd"))
        );
        assert_eq!(
            collect(None, 4, &["ab", "cd"]),
            Ok(Bytes::from_static(b"abcd"))
        );
        assert_eq!(collect(None, 4, &["abcde"]).map(|_| ()), too_large);
        assert_eq!(collect(None, 4, &["ab", "", "cde"]).map(|_| ()), too_large);
        assert_eq!(
            collect(None, 4, &["a", "b", "c", "de"]).map(|_| ()),
            too_large
        );
    }
}
