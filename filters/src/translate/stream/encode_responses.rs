//! Writes an OpenAI Responses API stream (TRANSLATION_NOTES 4.4): `response.created` and
//! `response.in_progress`, then one output item at a time (a message with its text
//! part, a function call with its arguments, a reasoning item with its summary),
//! each added, filled by deltas and done, never interleaved; finally
//! `response.completed` (or `.incomplete`) holding every item and the usage. Every
//! event has a `sequence_number` one above the last. Codex builds its history from
//! `output_item.done` and reads usage from `response.completed`. A call of a freeform
//! (`custom`) tool is a `custom_tool_call` item: the upstream streams JSON arguments,
//! whose raw text can be read only whole, so its `input` comes in one delta at its end;
//! a call of the client's own tool search is a `tool_search_call` item, added and done.

use crate::providers::wire::responses::{OutputItem, OutputText, SummaryText};

use super::super::errors::Class;
use super::super::ir::{Finish, Sig, SigOrigin, Usage};
use super::super::response::Exchange;
use super::super::{finish, names, usage};
use super::json;
use super::Ev;

/// How far the `response` object written is.
#[derive(Debug, Clone, Copy)]
enum Stage<'a> {
    InProgress,
    Final(Option<&'a str>),
    Failed(Class, &'a str),
}

/// One event, numbered from `seq` (a free function, so that the open item can be
/// borrowed while it is written).
fn event(seq: &mut u64, kind: &str, out: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\ndata: {\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"sequence_number\":");
    json::num(out, *seq);
    *seq += 1;
    out.push(b',');
    body(out);
    out.extend_from_slice(b"}\n\n");
}

#[derive(Debug)]
enum Open {
    Message {
        id: String,
        text: String,
    },
    Call {
        id: String,
        call_id: String,
        name: String,
        args: String,
        /// A freeform tool's call or a search: its arguments are held, not streamed.
        held: bool,
    },
    Reasoning {
        id: String,
        text: String,
        sig: Option<String>,
    },
}

/// State of one Responses client stream.
#[derive(Debug)]
pub struct ResponsesEncoder {
    seq: u64,
    started: bool,
    id: String,
    /// The upstream's model once it names one; the client's until then.
    model: String,
    /// What the request left: the echo, the time, the client's own kinds of tools.
    ex: Exchange,
    open: Option<Open>,
    items: Vec<OutputItem>,
    finish: Option<Finish>,
    usage: Usage,
}

impl ResponsesEncoder {
    /// A client stream for `ex`.
    pub fn new(ex: &Exchange) -> ResponsesEncoder {
        ResponsesEncoder {
            seq: 0,
            started: false,
            id: String::new(),
            model: ex.model.clone(),
            ex: ex.clone(),
            open: None,
            items: Vec::new(),
            finish: None,
            usage: Usage::default(),
        }
    }

    /// One upstream event.
    pub fn ev(&mut self, ev: Ev<'_>, out: &mut Vec<u8>) {
        // Content before the upstream's start (its first event unreadable, or a host
        // that sends none): the stream starts first, so that `response.created` leads
        // and the items' ids are the response's.
        let content = !matches!(
            ev,
            Ev::Start { .. } | Ev::Finish(_) | Ev::Usage(_) | Ev::End | Ev::Error(..)
        );
        if content && !self.started {
            self.start("", "", None, out);
        }
        match ev {
            Ev::Start { id, model, usage } => self.start(id, model, usage, out),
            Ev::Text(t) => self.text(t, out),
            Ev::Thinking(t) => self.thinking(t, out),
            Ev::Signature(sig, origin) => {
                let carried = names::carry(&Sig {
                    origin,
                    bytes: sig.to_owned(),
                });
                self.signature(carried, out);
            }
            Ev::Redacted(data) => self.signature(names::carry_redacted(data), out),
            Ev::ToolStart { id, name, sig } => self.tool_start(id, name, sig, out),
            Ev::Args(a) => self.args(a, out),
            Ev::Stop => self.close(out),
            Ev::Finish(f) => self.finish = Some(f),
            Ev::Usage(u) => self.usage.merge(&u),
            Ev::End => self.end(out),
            Ev::Error(class, message) => self.failed(class, message, out),
        }
    }

    /// `event: <kind>` and `data: {"type":<kind>,"sequence_number":n,` + `body` + `}`.
    fn event(&mut self, kind: &str, out: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
        event(&mut self.seq, kind, out, body);
    }

    /// The `response` object: `status`, its items so far, usage when final, the echo.
    fn response(&self, out: &mut Vec<u8>, status: &str, stage: Stage<'_>) {
        out.extend_from_slice(b"\"response\":{");
        json::field_str(out, "id", &self.id);
        out.extend_from_slice(b",\"object\":\"response\",\"created_at\":");
        json::num(out, self.ex.now);
        out.push(b',');
        json::field_str(out, "status", status);
        out.push(b',');
        json::field_str(out, "model", &self.model);
        out.extend_from_slice(b",\"output\":");
        json::value(out, &self.items);
        out.extend_from_slice(b",\"usage\":");
        match stage {
            Stage::InProgress => out.extend_from_slice(b"null"),
            _ => json::value(out, &usage::to_responses(&self.usage)),
        }
        out.extend_from_slice(b",\"incomplete_details\":");
        match stage {
            Stage::Final(Some(r)) => {
                out.extend_from_slice(b"{\"reason\":");
                json::str(out, r);
                out.push(b'}');
            }
            _ => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"error\":");
        match stage {
            Stage::Failed(class, message) => {
                out.push(b'{');
                json::field_str(out, "code", class.openai_type_code().0);
                out.push(b',');
                json::field_str(out, "message", message);
                out.push(b'}');
            }
            _ => out.extend_from_slice(b"null"),
        }
        if !self.ex.echo.is_empty() {
            out.push(b',');
            out.extend_from_slice(self.ex.echo.as_bytes());
        }
        out.push(b'}');
    }

    fn start(&mut self, id: &str, model: &str, u: Option<Usage>, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let base = id
            .trim_start_matches("resp_")
            .replace(|c: char| !c.is_ascii_alphanumeric(), "");
        self.id = if base.is_empty() {
            format!("resp_tg{}", self.ex.now)
        } else {
            format!("resp_{base}")
        };
        if !model.is_empty() {
            self.model = model.to_owned();
        }
        if let Some(u) = u {
            self.usage.merge(&u);
        }
        for kind in ["response.created", "response.in_progress"] {
            let mut body = Vec::with_capacity(512);
            self.response(&mut body, "in_progress", Stage::InProgress);
            self.event(kind, out, |o| o.extend_from_slice(&body));
        }
    }

    fn item_id(&self, prefix: &str) -> String {
        format!(
            "{prefix}_{}_{}",
            self.id.trim_start_matches("resp_"),
            self.items.len()
        )
    }

    fn output_index(&self) -> u64 {
        self.items.len() as u64
    }

    fn added(&mut self, item: &OutputItem, out: &mut Vec<u8>) {
        let index = self.output_index();
        self.event("response.output_item.added", out, |o| {
            o.extend_from_slice(b"\"output_index\":");
            json::num(o, index);
            o.extend_from_slice(b",\"item\":");
            json::value(o, item);
        });
    }

    /// An event of item `id` at `index` with one string member, `(key, value)`.
    fn item_event(
        &mut self,
        kind: &str,
        id: &str,
        index: u64,
        (key, value): (&str, &str),
        out: &mut Vec<u8>,
    ) {
        self.event(kind, out, |o| {
            Self::at(o, id, index);
            o.push(b',');
            json::field_str(o, key, value);
        });
    }

    /// The common `item_id` and `output_index` members.
    fn at(o: &mut Vec<u8>, id: &str, index: u64) {
        json::field_str(o, "item_id", id);
        o.extend_from_slice(b",\"output_index\":");
        json::num(o, index);
    }

    fn text(&mut self, t: &str, out: &mut Vec<u8>) {
        if !matches!(self.open, Some(Open::Message { .. })) {
            self.close(out);
            let id = self.item_id("msg");
            let item = OutputItem::Message {
                id: id.clone(),
                status: "in_progress",
                role: "assistant",
                content: Vec::new(),
            };
            self.added(&item, out);
            let index = self.output_index();
            self.event("response.content_part.added", out, |o| {
                Self::at(o, &id, index);
                o.extend_from_slice(b",\"content_index\":0,\"part\":{\"type\":\"output_text\",\"text\":\"\",\"annotations\":[]}");
            });
            self.open = Some(Open::Message {
                id,
                text: String::new(),
            });
        }
        let index = self.output_index();
        let Some(Open::Message { id, text }) = &mut self.open else {
            return;
        };
        text.push_str(t);
        event(&mut self.seq, "response.output_text.delta", out, |o| {
            Self::at(o, id, index);
            o.extend_from_slice(b",\"content_index\":0,");
            json::field_str(o, "delta", t);
            o.extend_from_slice(b",\"logprobs\":[]");
        });
    }

    fn open_reasoning(&mut self, out: &mut Vec<u8>) {
        if matches!(self.open, Some(Open::Reasoning { .. })) {
            return;
        }
        self.close(out);
        let id = self.item_id("rs");
        let item = OutputItem::Reasoning {
            id: id.clone(),
            summary: Vec::new(),
            encrypted_content: None,
        };
        self.added(&item, out);
        self.open = Some(Open::Reasoning {
            id,
            text: String::new(),
            sig: None,
        });
    }

    fn thinking(&mut self, t: &str, out: &mut Vec<u8>) {
        self.open_reasoning(out);
        let index = self.output_index();
        let Some(Open::Reasoning { id, text, .. }) = &mut self.open else {
            return;
        };
        let first = text.is_empty();
        text.push_str(t);
        if first {
            event(
                &mut self.seq,
                "response.reasoning_summary_part.added",
                out,
                |o| {
                    Self::at(o, id, index);
                    o.extend_from_slice(
                        b",\"summary_index\":0,\"part\":{\"type\":\"summary_text\",\"text\":\"\"}",
                    );
                },
            );
        }
        event(
            &mut self.seq,
            "response.reasoning_summary_text.delta",
            out,
            |o| {
                Self::at(o, id, index);
                o.extend_from_slice(b",\"summary_index\":0,");
                json::field_str(o, "delta", t);
            },
        );
    }

    /// A signature ends its reasoning item, carried in `encrypted_content`.
    fn signature(&mut self, carried: String, out: &mut Vec<u8>) {
        self.open_reasoning(out);
        if let Some(Open::Reasoning { sig, .. }) = &mut self.open {
            *sig = Some(carried);
        }
        self.close(out);
    }

    fn tool_start(&mut self, id: &str, name: &str, sig: Option<&str>, out: &mut Vec<u8>) {
        self.close(out);
        if let Some(s) = sig {
            self.signature(
                names::carry(&Sig {
                    origin: SigOrigin::Gemini,
                    bytes: s.to_owned(),
                }),
                out,
            );
        }
        let item_id = self.item_id(self.ex.call_prefix(name));
        let item = self.ex.call_item(
            item_id.clone(),
            id.to_owned(),
            name.to_owned(),
            "",
            "in_progress",
        );
        let held = !matches!(item, OutputItem::FunctionCall { .. });
        self.added(&item, out);
        self.open = Some(Open::Call {
            id: item_id,
            call_id: id.to_owned(),
            name: name.to_owned(),
            args: String::new(),
            held,
        });
    }

    fn args(&mut self, a: &str, out: &mut Vec<u8>) {
        let index = self.output_index();
        let Some(Open::Call { id, args, held, .. }) = &mut self.open else {
            return;
        };
        if a.is_empty() {
            return;
        }
        args.push_str(a);
        if *held {
            return;
        }
        event(
            &mut self.seq,
            "response.function_call_arguments.delta",
            out,
            |o| {
                Self::at(o, id, index);
                o.push(b',');
                json::field_str(o, "delta", a);
            },
        );
    }

    /// Ends the open item: its `.done` events, then `output_item.done` with it whole.
    fn close(&mut self, out: &mut Vec<u8>) {
        let Some(open) = self.open.take() else { return };
        let index = self.output_index();
        let item = match open {
            Open::Message { id, text } => {
                self.event("response.output_text.done", out, |o| {
                    Self::at(o, &id, index);
                    o.extend_from_slice(b",\"content_index\":0,");
                    json::field_str(o, "text", &text);
                    o.extend_from_slice(b",\"logprobs\":[]");
                });
                let part = OutputText::new(text);
                self.event("response.content_part.done", out, |o| {
                    Self::at(o, &id, index);
                    o.extend_from_slice(b",\"content_index\":0,\"part\":");
                    json::value(o, &part);
                });
                OutputItem::Message {
                    id,
                    status: "completed",
                    role: "assistant",
                    content: vec![part],
                }
            }
            Open::Call {
                id,
                call_id,
                name,
                args,
                ..
            } => {
                let item = self
                    .ex
                    .call_item(id.clone(), call_id, name, &args, "completed");
                match &item {
                    OutputItem::CustomToolCall { input, .. } => {
                        if !input.is_empty() {
                            let kind = "response.custom_tool_call_input.delta";
                            self.item_event(kind, &id, index, ("delta", input), out);
                        }
                        let kind = "response.custom_tool_call_input.done";
                        self.item_event(kind, &id, index, ("input", input), out);
                    }
                    OutputItem::FunctionCall { arguments, .. } => {
                        let kind = "response.function_call_arguments.done";
                        self.item_event(kind, &id, index, ("arguments", arguments), out);
                    }
                    _ => {}
                }
                item
            }
            Open::Reasoning { id, text, sig } => self.close_reasoning(id, text, sig, out),
        };
        self.event("response.output_item.done", out, |o| {
            o.extend_from_slice(b"\"output_index\":");
            json::num(o, index);
            o.extend_from_slice(b",\"item\":");
            json::value(o, &item);
        });
        self.items.push(item);
    }

    fn close_reasoning(
        &mut self,
        id: String,
        text: String,
        sig: Option<String>,
        out: &mut Vec<u8>,
    ) -> OutputItem {
        let index = self.output_index();
        let mut summary = Vec::new();
        if !text.is_empty() {
            self.event("response.reasoning_summary_text.done", out, |o| {
                Self::at(o, &id, index);
                o.extend_from_slice(b",\"summary_index\":0,");
                json::field_str(o, "text", &text);
            });
            let part = SummaryText {
                kind: "summary_text".into(),
                text,
            };
            self.event("response.reasoning_summary_part.done", out, |o| {
                Self::at(o, &id, index);
                o.extend_from_slice(b",\"summary_index\":0,\"part\":");
                json::value(o, &part);
            });
            summary.push(part);
        }
        OutputItem::Reasoning {
            id,
            summary,
            encrypted_content: sig,
        }
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        if !self.started {
            self.start("", "", None, out);
        }
        self.close(out);
        let (status, reason) = finish::to_responses(self.finish.as_ref());
        let kind = if status == "completed" {
            "response.completed"
        } else {
            "response.incomplete"
        };
        let mut body = Vec::with_capacity(1024);
        self.response(&mut body, status, Stage::Final(reason));
        self.event(kind, out, |o| o.extend_from_slice(&body));
    }

    /// `response.failed` with the error; no `response.completed` follows.
    fn failed(&mut self, class: Class, message: &str, out: &mut Vec<u8>) {
        if !self.started {
            self.start("", "", None, out);
        }
        let mut body = Vec::with_capacity(512);
        self.response(&mut body, "failed", Stage::Failed(class, message));
        self.event("response.failed", out, |o| o.extend_from_slice(&body));
    }
}
