//! Decodes a Gemini stream (each event a whole `GenerateContentResponse` holding the
//! new parts). A function call arrives whole: it becomes a tool call opened, filled and
//! closed at once, with a minted id when Gemini gave none. `usageMetadata` is a running
//! total. Gemini has no terminal event: the stream is clean if a finish reason came.

use crate::providers::wire::from_json;
use crate::providers::wire::gemini::{ErrorBody, StreamChunk, StreamPart};

use super::super::errors::{gemini_error, Class};
use super::super::ir::{Finish, SigOrigin};
use super::super::{finish, names, usage};
use super::{Ev, Flow, Sink};

/// State of one Gemini stream.
#[derive(Debug, Default)]
pub struct GeminiDecoder {
    started: bool,
    calls: u32,
    saw_call: bool,
    finished: bool,
    response_id: String,
}

impl GeminiDecoder {
    /// One event's payload.
    pub fn frame(&mut self, data: &[u8], sink: &mut Sink<'_>) -> Flow {
        let Ok(chunk) = from_json::<StreamChunk<'_>>(data) else {
            return Flow::More;
        };
        if let Some(e) = chunk.error {
            let body: ErrorBody = serde_json::from_value(e).unwrap_or_default();
            let e = gemini_error(body, Class::Server);
            sink.ev(Ev::Error(e.class, &e.message));
            return Flow::Done;
        }
        let usage = chunk.usage_metadata.as_ref().map(usage::from_gemini);
        if !self.started {
            self.started = true;
            self.response_id = chunk.response_id.as_deref().unwrap_or_default().to_owned();
            let model = chunk.model_version.as_deref().unwrap_or("");
            sink.ev(Ev::Start {
                id: &self.response_id,
                model,
                usage,
            });
        }
        let candidate = chunk.candidates.into_iter().find(|c| c.index == 0);
        let mut reason = None;
        if let Some(c) = candidate {
            for part in c.content.map(|c| c.parts).unwrap_or_default() {
                self.part(part, sink);
            }
            reason = c.finish_reason;
        }
        if let Some(u) = usage {
            sink.ev(Ev::Usage(u));
        }
        if let Some(r) = reason {
            self.finished = true;
            sink.ev(Ev::Finish(finish::from_gemini(&r, self.saw_call)));
        } else if chunk.prompt_feedback.and_then(|f| f.block_reason).is_some() {
            self.finished = true;
            sink.ev(Ev::Finish(Finish::ContentFilter));
        }
        Flow::More
    }

    fn part(&mut self, p: StreamPart<'_>, sink: &mut Sink<'_>) {
        if let Some(fc) = p.function_call {
            let id = fc
                .id
                .unwrap_or_else(|| names::mint_call_id("call_", &self.response_id, self.calls));
            self.calls += 1;
            self.saw_call = true;
            let args = fc.args.map_or_else(|| "{}".to_owned(), |a| a.to_string());
            sink.ev(Ev::ToolStart {
                id: &id,
                name: &fc.name,
                sig: p.thought_signature.as_deref(),
            });
            sink.ev(Ev::Args(&args));
            sink.ev(Ev::Stop);
            return;
        }
        let text = p.text.as_deref().unwrap_or("");
        if p.thought == Some(true) {
            if !text.is_empty() {
                sink.ev(Ev::Thinking(text));
            }
            if let Some(sig) = &p.thought_signature {
                sink.ev(Ev::Signature(sig, SigOrigin::Gemini));
            }
        } else if !text.is_empty() {
            sink.ev(Ev::Text(text));
        }
    }

    /// The end of the upstream stream: clean only after a finish reason.
    pub fn eof(&mut self, sink: &mut Sink<'_>) -> bool {
        if self.finished {
            sink.ev(Ev::End);
        }
        self.finished
    }
}
