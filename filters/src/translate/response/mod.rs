//! The response side of a translated request: what it needs to know from the request
//! ([`Exchange`]), and the [`ResponseTranslator`] the proxy keeps in its request
//! context and calls from its response phases: once with the upstream's status and
//! content type, then with every body chunk. A stream is translated as it flows; a
//! whole answer or an error body is collected (they are single JSON documents) and
//! translated at its end.

mod read;
mod write;

use super::errors::{self, ClientError};
use super::freeform;
use super::stream::StreamTranslator;
use super::tool_search::{self, NAME as TOOL_SEARCH};
use super::{Pair, Wire};
use crate::error::GatewayError;
use crate::providers::wire::responses::OutputItem;

/// What the response side keeps from the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    pub pair: Pair,
    pub stream: bool,
    /// The client asked for OpenAI's usage chunk (`stream_options.include_usage`).
    pub include_usage: bool,
    /// A Gemini client asked for SSE (`alt=sse`); otherwise its stream is a JSON array.
    pub gemini_sse: bool,
    /// The model the client named.
    pub model: String,
    /// Estimated prompt tokens, for an Anthropic `message_start` before real counts.
    pub input_estimate: u64,
    /// (upstream tool name, client tool name) for names that changed.
    pub names: Vec<(String, String)>,
    /// (client tool name, namespace) for a Responses client's namespaced tools.
    pub namespaces: Vec<(String, String)>,
    /// A Responses client's freeform (`custom`) tools, by client name.
    pub custom_tools: Vec<String>,
    /// A Responses client declared its own `tool_search`.
    pub tool_search: bool,
    /// Request fields a Responses client reads back, as JSON members.
    pub echo: String,
    /// Thinking as `reasoning_content` for OpenAI Chat clients.
    pub reasoning_content: bool,
    /// Unix seconds at the request.
    pub now: u64,
}

impl Exchange {
    /// The client's name of an upstream tool name.
    pub fn client_name<'a>(&'a self, name: &'a str) -> &'a str {
        self.names
            .iter()
            .find(|(wire, _)| wire == name)
            .map_or(name, |(_, client)| client.as_str())
    }

    /// The namespace a Responses client declared its tool `name` in, if any.
    pub fn namespace_of(&self, name: &str) -> Option<String> {
        self.namespaces
            .iter()
            .find(|(tool, _)| tool == name)
            .map(|(_, ns)| ns.clone())
    }

    /// Whether a call of `name` is a Responses client's own tool search.
    pub fn is_tool_search(&self, name: &str) -> bool {
        self.tool_search && name == TOOL_SEARCH
    }

    /// Whether the client declared its tool `name` freeform (`custom`).
    pub fn is_custom(&self, name: &str) -> bool {
        self.custom_tools.iter().any(|t| t == name)
    }

    /// The prefix of the id of a Responses output item for a call of `name`.
    pub fn call_prefix(&self, name: &str) -> &'static str {
        if self.is_tool_search(name) {
            "tsc"
        } else if self.is_custom(name) {
            "ctc"
        } else {
            "fc"
        }
    }

    /// The Responses output item `id` for the call `call_id` of the client's tool `name`
    /// with the upstream's JSON `args`: a search of the client's own, a freeform call
    /// with its raw text, or a function call naming its namespace if it has one.
    pub fn call_item(
        &self,
        id: String,
        call_id: String,
        name: String,
        args: &str,
        status: &'static str,
    ) -> OutputItem {
        if self.is_tool_search(&name) {
            return OutputItem::ToolSearchCall {
                id,
                call_id,
                execution: "client",
                arguments: tool_search::arguments(args),
                status,
            };
        }
        let namespace = self.namespace_of(&name);
        if self.is_custom(&name) {
            OutputItem::CustomToolCall {
                id,
                call_id,
                name,
                namespace,
                input: freeform::unwrap(args),
                status,
            }
        } else {
            OutputItem::FunctionCall {
                id,
                call_id,
                name,
                namespace,
                arguments: args.to_owned(),
                status,
            }
        }
    }
}

/// What the client's response head should say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub content_type: &'static str,
    /// The upstream answered an error: its body becomes the client's envelope.
    pub error: bool,
}

