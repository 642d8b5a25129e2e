//! Streamed responses, translated as they flow: per pair, one incremental state
//! machine made of the upstream dialect's decoder (which reads each complete upstream
//! event once and says what happened as [`Ev`]s) and the client dialect's encoder
//! (which keeps the client's block, index and item state and writes its events at
//! once into a reused buffer). Nothing waits for the end of the response: every
//! upstream event is flushed as the client events it becomes.
//!
//! A stream ends clean only on the upstream's own terminal event (or, for dialects
//! without one, after its finish reason); an upstream error event, or an end of
//! stream before that, becomes the client dialect's error event, never a synthetic
//! clean end (TRANSLATION_NOTES 5.3).

mod decode_chat;
mod decode_gemini;
mod decode_messages;
mod encode_chat;
mod encode_gemini;
mod encode_messages;
mod encode_responses;
pub mod frame;
pub mod json;

use super::errors::Class;
use super::ir::{Finish, SigOrigin, Usage};
use super::response::Exchange;
use super::Wire;
use crate::error::GatewayError;
use crate::providers::Dialect;
use frame::{ArrayFramer, Framer, SseFramer};

pub use encode_messages::message_id as encode_messages_id;

/// What happened upstream, in the order it happened, whatever the dialect.
#[derive(Debug, Clone, PartialEq)]
pub enum Ev<'a> {
    /// The response began (the first event); input-side usage if the upstream gives it.
    Start {
        id: &'a str,
        model: &'a str,
        usage: Option<Usage>,
    },
    Text(&'a str),
    Thinking(&'a str),
    /// The signature of the thinking just streamed (it ends that block).
    Signature(&'a str, SigOrigin),
    /// An Anthropic `redacted_thinking` block, whole.
    Redacted(&'a str),
    /// A tool call begins; `sig` is a Gemini thought signature on the call.
    ToolStart {
        id: &'a str,
        name: &'a str,
        sig: Option<&'a str>,
    },
    /// A fragment of the open tool call's arguments.
    Args(&'a str),
    /// The current block ended.
    Stop,
    Finish(Finish),
    /// The running usage totals.
    Usage(Usage),
    /// The upstream ended cleanly.
    End,
    /// The upstream failed mid-stream (or ended early).
    Error(Class, &'a str),
}

/// Whether a decoder wants more events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    More,
    Done,
}

/// Where a decoder sends events: the encoder, with tool names mapped back to the
/// client's.
pub struct Sink<'x> {
    enc: &'x mut Encoder,
    out: &'x mut Vec<u8>,
    names: &'x [(String, String)],
}

impl Sink<'_> {
    /// Passes one event on.
    pub fn ev(&mut self, ev: Ev<'_>) {
        let ev = match ev {
            Ev::ToolStart { id, name, sig } => {
                let name = self
                    .names
                    .iter()
                    .find(|(wire, _)| wire == name)
                    .map_or(name, |(_, client)| client.as_str());
                Ev::ToolStart { id, name, sig }
            }
            // An SDK shows the message as the error: never an empty one.
            Ev::Error(class, message) if message.trim().is_empty() => {
                Ev::Error(class, "the upstream's stream failed without a message")
            }
            other => other,
        };
        self.enc.ev(ev, self.out);
    }
}

enum Decoder {
    Chat(decode_chat::ChatDecoder),
    Messages(decode_messages::MessagesDecoder),
    Gemini(decode_gemini::GeminiDecoder),
}

impl Decoder {
    fn frame(&mut self, event: &[u8], data: &[u8], sink: &mut Sink<'_>) -> Flow {
        match self {
            Decoder::Chat(d) => d.frame(data, sink),
            Decoder::Messages(d) => d.frame(event, data, sink),
            Decoder::Gemini(d) => d.frame(data, sink),
        }
    }

    fn eof(&mut self, sink: &mut Sink<'_>) {
        let clean = match self {
            Decoder::Chat(d) => d.eof(sink),
            Decoder::Messages(d) => d.eof(sink),
            Decoder::Gemini(d) => d.eof(sink),
        };
        if !clean {
            sink.ev(Ev::Error(
                Class::Server,
                "upstream ended the stream before it was complete",
            ));
        }
    }
}

/// The client dialect's writer.
pub enum Encoder {
    Chat(encode_chat::ChatEncoder),
    Messages(encode_messages::MessagesEncoder),
    Gemini(encode_gemini::GeminiEncoder),
    Responses(Box<encode_responses::ResponsesEncoder>),
}

impl Encoder {
    fn ev(&mut self, ev: Ev<'_>, out: &mut Vec<u8>) {
        match self {
            Encoder::Chat(e) => e.ev(ev, out),
            Encoder::Messages(e) => e.ev(ev, out),
            Encoder::Gemini(e) => e.ev(ev, out),
            Encoder::Responses(e) => e.ev(ev, out),
        }
    }
}

impl Encoder {
    /// Ends the client's stream when the upstream connection broke (`err`; no upstream
    /// event says so) as the native path ends a stream of the client's dialect, with
    /// the same error, after closing an open Anthropic content block (the SDK and
    /// Claude Code fail with "Content block not found" otherwise); a Responses client
    /// gets `response.failed`.
    fn broken(&mut self, err: &GatewayError, out: &mut Vec<u8>) {
        match self {
            Encoder::Chat(_) => out.extend_from_slice(&Dialect::OpenAi.sse_error_event(err)),
            Encoder::Messages(e) => {
                e.close(out);
                out.extend_from_slice(&Dialect::Anthropic.sse_error_event(err));
            }
            Encoder::Gemini(e) => e.broken(&Dialect::Gemini.error_body(err), out),
            Encoder::Responses(e) => {
                let class = Class::of_status(err.status());
                e.ev(Ev::Error(class, &err.to_string()), out);
            }
        }
    }
}

/// One streamed response's translation state.
pub struct StreamTranslator {
    framer: Framer,
    decoder: Decoder,
    encoder: Encoder,
    names: Vec<(String, String)>,
    finished: bool,
}

impl StreamTranslator {
    /// The state machine for `ex`'s pair; `upstream_array` when a Gemini upstream
    /// answers with its JSON-array stream instead of SSE.
    pub fn new(ex: &Exchange, upstream_array: bool) -> StreamTranslator {
        let framer = if upstream_array {
            Framer::Array(ArrayFramer::default())
        } else {
            Framer::Sse(SseFramer::default())
        };
        let decoder = match ex.pair.upstream {
            Wire::Messages => Decoder::Messages(decode_messages::MessagesDecoder::default()),
            Wire::Gemini => Decoder::Gemini(decode_gemini::GeminiDecoder::default()),
            Wire::Chat | Wire::Responses => Decoder::Chat(decode_chat::ChatDecoder::default()),
        };
        let encoder = match ex.pair.client {
            Wire::Chat => Encoder::Chat(encode_chat::ChatEncoder::new(ex)),
            Wire::Messages => Encoder::Messages(encode_messages::MessagesEncoder::new(ex)),
            Wire::Gemini => Encoder::Gemini(encode_gemini::GeminiEncoder::new(ex)),
            Wire::Responses => {
                Encoder::Responses(Box::new(encode_responses::ResponsesEncoder::new(ex)))
            }
        };
        StreamTranslator {
            framer,
            decoder,
            encoder,
            names: ex.names.clone(),
            finished: false,
        }
    }

    /// Feeds one upstream chunk (`end`: the upstream stream is over, cleanly or not),
    /// appending the client's bytes to `out`.
    pub fn feed(&mut self, chunk: &[u8], end: bool, out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        self.framer.push(chunk);
        if end {
            self.framer.close();
        }
        let mut sink = Sink {
            enc: &mut self.encoder,
            out,
            names: &self.names,
        };
        while let Some(f) = self.framer.next_frame() {
            if self.decoder.frame(f.event, f.data, &mut sink) == Flow::Done {
                self.finished = true;
                return;
            }
        }
        if end {
            self.decoder.eof(&mut sink);
            self.finished = true;
        }
    }

    /// The upstream connection broke mid-stream ([`Encoder::broken`]); nothing when the
    /// stream already ended. What the framer holds of a cut event is dropped.
    pub fn broken(&mut self, err: &GatewayError, out: &mut Vec<u8>) {
        if !self.finished {
            self.finished = true;
            self.encoder.broken(err, out);
        }
    }
}
