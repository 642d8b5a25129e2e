//! Request translation: the client's whole body, read once after routing into the
//! [`ir`](super::ir) and written in the upstream's dialect, with the upstream path
//! (Gemini's names the model and the method) and the header changes the proxy applies.
//! It also builds the [`ResponseTranslator`] that carries what the response needs from
//! the request (stream or not, usage asked for, tool names to map back, the echo a
//! Responses client reads).

mod allowed_tools;
mod read_chat;
mod read_gemini;
mod read_messages;
mod read_responses;
mod shape;
mod write_chat;
mod write_gemini;
mod write_messages;

use super::error::invalid;
use super::ir::{Part, Request};
use super::response::{Exchange, ResponseTranslator};
use super::{json_bytes, names, Notes, Options, Pair, TranslateError, Wire};

pub(crate) use shape::text_of_parts;

/// The client's request as the proxy has it after routing.
#[derive(Debug, Clone, Copy)]
pub struct ClientRequest<'a> {
    /// The whole JSON body.
    pub body: &'a [u8],
    /// The query string (Gemini clients ask for SSE with `alt=sse`).
    pub query: Option<&'a str>,
    /// For a Gemini client: whether it called `streamGenerateContent`.
    pub gemini_stream: bool,
    /// The model the route serves (after aliases): what the upstream is asked for.
    pub served_model: &'a str,
    /// Unix seconds now, for `created` fields the upstream does not give.
    pub now: u64,
}

/// Header edits for the upstream request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderChanges {
    /// Remove these (the body changed length; other providers' API headers must not
    /// reach this upstream: `anthropic-beta` on OpenAI is a 400).
    pub remove: Vec<&'static str>,
    /// Set (replace) these.
    pub set: Vec<(&'static str, &'static str)>,
}

/// A translated request.
#[derive(Debug)]
pub struct Translated {
    /// The upstream body (JSON).
    pub body: Vec<u8>,
    /// The upstream path after the upstream's base path, with its query if any.
    pub path: String,
    pub headers: HeaderChanges,
    /// What was dropped (for the `tollgate_translation_dropped_total` metric).
    pub notes: Notes,
    /// The response side, to keep in the request context.
    pub response: ResponseTranslator,
}

/// The Anthropic API version Tollgate speaks to an Anthropic upstream.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Translates a request for `pair`.
pub fn translate(
    pair: Pair,
    req: ClientRequest<'_>,
    opts: &Options,
) -> Result<Translated, TranslateError> {
    let mut notes = Notes::default();
    let (mut ir, echo) = read(pair.client, &req, &mut notes)?;
    shape::normalize(&mut ir, pair.client)?;
    shape::check(&ir, pair.client)?;
    if let Some(n) = ir.n.filter(|&n| n > 1) {
        let field = if pair.client == Wire::Gemini {
            "generationConfig.candidateCount"
        } else {
            "n"
        };
        return Err(TranslateError::unsupported(
            field,
            format!("{n} choices are not translated: ask for one"),
        ));
    }
    let client_model = std::mem::replace(&mut ir.model, req.served_model.to_owned());
    let names = tool_names(&ir, pair.upstream);
    // The translated body is about the size of the client's.
    let capacity = req.body.len() + 256;
    // A conversation left with no message once the turns the upstream cannot take are
    // left out (thinking minted elsewhere, alone): Anthropic and Gemini refuse it.
    let nothing_left = || {
        invalid(
            pair.client,
            shape::conversation(pair.client),
            "no message is left to send: the conversation holds only thinking this provider cannot take",
        )
    };
    let body = match pair.upstream {
        Wire::Chat => json_bytes(&write_chat::write(&ir, opts, &mut notes)?, capacity),
        Wire::Messages => {
            let m = write_messages::write(&ir, opts, &mut notes)?;
            if m.messages.is_empty() {
                return Err(nothing_left());
            }
            json_bytes(&m, capacity)
        }
        Wire::Gemini => {
            let g = write_gemini::write(&ir, opts, &mut notes)?;
            if g.contents.is_empty() {
                return Err(nothing_left());
            }
            json_bytes(&g, capacity)
        }
        Wire::Responses => {
            return Err(TranslateError::unsupported(
                "upstream",
                "the Responses API is only a client dialect",
            ))
        }
    }
    .map_err(|e| TranslateError::unsupported("body", e.to_string()))?;
    let exchange = Exchange {
        pair,
        stream: ir.stream,
        include_usage: ir.include_usage,
        gemini_sse: pair.client != Wire::Gemini || query_has_alt_sse(req.query),
        model: client_model,
        input_estimate: estimate_tokens(&ir),
        names,
        namespaces: std::mem::take(&mut ir.namespaces),
        custom_tools: std::mem::take(&mut ir.custom_tools),
        tool_search: ir.tool_search,
        echo: echo.unwrap_or_default(),
        reasoning_content: opts.reasoning_content,
        now: req.now,
    };
    Ok(Translated {
        body,
        path: upstream_path(pair.upstream, req.served_model, ir.stream),
        headers: header_changes(pair.upstream),
        notes,
        response: ResponseTranslator::new(exchange),
    })
}

