//! Decodes an OpenAI Chat Completions stream (`data:` chunks, `[DONE]`). Tool calls
//! come out one after another, each whole (start, argument fragments, stop), even when
//! an upstream interleaves the fragments of parallel calls: a call opens once the one
//! before it has closed its arguments' JSON, and fragments for a call not yet open wait
//! in its slot (TRANSLATION_NOTES 4.6, checklist item 4).

use crate::providers::quick;
use crate::providers::wire::openai::{Chunk, ContentPart, DeltaContent, ToolCallDelta};

use super::super::errors::Class;
use super::super::{finish, names, usage};
use super::json::JsonEnd;
use super::{Ev, Flow, Sink};

#[derive(Debug, Default)]
struct Slot {
    index: u32,
    id: String,
    name: String,
    /// Fragments received before the call could open.
    pending: String,
    opened: bool,
    closed: bool,
    json: JsonEnd,
}

/// State of one OpenAI stream.
#[derive(Debug, Default)]
pub struct ChatDecoder {
    started: bool,
    slots: Vec<Slot>,
    /// The slot whose block is open.
    open: Option<usize>,
    finished: bool,
}

impl ChatDecoder {
    /// One `data:` payload.
    pub fn frame(&mut self, data: &[u8], sink: &mut Sink<'_>) -> Flow {
        if data == b"[DONE]" {
            self.drain(sink);
            sink.ev(Ev::End);
            return Flow::Done;
        }
        let Some(chunk) = quick::document_or_typed::<Chunk<'_>>(data) else {
            return Flow::More;
        };
        if let Some(e) = chunk.error {
            let message = e
                .get("message")
                .and_then(|m| m.as_str())
                .unwrap_or("upstream error");
            let class = match e.get("type").and_then(|t| t.as_str()) {
                Some("rate_limit_error" | "requests" | "tokens") => Class::RateLimit,
                _ => Class::Server,
            };
            sink.ev(Ev::Error(class, message));
            return Flow::Done;
        }
        if !self.started {
            self.started = true;
            let id = chunk.id.as_deref().unwrap_or("");
            let model = chunk.model.as_deref().unwrap_or("");
            sink.ev(Ev::Start {
                id,
                model,
                usage: None,
            });
        }
        for choice in chunk.choices.iter().filter(|c| c.index == 0) {
            if let Some(d) = &choice.delta {
                self.delta(d, sink);
            }
            if let Some(reason) = &choice.finish_reason {
                self.drain(sink);
                self.finished = true;
                sink.ev(Ev::Finish(finish::of_openai_calls(
                    finish::from_openai(reason),
                    !self.slots.is_empty(),
                )));
            }
        }
        if let Some(u) = &chunk.usage {
            sink.ev(Ev::Usage(usage::from_openai(u)));
        }
        Flow::More
    }

    fn delta(&mut self, d: &crate::providers::wire::openai::Delta<'_>, sink: &mut Sink<'_>) {
        if let Some(r) = d.reasoning_content.as_deref().or(d.reasoning.as_deref()) {
            if !r.is_empty() {
                sink.ev(Ev::Thinking(r));
            }
        }
        match &d.content {
            Some(DeltaContent::Text(t)) if !t.is_empty() => sink.ev(Ev::Text(t)),
            // Mistral's reasoning models stream their thinking as typed chunks.
            Some(DeltaContent::Parts(parts)) => {
                for p in parts {
                    match p {
                        ContentPart::Text { text } if !text.is_empty() => {
                            sink.ev(Ev::Text(text));
                        }
                        ContentPart::Thinking { thinking, .. } => {
                            let texts = thinking.iter().filter_map(ContentPart::as_text);
                            for text in texts.filter(|t| !t.is_empty()) {
                                sink.ev(Ev::Thinking(text));
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        if let Some(t) = d.refusal.as_deref().filter(|t| !t.is_empty()) {
            sink.ev(Ev::Text(t));
        }
        for call in &d.tool_calls {
            self.tool_delta(call, sink);
        }
    }

    fn tool_delta(&mut self, call: &ToolCallDelta<'_>, sink: &mut Sink<'_>) {
        let id = call.id.as_deref().filter(|id| !id.is_empty());
        let found = match call.index {
            Some(index) => self.slots.iter().position(|s| s.index == index),
            // No index: a new id is a new call; no id continues the latest call.
            None => match id {
                Some(id) => self.slots.iter().position(|s| s.id == id),
                None => self.slots.len().checked_sub(1),
            },
        };
        let k = match found {
            Some(k) => k,
            None => {
                // Without an index, its place (as a whole answer's call is named).
                let index = call.index.unwrap_or(self.slots.len() as u32);
                self.slots.push(Slot {
                    index,
                    ..Slot::default()
                });
                self.slots.len() - 1
            }
        };
        let f = call.function.as_ref();
        let slot = &mut self.slots[k];
        // OpenAI sends the id once, maybe split over fragments; without an index the id
        // is what told the call, so it is already this slot's.
        if let Some(id) = id.filter(|_| call.index.is_some() || slot.id.is_empty()) {
            slot.id.push_str(id);
        }
        if let Some(name) = f.and_then(|f| f.name.as_deref()) {
            slot.name.push_str(name);
        }
        let args = f.and_then(|f| f.arguments.as_deref()).unwrap_or("");
        if self.open == Some(k) {
            self.args(k, args, sink);
            return;
        }
        self.slots[k].pending.push_str(args);
        self.advance(sink);
    }

    fn args(&mut self, k: usize, args: &str, sink: &mut Sink<'_>) {
        if !args.is_empty() {
            sink.ev(Ev::Args(args));
        }
        if self.slots[k].json.feed(args.as_bytes()) {
            self.close_open(sink);
            self.advance(sink);
        }
    }

    /// Opens the next waiting call if none is open.
    fn advance(&mut self, sink: &mut Sink<'_>) {
        while self.open.is_none() {
            let Some(k) = self
                .slots
                .iter()
                .position(|s| !s.opened && !s.id.is_empty())
            else {
                return;
            };
            self.open_slot(k, sink);
            let pending = std::mem::take(&mut self.slots[k].pending);
            if !pending.is_empty() {
                sink.ev(Ev::Args(&pending));
            }
            if self.slots[k].json.feed(pending.as_bytes()) {
                self.close_open(sink);
            }
        }
    }

    fn open_slot(&mut self, k: usize, sink: &mut Sink<'_>) {
        let s = &mut self.slots[k];
        s.opened = true;
        self.open = Some(k);
        sink.ev(Ev::ToolStart {
            id: &s.id,
            name: &s.name,
            sig: None,
        });
    }

    fn close_open(&mut self, sink: &mut Sink<'_>) {
        if let Some(k) = self.open.take() {
            self.slots[k].closed = true;
            sink.ev(Ev::Stop);
        }
    }

    /// Closes the open call and opens, fills and closes every waiting one.
    fn drain(&mut self, sink: &mut Sink<'_>) {
        self.close_open(sink);
        while let Some(k) = self.slots.iter().position(|s| !s.opened) {
            if self.slots[k].id.is_empty() {
                self.slots[k].id = names::call_id_of_place(self.slots[k].index);
            }
            self.open_slot(k, sink);
            let pending = std::mem::take(&mut self.slots[k].pending);
            if !pending.is_empty() {
                sink.ev(Ev::Args(&pending));
            }
            self.close_open(sink);
        }
    }

    /// The end of the upstream stream: clean after a finish reason even without
    /// `[DONE]` (some compatible hosts omit it).
    pub fn eof(&mut self, sink: &mut Sink<'_>) -> bool {
        if self.finished {
            sink.ev(Ev::End);
        }
        self.finished
    }
}
