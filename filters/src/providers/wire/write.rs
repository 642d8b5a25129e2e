//! Wire shapes written by hand, byte for byte as `serde_json::to_writer` writes them:
//! a translated answer is written once per request, and serde's writer (a call per
//! field and per string, each string escaped byte by byte) was a third of its cost.
//! Each writer takes the shapes Tollgate produces and declines any other (`None`), so
//! its caller writes that one with serde; the property tests hold the two equal.

use super::anthropic::{Block, MessageResponse, Usage};
use crate::providers::quick::unescaped_run;

/// `s` as a JSON string. Text with nothing to escape (the usual case) is copied whole;
/// other text goes through serde_json's own escaping, so the bytes are its bytes.
fn string(out: &mut Vec<u8>, s: &str) {
    if needs_escape(s.as_bytes()) {
        // Writing to a Vec fails only on a serializer error, which a `&str` never has.
        let _ = serde_json::to_writer(&mut *out, s);
        return;
    }
    out.reserve(s.len() + 2);
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

/// Whether `b` holds a byte serde_json escapes: a quote, a backslash or a control
/// character (UTF-8 it writes as it is).
fn needs_escape(b: &[u8]) -> bool {
    unescaped_run::<false>(b) < b.len()
}

/// `,"key":` (or without the comma for an object's first member).
fn key(out: &mut Vec<u8>, first: bool, name: &str) {
    if !first {
        out.push(b',');
    }
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

fn count(out: &mut Vec<u8>, n: Option<u64>) {
    match n {
        Some(n) => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
}

fn text_or_null(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => string(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// An Anthropic `message` answer, or `None` (nothing written) if it holds a block
/// Tollgate never writes into one (an image, a tool result, a `cache_control`).
pub fn message(m: &MessageResponse, out: &mut Vec<u8>) -> Option<()> {
    let start = out.len();
    out.reserve(128 + m.content.len() * 32);
    out.push(b'{');
    key(out, true, "id");
    string(out, &m.id);
    key(out, false, "type");
    string(out, &m.kind);
    key(out, false, "role");
    string(out, &m.role);
    key(out, false, "model");
    string(out, &m.model);
    key(out, false, "content");
    out.push(b'[');
    for (i, b) in m.content.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        if block(out, b).is_none() {
            out.truncate(start);
            return None;
        }
    }
    out.push(b']');
    key(out, false, "stop_reason");
    text_or_null(out, m.stop_reason.as_deref());
    key(out, false, "stop_sequence");
    text_or_null(out, m.stop_sequence.as_deref());
    key(out, false, "usage");
    usage(out, &m.usage);
    out.push(b'}');
    Some(())
}

/// One content block, or `None` for one this writer leaves to serde.
fn block(out: &mut Vec<u8>, b: &Block) -> Option<()> {
    match b {
        Block::Text {
            text,
            cache_control: None,
        } => {
            out.extend_from_slice(b"{\"type\":\"text\",\"text\":");
            string(out, text);
        }
        Block::Thinking {
            thinking,
            signature,
        } => {
            out.extend_from_slice(b"{\"type\":\"thinking\",\"thinking\":");
            string(out, thinking);
            key(out, false, "signature");
            string(out, signature);
        }
        Block::RedactedThinking { data } => {
            out.extend_from_slice(b"{\"type\":\"redacted_thinking\",\"data\":");
            string(out, data);
        }
        Block::ToolUse {
            id,
            name,
            input,
            cache_control: None,
        } => {
            out.extend_from_slice(b"{\"type\":\"tool_use\",\"id\":");
            string(out, id);
            key(out, false, "name");
            string(out, name);
            key(out, false, "input");
            serde_json::to_writer(&mut *out, input).ok()?;
        }
        _ => return None,
    }
    out.push(b'}');
    Some(())
}

fn usage(out: &mut Vec<u8>, u: &Usage) {
    out.push(b'{');
    key(out, true, "input_tokens");
    count(out, u.input_tokens);
    key(out, false, "cache_creation_input_tokens");
    count(out, u.cache_creation_input_tokens);
    key(out, false, "cache_read_input_tokens");
    count(out, u.cache_read_input_tokens);
    if let Some(c) = &u.cache_creation {
        key(out, false, "cache_creation");
        out.push(b'{');
        key(out, true, "ephemeral_5m_input_tokens");
        count(out, c.ephemeral_5m_input_tokens);
        key(out, false, "ephemeral_1h_input_tokens");
        count(out, c.ephemeral_1h_input_tokens);
        out.push(b'}');
    }
    key(out, false, "output_tokens");
    count(out, u.output_tokens);
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::super::anthropic::{CacheControl, CacheCreation, Source};
    use super::*;
    use proptest::prelude::*;
    use serde_json::{json, Value};

    /// Text with everything serde escapes (quotes, backslashes, control characters),
    /// and what it does not (UTF-8 of every width, DEL).
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-zA-Z0-9 .,!?]{0,40}",
            proptest::collection::vec(
                prop::sample::select(vec![
                    "a", "\"", "\\", "\n", "\r", "\t", "\u{8}", "\u{c}", "\u{1}", "\u{1f}",
                    "\u{7f}", "é", "€", "😀", "/", "'", " ",
                ]),
                0..30
            )
            .prop_map(|v| v.concat()),
        ]
    }

    fn count() -> impl Strategy<Value = Option<u64>> {
        prop_oneof![Just(None), Just(Some(0)), any::<u64>().prop_map(Some)]
    }

    fn input() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(json!({})),
            text().prop_map(|t| json!({"q": t, "n": 3, "deep": {"a": [1, 2.5, null, true]}})),
        ]
    }

    fn block() -> impl Strategy<Value = Block> {
        prop_oneof![
            text().prop_map(|text| Block::Text {
                text,
                cache_control: None
            }),
            (text(), text()).prop_map(|(thinking, signature)| Block::Thinking {
                thinking,
                signature
            }),
            text().prop_map(|data| Block::RedactedThinking { data }),
            (text(), text(), input()).prop_map(|(id, name, input)| Block::ToolUse {
                id,
                name,
                input,
                cache_control: None
            }),
        ]
    }

    fn message_response() -> impl Strategy<Value = MessageResponse> {
        (
            (text(), text(), text(), text()),
            proptest::collection::vec(block(), 0..4),
            (proptest::option::of(text()), proptest::option::of(text())),
            (count(), count(), count(), count()),
            proptest::option::of((count(), count())),
        )
            .prop_map(
                |((id, kind, role, model), content, (stop_reason, stop_sequence), u, cc)| {
                    MessageResponse {
                        id,
                        kind,
                        role,
                        model,
                        content,
                        stop_reason,
                        stop_sequence,
                        usage: Usage {
                            input_tokens: u.0,
                            cache_creation_input_tokens: u.1,
                            cache_read_input_tokens: u.2,
                            cache_creation: cc.map(|(a, b)| CacheCreation {
                                ephemeral_5m_input_tokens: a,
                                ephemeral_1h_input_tokens: b,
                            }),
                            output_tokens: u.3,
                        },
                    }
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        /// The word-at-a-time test agrees with the byte-by-byte one on any bytes.
        #[test]
        fn escapes_are_found_eight_at_a_time(
            b in proptest::collection::vec(prop_oneof![
                // Mostly bytes written as they are, those next to the escaped ones among them.
                9 => prop::sample::select(vec![b'a', b' ', b'!', b'#', b'[', b']', 0x21, 0x5b, 0x5d, 0x7f, 0x80, 0xa2, 0xdc, 0xff]),
                1 => any::<u8>(),
            ], 0..40)
        ) {
            prop_assert_eq!(
                needs_escape(&b),
                b.iter().any(|&c| c < 0x20 || c == b'"' || c == b'\\')
            );
        }

        /// Whatever the answer holds, the bytes are serde's.
        #[test]
        fn a_message_is_written_as_serde_writes_it(m in message_response()) {
            let mut hand = b"kept".to_vec();
            prop_assert_eq!(message(&m, &mut hand), Some(()));
            let want = serde_json::to_vec(&m).unwrap();
            prop_assert_eq!(String::from_utf8_lossy(&hand[4..]), String::from_utf8_lossy(&want));
        }
    }

    /// A block Tollgate never writes into an answer is declined, and nothing written.
    #[test]
    fn other_blocks_are_left_to_serde() {
        let plain = MessageResponse {
            id: "msg_1".into(),
            kind: "message".into(),
            role: "assistant".into(),
            model: "m".into(),
            content: vec![],
            stop_reason: None,
            stop_sequence: None,
            usage: Usage::default(),
        };
        let declined = [
            Block::Text {
                text: "x".into(),
                cache_control: Some(CacheControl {
                    kind: "ephemeral".into(),
                    ttl: None,
                }),
            },
            Block::Image {
                source: Source::Url { url: "u".into() },
                cache_control: None,
            },
        ];
        for b in declined {
            let mut m = plain.clone();
            m.content = vec![
                Block::Text {
                    text: "before".into(),
                    cache_control: None,
                },
                b,
            ];
            let mut out = b"kept".to_vec();
            assert_eq!(message(&m, &mut out), None);
            assert_eq!(out, b"kept");
        }
    }
}