enum Mode {
    /// Before `head`.
    Pending,
    Stream(Box<StreamTranslator>),
    Whole(Vec<u8>),
    Error {
        status: u16,
        body: Vec<u8>,
    },
    Done,
}

/// Translates one response, fed as the proxy receives it.
pub struct ResponseTranslator {
    ex: Exchange,
    mode: Mode,
}

impl std::fmt::Debug for ResponseTranslator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseTranslator")
            .field("ex", &self.ex)
            .finish_non_exhaustive()
    }
}

impl ResponseTranslator {
    /// The response side for `ex`.
    pub fn new(ex: Exchange) -> ResponseTranslator {
        ResponseTranslator {
            ex,
            mode: Mode::Pending,
        }
    }

    /// What the request left for the response.
    pub fn exchange(&self) -> &Exchange {
        &self.ex
    }

    /// The upstream's status and content type arrived: what the client's head says.
    /// (For an error, the status here is the one its status alone decides; with the
    /// body in hand, [`ResponseTranslator::error`] can refine it.)
    pub fn head(&mut self, status: u16, content_type: Option<&str>) -> Head {
        if status >= 400 {
            self.mode = Mode::Error {
                status,
                body: Vec::new(),
            };
            let class = errors::Class::of_status(status);
            return Head {
                status: errors::client_status(self.ex.pair.client, status, class),
                content_type: "application/json",
                error: true,
            };
        }
        if self.ex.stream {
            let array = content_type.is_some_and(|c| c.starts_with("application/json"));
            self.mode = Mode::Stream(Box::new(StreamTranslator::new(&self.ex, array)));
            let content_type = if self.ex.pair.client == Wire::Gemini && !self.ex.gemini_sse {
                "application/json"
            } else {
                "text/event-stream"
            };
            return Head {
                status,
                content_type,
                error: false,
            };
        }
        self.mode = Mode::Whole(Vec::new());
        Head {
            status,
            content_type: "application/json",
            error: false,
        }
    }

    /// One upstream body chunk (`end`: the upstream body is over, or broke): appends
    /// the client's bytes to `out`.
    pub fn body(&mut self, chunk: &[u8], end: bool, out: &mut Vec<u8>) {
        if matches!(self.mode, Mode::Pending) {
            self.head(200, None);
        }
        match &mut self.mode {
            Mode::Stream(s) => s.feed(chunk, end, out),
            Mode::Whole(buf) | Mode::Error { body: buf, .. } => buf.extend_from_slice(chunk),
            Mode::Pending | Mode::Done => {}
        }
        if !end {
            return;
        }
        match std::mem::replace(&mut self.mode, Mode::Done) {
            Mode::Whole(buf) => out.extend_from_slice(&self.whole(&buf)),
            Mode::Error { status, body } => {
                out.extend_from_slice(&self.error(status, None, &body).body)
            }
            _ => {}
        }
    }

    /// The upstream connection broke after the response started: a stream ends in the
    /// client's dialect ([`StreamTranslator::broken`], nothing when it already ended)
    /// and true is returned; a whole answer (nothing of it sent yet) gets nothing
    /// (false).
    pub fn broken(&mut self, err: &GatewayError, out: &mut Vec<u8>) -> bool {
        match &mut self.mode {
            Mode::Stream(s) => {
                s.broken(err, out);
                true
            }
            Mode::Done => self.ex.stream,
            _ => false,
        }
    }

    /// A whole upstream answer in the client's dialect (an unreadable one becomes the
    /// client's error envelope).
    pub fn whole(&self, body: &[u8]) -> Vec<u8> {
        match read::response(self.ex.pair.upstream, body, &self.ex) {
            // The client's answer is about the size of the upstream's.
            Some(r) => write::response(&r, &self.ex, body.len() + 256),
            None => {
                let e = errors::UpstreamError {
                    class: errors::Class::Server,
                    message: "the upstream's answer could not be read".into(),
                    retry_delay: None,
                };
                errors::envelope(self.ex.pair.client, 502, &e)
            }
        }
    }

    /// A whole upstream error in the client's dialect, with its status and
    /// `retry-after` (the upstream's header, or Gemini's `RetryInfo`).
    pub fn error(&self, status: u16, retry_after: Option<&str>, body: &[u8]) -> ClientError {
        errors::translate(self.ex.pair, status, retry_after, body)
    }
}
