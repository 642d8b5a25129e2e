//! Reading the client's request body before routing (the model is in it), with our own
//! size cap and total deadline, and the cheap parse that finds `model`, `stream` and the
//! requested maximum output.

use bytes::Bytes;
use pingora::proxy::Session;
use serde::Deserialize;
use std::time::Instant;
use tollgate_filters::body::BodyCollector;
use tollgate_filters::limits::estimate::{self, Count, GenerationConfig};
use tollgate_filters::GatewayError;

/// Why a body could not be read.
pub enum BodyError {
    /// The client gets this error.
    Refused(GatewayError),
    /// The client went away or broke the framing: nothing to answer.
    Client(Box<pingora::Error>),
}

/// Reads the whole body, keeping Pingora's retry buffer on so that a body of up to its
/// 64 KiB limit can be replayed upstream by the normal proxy phases. What the reads hold
/// is collected by [`BodyCollector`] (the cap, and reads that hold no payload).
///
/// `deadline` is when the whole body must have arrived: the request's arrival plus the
/// body timeout, so that no clock is read here. Reading stops as soon as Pingora's body
/// reader is done (a `Content-Length` body usually is after its one read), without the
/// further read that would only say so: each read arms Pingora's per-read timeout.
pub async fn read_body(
    session: &mut Session,
    max: u64,
    deadline: Instant,
) -> Result<Bytes, BodyError> {
    let declared = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let mut body = BodyCollector::new(declared, max).map_err(BodyError::Refused)?;
    session.enable_retry_buffering();
    let read = async {
        while !session.is_body_done() {
            match session
                .read_request_body()
                .await
                .map_err(|e| BodyError::Client(e.into_down()))?
            {
                Some(chunk) => body.push(chunk).map_err(BodyError::Refused)?,
                None => break,
            }
        }
        Ok(body.finish())
    };
    tokio::time::timeout_at(deadline.into(), read)
        .await
        .map_err(|_| BodyError::Refused(GatewayError::BodyTimeout))?
}

/// Deepest JSON nesting accepted: far beyond any real request, and it keeps a hostile
/// body from reaching an upstream parser that might recurse on it.
const MAX_JSON_DEPTH: usize = 128;

