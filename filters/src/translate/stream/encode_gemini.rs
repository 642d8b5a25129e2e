//! Writes a Gemini stream (TRANSLATION_NOTES 4.5): each chunk a whole
//! `GenerateContentResponse` with only the new parts; text and thoughts as they come, a
//! function call once, complete, when its arguments end (Gemini clients never see
//! partial arguments); the last chunk with `finishReason` and `usageMetadata`. Framed as
//! SSE (`alt=sse`, CRLF) or as one JSON array, as the client asked.

use super::super::errors::Class;
use super::super::ir::{Finish, Sig, SigOrigin, Usage};
use super::super::response::Exchange;
use super::super::Wire;
use super::super::{finish, names, usage};
use super::json;
use super::Ev;

#[derive(Debug, Default)]
struct Call {
    id: String,
    name: String,
    args: String,
    sig: Option<String>,
}

/// State of one Gemini client stream.
#[derive(Debug)]
pub struct GeminiEncoder {
    sse: bool,
    /// Chunks written so far (the array form separates them with commas).
    written: u64,
    /// `,"modelVersion":..,"responseId":..}` closing every chunk.
    tail: Vec<u8>,
    call: Option<Call>,
    finish: Option<Finish>,
    usage: Usage,
    fallback_model: String,
}

impl GeminiEncoder {
    /// A client stream for `ex`.
    pub fn new(ex: &Exchange) -> GeminiEncoder {
        GeminiEncoder {
            sse: ex.gemini_sse,
            written: 0,
            tail: Vec::new(),
            call: None,
            finish: None,
            usage: Usage::default(),
            fallback_model: ex.model.clone(),
        }
    }

    /// One upstream event.
    pub fn ev(&mut self, ev: Ev<'_>, out: &mut Vec<u8>) {
        match ev {
            Ev::Start { id, model, usage } => {
                self.start(id, model);
                if let Some(u) = usage {
                    self.usage.merge(&u);
                }
            }
            Ev::Text(t) => self.part(out, |o| json::field_str(o, "text", t)),
            Ev::Thinking(t) => self.part(out, |o| {
                json::field_str(o, "text", t);
                o.extend_from_slice(b",\"thought\":true");
            }),
            Ev::Signature(sig, origin) => {
                let carried = names::carry(&Sig {
                    origin,
                    bytes: sig.to_owned(),
                });
                self.thought_signature(&carried, out);
            }
            Ev::Redacted(data) => self.thought_signature(&names::carry_redacted(data), out),
            Ev::ToolStart { id, name, sig } => {
                self.flush_call(out);
                self.call = Some(Call {
                    id: id.to_owned(),
                    name: name.to_owned(),
                    args: String::new(),
                    sig: sig.map(|s| {
                        names::carry(&Sig {
                            origin: SigOrigin::Gemini,
                            bytes: s.to_owned(),
                        })
                    }),
                });
            }
            Ev::Args(a) => {
                if let Some(c) = &mut self.call {
                    c.args.push_str(a);
                }
            }
            Ev::Stop => self.flush_call(out),
            Ev::Finish(f) => self.finish = Some(f),
            Ev::Usage(u) => self.usage.merge(&u),
            Ev::End => self.end(out),
            Ev::Error(class, message) => self.error(class, message, out),
        }
    }

    fn start(&mut self, id: &str, model: &str) {
        if !self.tail.is_empty() {
            return;
        }
        self.tail.extend_from_slice(b",\"modelVersion\":");
        json::str(
            &mut self.tail,
            if model.is_empty() {
                &self.fallback_model
            } else {
                model
            },
        );
        if !id.is_empty() {
            self.tail.extend_from_slice(b",\"responseId\":");
            json::str(&mut self.tail, id);
        }
        self.tail.push(b'}');
    }

