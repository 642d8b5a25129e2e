//! Writes an Anthropic Messages stream (TRANSLATION_NOTES 4.3) in the order Claude Code
//! and the SDK's accumulator require: one `message_start` first (with real input counts
//! when the upstream gives them, an estimate otherwise), one block open at a time with
//! indexes 0, 1, 2..., each `content_block_start`, deltas of its own type and
//! `content_block_stop`, then `message_delta` with the full usage and `message_stop`.

use super::super::errors::Class;
use super::super::ir::{Finish, Sig, SigOrigin, Usage};
use super::super::response::Exchange;
use super::super::{finish, names, usage};
use super::json;
use super::Ev;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Text,
    Thinking,
    Tool,
}

/// State of one Anthropic client stream.
#[derive(Debug)]
pub struct MessagesEncoder {
    started: bool,
    open: Option<Block>,
    next_index: u32,
    finish: Option<Finish>,
    usage: Usage,
    input_estimate: u64,
    fallback_model: String,
}

impl MessagesEncoder {
    /// A client stream for `ex`.
    pub fn new(ex: &Exchange) -> MessagesEncoder {
        MessagesEncoder {
            started: false,
            open: None,
            next_index: 0,
            finish: None,
            usage: Usage::default(),
            input_estimate: ex.input_estimate,
            fallback_model: ex.model.clone(),
        }
    }

    /// One upstream event.
    pub fn ev(&mut self, ev: Ev<'_>, out: &mut Vec<u8>) {
        match ev {
            Ev::Start { id, model, usage } => self.start(id, model, usage, out),
            Ev::Text(t) => self.delta(Block::Text, out, |o| {
                o.extend_from_slice(b"{\"type\":\"text_delta\",");
                json::field_str(o, "text", t);
            }),
            Ev::Thinking(t) => self.delta(Block::Thinking, out, |o| {
                o.extend_from_slice(b"{\"type\":\"thinking_delta\",");
                json::field_str(o, "thinking", t);
            }),
            Ev::Signature(sig, origin) => self.signature(
                &Sig {
                    origin,
                    bytes: sig.to_owned(),
                },
                out,
            ),
            Ev::Redacted(data) => {
                self.close(out);
                let mut block = br#"{"type":"redacted_thinking","#.to_vec();
                json::field_str(&mut block, "data", data);
                block.push(b'}');
                self.open_block(Block::Thinking, &block, out);
                self.close(out);
            }
            Ev::ToolStart { id, name, sig } => self.tool_start(id, name, sig, out),
            Ev::Args(a) if self.open == Some(Block::Tool) && !a.is_empty() => {
                self.delta(Block::Tool, out, |o| {
                    o.extend_from_slice(b"{\"type\":\"input_json_delta\",");
                    json::field_str(o, "partial_json", a);
                })
            }
            Ev::Stop => self.close(out),
            Ev::Finish(f) => self.finish = Some(f),
            Ev::Usage(u) => self.usage.merge(&u),
            Ev::End => self.end(out),
            Ev::Error(class, message) => {
                // The SDK's accumulator (and Claude Code) fail with "Content block not
                // found" on an error while a block is open: close it first.
                self.close(out);
                error(class, message, out);
            }
            Ev::Args(_) => {}
        }
    }

