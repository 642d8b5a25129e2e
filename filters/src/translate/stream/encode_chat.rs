//! Writes an OpenAI Chat Completions stream (TRANSLATION_NOTES 4.2): a role chunk, then
//! content and tool-call deltas (each call's `index` its ordinal among this message's
//! calls, assigned at first sight), a finish chunk, the usage chunk only if the client
//! asked for it, and `[DONE]`. Every chunk shares one id, `created` and model: their
//! common prefix is written once and copied.

use super::super::errors::Class;
use super::super::ir::{Finish, Sig, SigOrigin, Usage};
use super::super::response::Exchange;
use super::super::{finish, names, usage};
use super::json;
use super::Ev;

/// State of one OpenAI Chat client stream.
#[derive(Debug)]
pub struct ChatEncoder {
    /// `data: {"id":..,"object":..,"created":..,"model":..,"choices":[{"index":0,"delta":`
    prefix: Vec<u8>,
    /// What closes a delta chunk (with `"usage":null` when usage was asked for).
    suffix: &'static [u8],
    started: bool,
    next_tool: u32,
    tool: u32,
    finish: Option<Finish>,
    usage: Usage,
    include_usage: bool,
    reasoning_content: bool,
    fallback_model: String,
    now: u64,
}

const SUFFIX: &[u8] = b",\"finish_reason\":null}]}\n\n";
const SUFFIX_USAGE: &[u8] = b",\"finish_reason\":null}],\"usage\":null}\n\n";

impl ChatEncoder {
    /// A client stream for `ex`.
    pub fn new(ex: &Exchange) -> ChatEncoder {
        ChatEncoder {
            prefix: Vec::with_capacity(160),
            suffix: if ex.include_usage {
                SUFFIX_USAGE
            } else {
                SUFFIX
            },
            started: false,
            next_tool: 0,
            tool: 0,
            finish: None,
            usage: Usage::default(),
            include_usage: ex.include_usage,
            reasoning_content: ex.reasoning_content,
            fallback_model: ex.model.clone(),
            now: ex.now,
        }
    }

    /// One upstream event.
    pub fn ev(&mut self, ev: Ev<'_>, out: &mut Vec<u8>) {
        match ev {
            Ev::Start { id, model, usage } => {
                self.start(id, model, out);
                if let Some(u) = usage {
                    self.usage.merge(&u);
                }
            }
            Ev::Text(t) => self.delta(out, |o| json::field_str(o, "content", t)),
            Ev::Thinking(t) if self.reasoning_content => {
                self.delta(out, |o| json::field_str(o, "reasoning_content", t))
            }
            Ev::ToolStart { id, name, sig } => self.tool_start(id, name, sig, out),
            Ev::Args(a) if !a.is_empty() => {
                let index = self.tool;
                self.delta(out, |o| {
                    o.extend_from_slice(b"\"tool_calls\":[{\"index\":");
                    json::num(o, u64::from(index));
                    o.extend_from_slice(b",\"function\":{");
                    json::field_str(o, "arguments", a);
                    o.extend_from_slice(b"}}]");
                })
            }
            Ev::Finish(f) => self.finish = Some(f),
            Ev::Usage(u) => self.usage.merge(&u),
            Ev::End => self.end(out),
            Ev::Error(class, message) => error(class, message, out),
            Ev::Thinking(_) | Ev::Signature(..) | Ev::Redacted(_) | Ev::Stop | Ev::Args(_) => {}
        }
    }

    fn start(&mut self, id: &str, model: &str, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let p = &mut self.prefix;
        p.extend_from_slice(b"data: {\"id\":");
        if id.starts_with("chatcmpl") {
            json::str(p, id);
        } else {
            json::str(p, &format!("chatcmpl-{id}"));
        }
        p.extend_from_slice(b",\"object\":\"chat.completion.chunk\",\"created\":");
        json::num(p, self.now);
        p.extend_from_slice(b",\"model\":");
        json::str(
            p,
            if model.is_empty() {
                &self.fallback_model
            } else {
                model
            },
        );
        p.extend_from_slice(b",\"choices\":[{\"index\":0,\"delta\":");
        self.delta(out, |o| {
            o.extend_from_slice(b"\"role\":\"assistant\",\"content\":\"\"")
        });
    }

    /// One chunk whose delta object's members `body` writes.
    fn delta(&mut self, out: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
        if !self.started {
            self.start("", "", out);
        }
        out.extend_from_slice(&self.prefix);
        out.push(b'{');
        body(out);
        out.push(b'}');
        out.extend_from_slice(self.suffix);
    }

    fn tool_start(&mut self, id: &str, name: &str, sig: Option<&str>, out: &mut Vec<u8>) {
        self.tool = self.next_tool;
        self.next_tool += 1;
        let index = self.tool;
        let id = match sig {
            Some(s) => names::id_with_sig(
                id,
                &Sig {
                    origin: SigOrigin::Gemini,
                    bytes: s.to_owned(),
                },
            ),
            None => id.to_owned(),
        };
        self.delta(out, |o| {
            o.extend_from_slice(b"\"tool_calls\":[{\"index\":");
            json::num(o, u64::from(index));
            o.push(b',');
            json::field_str(o, "id", &id);
            o.extend_from_slice(b",\"type\":\"function\",\"function\":{");
            json::field_str(o, "name", name);
            o.extend_from_slice(b",\"arguments\":\"\"}}]");
        });
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        if !self.started {
            self.start("", "", out);
        }
        let reason = finish::to_openai(self.finish.as_ref().unwrap_or(&Finish::Stop));
        out.extend_from_slice(&self.prefix);
        out.extend_from_slice(b"{},\"finish_reason\":");
        json::str(out, reason);
        out.extend_from_slice(b"}]");
        if self.include_usage {
            out.extend_from_slice(b",\"usage\":null}\n\n");
            // The usage chunk: same envelope, no choices.
            let head_end = self.prefix.len() - b"[{\"index\":0,\"delta\":".len();
            out.extend_from_slice(&self.prefix[..head_end]);
            out.extend_from_slice(b"[],\"usage\":");
            json::value(out, &usage::to_openai(&self.usage));
            out.extend_from_slice(b"}\n\n");
        } else {
            out.extend_from_slice(b"}\n\n");
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
    }
}

/// `data: {"error":{...}}` and no `[DONE]`: the openai SDK raises on it.
pub fn error(class: Class, message: &str, out: &mut Vec<u8>) {
    let (kind, code) = class.openai_type_code();
    out.extend_from_slice(b"data: {\"error\":{");
    json::field_str(out, "message", message);
    out.push(b',');
    json::field_str(out, "type", kind);
    out.extend_from_slice(b",\"param\":null,\"code\":");
    match code {
        Some(c) => json::str(out, c),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b"}}\n\n");
}