/// `Some(limit)` when arrays/objects nest deeper than `limit` (strings skipped). Strings,
/// most of a request body, are crossed with `memchr` to their closing quote or next
/// escape instead of a step per byte. An unterminated string ends the scan: the JSON
/// parse that follows refuses it.
fn too_deep(body: &[u8], limit: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(&b) = body.get(i) {
        match b {
            b'"' => {
                i += 1;
                loop {
                    let off = memchr::memchr2(b'"', b'\\', body.get(i..)?)?;
                    i += off;
                    if body[i] == b'"' {
                        break;
                    }
                    i += 2; // the backslash and the byte it escapes
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return Some(limit);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    None
}

/// Whether `body` has more than `limit` opening brackets, in strings or not: nesting
/// deeper than `limit` needs that many, so a body with fewer (nearly every request) is
/// spared [`too_deep`]'s scan, which steps from string to string. One branch-free pass.
fn may_nest_deeper(body: &[u8], limit: usize) -> bool {
    const OPENERS: [u8; 2] = *b"[{";
    body.len() > limit
        && body
            .iter()
            .map(|&b| usize::from(b == OPENERS[0] || b == OPENERS[1]))
            .sum::<usize>()
            > limit
}

#[derive(Deserialize)]
struct Probe {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    stream: Option<bool>,
    // The maximum output in each dialect's spelling, for the limits' estimate: read in
    // this one pass rather than a second one of the body.
    #[serde(default)]
    max_tokens: Count,
    #[serde(default)]
    max_completion_tokens: Count,
    #[serde(default)]
    max_output_tokens: Count,
    #[serde(default, rename = "generationConfig")]
    generation_config: GenerationConfig,
}

/// What [`probe`] finds in a JSON request body.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Probed {
    pub model: Option<String>,
    pub stream: bool,
    /// The most output tokens the body asks for, in any dialect's spelling.
    pub max_output: Option<u64>,
}

impl From<Probe> for Probed {
    fn from(p: Probe) -> Probed {
        Probed {
            model: p.model.filter(|m| !m.is_empty()),
            stream: p.stream.unwrap_or(false),
            max_output: estimate::largest([
                p.max_tokens,
                p.max_completion_tokens,
                p.max_output_tokens,
                p.generation_config.max_output_tokens,
            ]),
        }
    }
}

/// What routing and limits need from a JSON request body. The rest of the body
/// is validated as JSON (and as UTF-8 throughout: the parser skips the strings it does
/// not keep without looking inside them) but not built into a tree.
pub fn probe(body: &[u8]) -> Result<Probed, GatewayError> {
    if !body.trim_ascii_start().starts_with(b"{") {
        return Err(GatewayError::BadJson(
            "the body must be a JSON object".into(),
        ));
    }
    if may_nest_deeper(body, MAX_JSON_DEPTH) {
        if let Some(depth) = too_deep(body, MAX_JSON_DEPTH) {
            return Err(GatewayError::BadJson(format!(
                "nesting deeper than {depth} levels"
            )));
        }
    }
    // One pass over the whole body, vectorised for ASCII (a few GB/s).
    let text = std::str::from_utf8(body).map_err(|e| {
        GatewayError::BadJson(format!(
            "invalid UTF-8 at byte {} (JSON text must be UTF-8)",
            e.valid_up_to()
        ))
    })?;
    let p: Probe = serde_json::from_str(text).map_err(|e| GatewayError::BadJson(e.to_string()))?;
    Ok(Probed::from(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain byte-by-byte depth scan, to check the fast one against.
    fn too_deep_reference(body: &[u8], limit: usize) -> Option<usize> {
        let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
        for &b in body {
            if in_str {
                match (escaped, b) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"') => in_str = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => in_str = true,
                b'[' | b'{' => {
                    depth += 1;
                    if depth > limit {
                        return Some(limit);
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        None
    }

    #[test]
    fn depth_scan_skips_strings_and_escapes_like_the_plain_scan() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let cases = [
            deep(3),
            deep(4),
            format!(r#"{{"a":"[[[[[[","b":{}}}"#, deep(2)),
            format!(r#"{{"a":"\"[[[[[\\","b":{}}}"#, deep(3)),
            r#"{"a":"\\"}[[[[[["#.to_owned(),
            r#"{"a":"unterminated [[[[[["#.to_owned(),
            r#"{"a":"ends in a backslash \"#.to_owned(),
            r#"{"a":"\u005b[[[[","b":[[[[[[]]]]]]}"#.to_owned(),
            String::new(),
        ];
        for case in &cases {
            for limit in [2, 4, 5] {
                assert_eq!(
                    too_deep(case.as_bytes(), limit),
                    too_deep_reference(case.as_bytes(), limit),
                    "{case} at limit {limit}"
                );
                // The bracket count only ever spares the scan of a body it would pass.
                if !may_nest_deeper(case.as_bytes(), limit) {
                    assert_eq!(too_deep_reference(case.as_bytes(), limit), None, "{case}");
                }
            }
        }
    }

    #[test]
    fn the_bracket_count_skips_the_scan_only_where_nesting_cannot_be_too_deep() {
        let nested = |n: usize| format!(r#"{{"a":{}1{}}}"#, "[".repeat(n), "]".repeat(n));
        // MAX_JSON_DEPTH levels in all (the object is one) pass; one more is refused,
        // also when the brackets in strings alone would have been enough to count.
        assert!(probe(nested(MAX_JSON_DEPTH - 1).as_bytes()).is_ok());
        let deep = probe(nested(MAX_JSON_DEPTH).as_bytes());
        assert!(matches!(deep, Err(GatewayError::BadJson(m)) if m.contains("nesting")));
        let in_strings = format!(r#"{{"s":"{}","a":[[1]]}}"#, "[{".repeat(MAX_JSON_DEPTH));
        assert!(may_nest_deeper(in_strings.as_bytes(), MAX_JSON_DEPTH));
        assert!(probe(in_strings.as_bytes()).is_ok());
        assert!(!may_nest_deeper(&[b'['; MAX_JSON_DEPTH], MAX_JSON_DEPTH));
        assert!(may_nest_deeper(&[b'{'; MAX_JSON_DEPTH + 1], MAX_JSON_DEPTH));
    }

    #[test]
    fn probe_finds_model_and_stream_anywhere() {
        let big = format!(
            r#"{{"messages":[{{"role":"user","content":"{}"}}],"stream":true,"model":"m"}}"#,
            "x".repeat(100_000)
        );
        let found = |model: Option<&str>, stream| Probed {
            model: model.map(str::to_owned),
            stream,
            max_output: None,
        };
        assert_eq!(probe(big.as_bytes()), Ok(found(Some("m"), true)));
        assert_eq!(probe(b"{}"), Ok(found(None, false)));
        assert!(matches!(probe(b"[1]"), Err(GatewayError::BadJson(_))));
        assert!(matches!(
            probe(b"{\"model\":"),
            Err(GatewayError::BadJson(_))
        ));
        assert!(matches!(
            probe(b"{\"model\":5}"),
            Err(GatewayError::BadJson(_))
        ));
    }

    #[test]
    fn probe_refuses_invalid_utf8_even_in_strings_it_skips() {
        for bad in [&b"\xff"[..], b"\xe2\x82", b"\xc0\xaf", b"\xed\xa0\x80"] {
            let mut body = br#"{"model":"m","messages":[{"content":""#.to_vec();
            body.extend_from_slice(bad);
            body.extend_from_slice(br#""}]}"#);
            let e = probe(&body);
            assert!(
                matches!(&e, Err(GatewayError::BadJson(m)) if m.contains("UTF-8")),
                "{bad:?}: {e:?}"
            );
        }
        let fine = r#"{"model":"m","messages":[{"content":"héllo ✓ 😀"}]}"#;
        let probed = probe(fine.as_bytes()).map(|p| p.model);
        assert_eq!(probed, Ok(Some("m".into())));
    }

    #[test]
    fn probe_reads_the_requested_maximum_in_every_dialects_spelling() {
        let cases: [(&str, Option<u64>); 9] = [
            (r#"{"model":"m","max_tokens":9}"#, Some(9)),
            (r#"{"max_completion_tokens":300,"messages":[]}"#, Some(300)),
            (r#"{"input":"x","max_output_tokens":77}"#, Some(77)),
            (
                r#"{"generationConfig":{"temperature":1,"maxOutputTokens":55}}"#,
                Some(55),
            ),
            (r#"{"max_tokens":9,"max_completion_tokens":20}"#, Some(20)),
            (r#"{"max_tokens":null,"generationConfig":{}}"#, None),
            // Not a count: the provider judges it; the body is not refused for it.
            (r#"{"max_tokens":"lots","max_completion_tokens":-1}"#, None),
            (
                r#"{"generationConfig":"x","max_output_tokens":{"n":1}}"#,
                None,
            ),
            (r#"{"messages":[{"max_tokens":5}]}"#, None),
        ];
        for (body, want) in cases {
            let probed = probe(body.as_bytes()).map(|p| p.max_output);
            assert_eq!(probed, Ok(want), "{body}");
        }
    }
}
