//! Decodes an Anthropic Messages stream: its events already come block by block, so
//! this mostly renames them; `message_delta` gives the finish and the final usage,
//! `message_stop` the clean end.

use crate::providers::wire::anthropic::{BlockDelta, ErrorBody, Event, StartBlock};
use crate::providers::wire::from_json;

use super::super::errors::{anthropic_error, Class};
use super::super::ir::SigOrigin;
use super::super::{finish, usage};
use super::{Ev, Flow, Sink};

/// State of one Anthropic stream.
#[derive(Debug, Default)]
pub struct MessagesDecoder {
    /// A block of a kind other dialects cannot show (server tool use): its events are
    /// skipped.
    skipping: Option<u32>,
    saw_delta: bool,
}

impl MessagesDecoder {
    /// One event (the `event:` name repeats the payload's `type`).
    pub fn frame(&mut self, _event: &[u8], data: &[u8], sink: &mut Sink<'_>) -> Flow {
        let Ok(ev) = from_json::<Event<'_>>(data) else {
            return Flow::More;
        };
        match ev {
            Event::MessageStart { message } => {
                let usage = message.usage.as_ref().map(usage::from_anthropic);
                sink.ev(Ev::Start {
                    id: &message.id,
                    model: &message.model,
                    usage,
                });
            }
            Event::ContentBlockStart {
                index,
                content_block,
            } => self.block_start(index, content_block, sink),
            Event::ContentBlockDelta { index, delta } if self.skipping != Some(index) => {
                match delta {
                    BlockDelta::TextDelta { text } => sink.ev(Ev::Text(&text)),
                    BlockDelta::ThinkingDelta { thinking } => sink.ev(Ev::Thinking(&thinking)),
                    BlockDelta::SignatureDelta { signature } => {
                        sink.ev(Ev::Signature(&signature, SigOrigin::Anthropic))
                    }
                    BlockDelta::InputJsonDelta { partial_json } => sink.ev(Ev::Args(&partial_json)),
                    BlockDelta::Other => {}
                }
            }
            Event::ContentBlockStop { index } if self.skipping == Some(index) => {
                self.skipping = None
            }
            Event::ContentBlockStop { .. } => sink.ev(Ev::Stop),
            Event::MessageDelta { delta, usage } => {
                self.saw_delta = true;
                if let Some(reason) = &delta.stop_reason {
                    sink.ev(Ev::Finish(finish::from_anthropic(
                        reason,
                        delta.stop_sequence.as_deref(),
                    )));
                }
                if let Some(u) = &usage {
                    sink.ev(Ev::Usage(usage::from_anthropic(u)));
                }
            }
            Event::MessageStop => {
                sink.ev(Ev::End);
                return Flow::Done;
            }
            Event::Error { error } => {
                let body: ErrorBody = serde_json::from_value(error).unwrap_or_default();
                let e = anthropic_error(body, Class::Server);
                sink.ev(Ev::Error(e.class, &e.message));
                return Flow::Done;
            }
            Event::ContentBlockDelta { .. } | Event::Ping | Event::Unknown => {}
        }
        Flow::More
    }

    fn block_start(&mut self, index: u32, b: StartBlock<'_>, sink: &mut Sink<'_>) {
        match b {
            StartBlock::Text { text } if !text.is_empty() => sink.ev(Ev::Text(&text)),
            StartBlock::Thinking { thinking } if !thinking.is_empty() => {
                sink.ev(Ev::Thinking(&thinking))
            }
            StartBlock::Text { .. } | StartBlock::Thinking { .. } => {}
            StartBlock::RedactedThinking { data } => sink.ev(Ev::Redacted(&data)),
            StartBlock::ToolUse { id, name } => sink.ev(Ev::ToolStart {
                id: &id,
                name: &name,
                sig: None,
            }),
            StartBlock::Other => self.skipping = Some(index),
        }
    }

    /// The end of the upstream stream: clean only after `message_delta`.
    pub fn eof(&mut self, sink: &mut Sink<'_>) -> bool {
        if self.saw_delta {
            sink.ev(Ev::End);
        }
        self.saw_delta
    }
}