    fn start(&mut self, id: &str, model: &str, u: Option<Usage>, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        if let Some(u) = u {
            self.usage.merge(&u);
        }
        let mut first = self.usage;
        if first.input_total().is_none() {
            // An OpenAI upstream reports usage only at the end: Claude Code's context
            // meter must not read zero (checklist item 16).
            first.input_uncached = Some(self.input_estimate);
        }
        first.output = Some(first.output.unwrap_or(1).max(1));
        out.extend_from_slice(
            b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":",
        );
        json::str(out, &message_id(id));
        out.extend_from_slice(b",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
        json::str(
            out,
            if model.is_empty() {
                &self.fallback_model
            } else {
                model
            },
        );
        out.extend_from_slice(
            b",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":",
        );
        json::value(out, &usage::to_anthropic(&first));
        out.extend_from_slice(b"}}\n\n");
    }

    fn open_block(&mut self, kind: Block, block: &[u8], out: &mut Vec<u8>) {
        if !self.started {
            self.start("", "", None, out);
        }
        self.close(out);
        out.extend_from_slice(
            b"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":",
        );
        json::num(out, u64::from(self.next_index));
        out.extend_from_slice(b",\"content_block\":");
        out.extend_from_slice(block);
        out.extend_from_slice(b"}\n\n");
        self.open = Some(kind);
    }

    /// Ends the block open, if any, with its `content_block_stop`.
    pub fn close(&mut self, out: &mut Vec<u8>) {
        if self.open.take().is_some() {
            out.extend_from_slice(
                b"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":",
            );
            json::num(out, u64::from(self.next_index));
            out.extend_from_slice(b"}\n\n");
            self.next_index += 1;
        }
    }

    /// A delta for a block of `kind`, opening one if another kind (or none) is open.
    fn delta(&mut self, kind: Block, out: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
        if self.open != Some(kind) {
            let start: &[u8] = match kind {
                Block::Text => br#"{"type":"text","text":""}"#,
                Block::Thinking => br#"{"type":"thinking","thinking":"","signature":""}"#,
                // Arguments without an open call have nowhere to go.
                Block::Tool => return,
            };
            self.open_block(kind, start, out);
        }
        out.extend_from_slice(
            b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":",
        );
        json::num(out, u64::from(self.next_index));
        out.extend_from_slice(b",\"delta\":");
        body(out);
        out.extend_from_slice(b"}}\n\n");
    }

    /// A signature ends its thinking block; a foreign one is carried with its prefix.
    fn signature(&mut self, sig: &Sig, out: &mut Vec<u8>) {
        let carried = names::carry(sig);
        self.delta(Block::Thinking, out, |o| {
            o.extend_from_slice(b"{\"type\":\"signature_delta\",");
            json::field_str(o, "signature", &carried);
        });
        self.close(out);
    }

    fn tool_start(&mut self, id: &str, name: &str, sig: Option<&str>, out: &mut Vec<u8>) {
        self.close(out);
        if let Some(s) = sig {
            // A Gemini call signature rides in an empty thinking block before the call.
            self.signature(
                &Sig {
                    origin: SigOrigin::Gemini,
                    bytes: s.to_owned(),
                },
                out,
            );
        }
        let mut block = br#"{"type":"tool_use","#.to_vec();
        json::field_str(&mut block, "id", &names::ant_tool_id(id));
        block.push(b',');
        json::field_str(&mut block, "name", name);
        block.extend_from_slice(br#","input":{}}"#);
        self.open_block(Block::Tool, &block, out);
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        if !self.started {
            self.start("", "", None, out);
        }
        self.close(out);
        let (reason, sequence) =
            finish::to_anthropic(self.finish.as_ref().unwrap_or(&Finish::Stop));
        out.extend_from_slice(
            b"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":",
        );
        json::str(out, reason);
        out.extend_from_slice(b",\"stop_sequence\":");
        match sequence {
            Some(s) => json::str(out, s),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b"},\"usage\":");
        json::value(out, &usage::to_anthropic(&self.usage));
        out.extend_from_slice(b"}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    }
}

/// `msg_` and the upstream's id, kept to id characters.
pub fn message_id(upstream: &str) -> String {
    if upstream.starts_with("msg_") {
        return upstream.to_owned();
    }
    let mut id = String::with_capacity(upstream.len() + 4);
    id.push_str("msg_");
    // By bytes, not chars (decoding each char cost more than the rest of the id): a
    // character outside ASCII is one `_`, written for its first byte only.
    for &b in upstream.as_bytes() {
        if b.is_ascii_alphanumeric() {
            id.push(char::from(b));
        } else if b & 0xC0 != 0x80 {
            id.push('_');
        }
    }
    id
}

/// `event: error` (and no `message_stop`): the SDK raises on it.
pub fn error(class: Class, message: &str, out: &mut Vec<u8>) {
    let kind = match class {
        Class::Overloaded | Class::RateLimit => class.anthropic_type(),
        _ => "api_error",
    };
    out.extend_from_slice(b"event: error\ndata: {\"type\":\"error\",\"error\":{");
    json::field_str(out, "type", kind);
    out.push(b',');
    json::field_str(out, "message", message);
    out.extend_from_slice(b"}}\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::{Pair, Wire};

    proptest::proptest! {
        /// Each character of the upstream's id is kept when it is an ASCII letter or
        /// digit and is one `_` otherwise, whatever its length in bytes.
        #[test]
        fn a_message_id_keeps_id_characters_one_for_one(upstream in "(msg_)?([a-zA-Z0-9._:-]|é|漢|😀|\\PC){0,30}") {
            let by_chars: String = upstream
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            let want = if upstream.starts_with("msg_") {
                upstream.clone()
            } else {
                format!("msg_{by_chars}")
            };
            proptest::prop_assert_eq!(message_id(&upstream), want);
        }
    }

    fn encoder() -> MessagesEncoder {
        MessagesEncoder::new(&Exchange {
            pair: Pair {
                client: Wire::Messages,
                upstream: Wire::Chat,
            },
            stream: true,
            include_usage: false,
            gemini_sse: false,
            model: "client-model".into(),
            input_estimate: 7,
            names: Vec::new(),
            namespaces: Vec::new(),
            custom_tools: Vec::new(),
            tool_search: false,
            echo: String::new(),
            reasoning_content: false,
            now: 0,
        })
    }

    /// The `event:` names of an encoded stream, in order.
    fn names(out: &[u8]) -> Vec<String> {
        String::from_utf8_lossy(out)
            .lines()
            .filter_map(|l| l.strip_prefix("event: ").map(str::to_owned))
            .collect()
    }

    #[test]
    fn content_or_an_end_before_the_start_still_starts_the_message_first() {
        let mut e = encoder();
        let mut out = Vec::new();
        e.ev(Ev::Text("Hi"), &mut out);
        e.ev(Ev::End, &mut out);
        assert_eq!(
            names(&out),
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        let mut e = encoder();
        let mut out = Vec::new();
        e.ev(Ev::End, &mut out);
        assert_eq!(
            names(&out),
            ["message_start", "message_delta", "message_stop"]
        );
        assert!(String::from_utf8_lossy(&out).contains("\"model\":\"client-model\""));
    }

    #[test]
    fn arguments_go_only_into_an_open_tool_block_and_never_empty() {
        let mut e = encoder();
        let mut out = Vec::new();
        e.ev(
            Ev::Start {
                id: "m1",
                model: "m",
                usage: None,
            },
            &mut out,
        );
        e.ev(Ev::Args("{\"stray\":1}"), &mut out); // no block open
        e.ev(Ev::Text("Hi"), &mut out);
        e.ev(Ev::Args("{\"stray\":2}"), &mut out); // a text block is open
        e.ev(
            Ev::ToolStart {
                id: "call_1",
                name: "grep",
                sig: None,
            },
            &mut out,
        );
        e.ev(Ev::Args(""), &mut out);
        e.ev(Ev::Args("{\"q\":1}"), &mut out);
        e.ev(Ev::Stop, &mut out);
        e.ev(Ev::End, &mut out);
        let text = String::from_utf8_lossy(&out);
        assert!(!text.contains("stray"), "{text}");
        assert_eq!(text.matches("input_json_delta").count(), 1, "{text}");
        assert!(text.contains(r#""partial_json":"{\"q\":1}""#), "{text}");
    }
}