fn read(
    client: Wire,
    req: &ClientRequest<'_>,
    notes: &mut Notes,
) -> Result<(Request, Option<String>), TranslateError> {
    Ok(match client {
        Wire::Chat => (read_chat::read(req.body, notes)?, None),
        Wire::Messages => (read_messages::read(req.body, notes)?, None),
        Wire::Gemini => {
            let mut ir = read_gemini::read(req.body, notes)?;
            ir.stream = req.gemini_stream;
            (ir, None)
        }
        Wire::Responses => {
            let (ir, echo) = read_responses::read(req.body, notes)?;
            (ir, Some(echo))
        }
    })
}

/// Reads an Anthropic `count_tokens` body (the request without `max_tokens`).
pub(crate) fn read_for_count(body: &[u8], notes: &mut Notes) -> Result<Request, TranslateError> {
    let mut ir = read_messages::read(body, notes)?;
    shape::normalize(&mut ir, Wire::Messages)?;
    Ok(ir)
}

/// Whether a Gemini client's query asks for SSE (`alt=sse`); otherwise a stream is a
/// JSON array.
fn query_has_alt_sse(query: Option<&str>) -> bool {
    query.is_some_and(|q| q.split('&').any(|kv| kv == "alt=sse"))
}

/// The upstream path: Gemini's names the served model and, for a stream, asks for SSE.
pub fn upstream_path(upstream: Wire, served_model: &str, stream: bool) -> String {
    match upstream {
        Wire::Chat => "/v1/chat/completions".to_owned(),
        Wire::Responses => "/v1/responses".to_owned(),
        Wire::Messages => "/v1/messages".to_owned(),
        Wire::Gemini if stream => {
            format!("/v1beta/models/{served_model}:streamGenerateContent?alt=sse")
        }
        Wire::Gemini => format!("/v1beta/models/{served_model}:generateContent"),
    }
}

const OPENAI_HEADERS: [&str; 3] = ["openai-organization", "openai-project", "openai-beta"];
const ANTHROPIC_HEADERS: [&str; 2] = ["anthropic-version", "anthropic-beta"];
const GEMINI_HEADERS: [&str; 1] = ["x-goog-api-client"];

fn header_changes(upstream: Wire) -> HeaderChanges {
    let mut remove = vec!["content-length"];
    if upstream != Wire::Chat {
        remove.extend(OPENAI_HEADERS);
    }
    if upstream != Wire::Messages {
        remove.extend(ANTHROPIC_HEADERS);
    }
    if upstream != Wire::Gemini {
        remove.extend(GEMINI_HEADERS);
    }
    let mut set = vec![("content-type", "application/json")];
    if upstream == Wire::Messages {
        remove.push("anthropic-beta");
        set.push(("anthropic-version", ANTHROPIC_VERSION));
    }
    HeaderChanges { remove, set }
}

/// Tool names that change on the way to `upstream`, as (upstream name, client name), so
/// the response can name the client's tools again.
fn tool_names(ir: &Request, upstream: Wire) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let calls = ir
        .messages
        .iter()
        .flat_map(|m| &m.parts)
        .filter_map(|p| match p {
            Part::ToolCall { name, .. } => Some(name.as_str()),
            _ => None,
        });
    for name in ir.tools.iter().map(|t| t.name.as_str()).chain(calls) {
        if let std::borrow::Cow::Owned(wire) = names::tool_name(upstream, name) {
            if !out.iter().any(|(w, _)| *w == wire) {
                out.push((wire, name.to_owned()));
            }
        }
    }
    out
}

/// About the length of `v` as JSON text (its strings and numbers), without writing it.
fn json_text_len(v: &serde_json::Value) -> usize {
    use serde_json::Value;
    match v {
        Value::String(s) => s.len() + 2,
        Value::Array(a) => a.iter().map(json_text_len).sum::<usize>() + a.len() + 1,
        Value::Object(m) => {
            m.iter()
                .map(|(k, v)| k.len() + 4 + json_text_len(v))
                .sum::<usize>()
                + 1
        }
        Value::Number(_) | Value::Bool(_) | Value::Null => 4,
    }
}

/// A rough count of the prompt's tokens (4 bytes a token) for the `message_start` an
/// Anthropic client reads before an OpenAI upstream reports the real count.
fn estimate_tokens(ir: &Request) -> u64 {
    let mut bytes = text_of_parts(&ir.system).len();
    for m in &ir.messages {
        bytes += text_of_parts(&m.parts).len();
    }
    for t in &ir.tools {
        bytes += t.name.len() + t.description.as_deref().map_or(0, str::len);
        bytes += json_text_len(&t.schema);
    }
    (bytes as u64).div_ceil(4).max(1)
}