    fn open_chunk(&mut self, out: &mut Vec<u8>) {
        if self.tail.is_empty() {
            self.start("", "");
        }
        match (self.sse, self.written) {
            (true, _) => out.extend_from_slice(b"data: "),
            (false, 0) => out.push(b'['),
            (false, _) => out.extend_from_slice(b",\r\n"),
        }
        self.written += 1;
    }

    fn close_chunk(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.tail);
        if self.sse {
            out.extend_from_slice(b"\r\n\r\n");
        }
    }

    /// A chunk holding one part whose members `body` writes.
    fn part(&mut self, out: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
        self.flush_call(out);
        self.open_chunk(out);
        out.extend_from_slice(b"{\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{");
        body(out);
        out.extend_from_slice(b"}]},\"index\":0}]");
        self.close_chunk(out);
    }

    fn thought_signature(&mut self, carried: &str, out: &mut Vec<u8>) {
        self.part(out, |o| {
            o.extend_from_slice(b"\"text\":\"\",\"thought\":true,");
            json::field_str(o, "thoughtSignature", carried);
        });
    }

    /// Writes the buffered call, its arguments parsed (an invalid text becomes `{}`).
    fn flush_call(&mut self, out: &mut Vec<u8>) {
        let Some(call) = self.call.take() else { return };
        let args: serde_json::Value = match serde_json::from_str(&call.args) {
            Ok(v @ serde_json::Value::Object(_)) => v,
            _ => {
                if !call.args.trim().is_empty() {
                    log::warn!(
                        "tool call {} had invalid JSON arguments; sent as {{}}",
                        call.name
                    );
                }
                serde_json::json!({})
            }
        };
        self.part(out, |o| {
            o.extend_from_slice(b"\"functionCall\":{");
            json::field_str(o, "id", &call.id);
            o.push(b',');
            json::field_str(o, "name", &call.name);
            o.extend_from_slice(b",\"args\":");
            json::value(o, &args);
            o.push(b'}');
            if let Some(sig) = &call.sig {
                o.push(b',');
                json::field_str(o, "thoughtSignature", sig);
            }
        });
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        self.flush_call(out);
        self.open_chunk(out);
        let reason = finish::to_gemini(self.finish.as_ref().unwrap_or(&Finish::Stop));
        out.extend_from_slice(b"{\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"\"}]},\"finishReason\":");
        json::str(out, reason);
        out.extend_from_slice(b",\"index\":0}],\"usageMetadata\":");
        json::value(out, &usage::to_gemini(&self.usage));
        self.close_chunk(out);
        if !self.sse {
            out.push(b']');
        }
    }

    /// An error element: `data: {"error":..}` for SSE; for the array, the next element
    /// and the closing `]`.
    /// The upstream broke: `native` (the native path's Gemini error object) ends the
    /// stream, as an SSE event or as the array's last element (the array closed).
    pub fn broken(&mut self, native: &[u8], out: &mut Vec<u8>) {
        match (self.sse, self.written) {
            (true, _) => out.extend_from_slice(b"data: "),
            (false, 0) => out.push(b'['),
            (false, _) => out.extend_from_slice(b",\r\n"),
        }
        out.extend_from_slice(native);
        out.extend_from_slice(if self.sse { b"\r\n\r\n" } else { b"]" });
    }

    fn error(&mut self, class: Class, message: &str, out: &mut Vec<u8>) {
        match (self.sse, self.written) {
            (true, _) => out.extend_from_slice(b"data: "),
            (false, 0) => out.push(b'['),
            (false, _) => out.extend_from_slice(b",\r\n"),
        }
        out.extend_from_slice(b"{\"error\":{\"code\":");
        let status = super::super::errors::client_status(Wire::Gemini, class.status(), class);
        json::num(out, u64::from(status));
        out.push(b',');
        json::field_str(out, "message", message);
        out.push(b',');
        json::field_str(out, "status", class.gemini_status());
        out.extend_from_slice(b"}}");
        out.extend_from_slice(if self.sse { b"\r\n\r\n" } else { b"]" });
    }
}
