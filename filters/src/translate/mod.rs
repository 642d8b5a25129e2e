//! Dialect translation (issue 12, CONTRACT section 7, TRANSLATION_NOTES): a client of
//! one dialect served by an upstream of another. Each dialect is read into the small
//! typed model of [`ir`] and written from it; the request once, whole, after routing
//! ([`request::translate`]); the response through a [`response::ResponseTranslator`]
//! that is fed the upstream's chunks as they come and emits the client's bytes (an
//! incremental state machine per pair when streamed), and errors through
//! [`errors::translate`]. Same-dialect traffic never enters this module ([`plan`]
//! answers `None`).
//!
//! This is a transport step, not a filter: the proxy calls it between the upstream and
//! the client, after the meter has read the upstream's own bytes, so a translation bug
//! can change what a client sees but never what is billed. What is dropped or refused
//! per pair is in `MAPPING.md` beside this file.

pub mod attempt;
pub mod count;
pub mod error;
pub mod errors;
pub mod finish;
pub mod freeform;
pub mod ir;
pub mod names;
pub mod request;
pub mod response;
pub mod schema;
pub mod stream;
pub mod tool_search;
pub mod usage;

use crate::endpoint::Endpoint;
use crate::providers::ProviderKind;

pub use attempt::Translation;
pub use error::TranslateError;
pub use request::{translate as translate_request, ClientRequest, HeaderChanges, Translated};
pub use response::{Head, ResponseTranslator};

/// A wire format, finer than [`crate::Dialect`]: OpenAI's two request shapes apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Wire {
    /// OpenAI Chat Completions.
    Chat,
    /// OpenAI Responses (only ever a client dialect here).
    Responses,
    /// Anthropic Messages.
    Messages,
    /// Gemini generateContent / streamGenerateContent.
    Gemini,
}

impl Wire {
    /// A stable label (logs, metrics, error messages).
    pub fn as_str(self) -> &'static str {
        match self {
            Wire::Chat => "openai",
            Wire::Responses => "openai-responses",
            Wire::Messages => "anthropic",
            Wire::Gemini => "gemini",
        }
    }

    /// The dialect whose envelopes (errors, above all) this wire's clients read.
    pub fn dialect(self) -> crate::Dialect {
        match self {
            Wire::Chat | Wire::Responses => crate::Dialect::OpenAi,
            Wire::Messages => crate::Dialect::Anthropic,
            Wire::Gemini => crate::Dialect::Gemini,
        }
    }

    /// The wire a client endpoint speaks, if it is one that translation serves.
    pub fn of_endpoint(endpoint: &Endpoint) -> Option<Wire> {
        match endpoint {
            Endpoint::ChatCompletions => Some(Wire::Chat),
            Endpoint::Responses => Some(Wire::Responses),
            Endpoint::Messages => Some(Wire::Messages),
            Endpoint::Gemini { .. } => Some(Wire::Gemini),
            _ => None,
        }
    }
}

/// A client wire and the upstream wire it is translated to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pair {
    pub client: Wire,
    pub upstream: Wire,
}

/// `value` as JSON into a buffer of `capacity` bytes to start with: about the size of
/// the body it was translated from, so the buffer is not grown step by step from empty.
pub(crate) fn json_bytes<T: serde::Serialize>(
    value: &T,
    capacity: usize,
) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(capacity);
    serde_json::to_writer(&mut out, value)?;
    Ok(out)
}

/// The translation a request needs: `None` when the upstream speaks the client's wire
/// (the request goes byte for byte) or the endpoint is not one translation serves
/// (`responses_api` is the upstream's CONTRACT section 2 key: whether it serves
/// `/v1/responses` itself).
pub fn plan(client: &Endpoint, upstream: ProviderKind, responses_api: bool) -> Option<Pair> {
    let client = Wire::of_endpoint(client)?;
    let upstream = match upstream {
        ProviderKind::OpenAi if client == Wire::Responses && responses_api => return None,
        ProviderKind::OpenAi => Wire::Chat,
        ProviderKind::Anthropic => Wire::Messages,
        ProviderKind::Gemini => Wire::Gemini,
    };
    (client != upstream).then_some(Pair { client, upstream })
}

/// Per-upstream choices (its config `translation:`) for what has more than one faithful
/// translation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `max_tokens` for an Anthropic upstream when the client gave none (it is required).
    pub default_max_tokens: u32,
    /// Gemini tool schemas as the OpenAPI-subset `parameters` (sanitized) instead of
    /// `parametersJsonSchema` (the default, which takes real JSON Schema).
    pub gemini_openapi_schema: bool,
    /// Thinking to OpenAI Chat clients as the non-standard `reasoning_content`
    /// (otherwise dropped, as OpenAI itself returns none).
    pub reasoning_content: bool,
    /// Send OpenAI-compatible upstreams the legacy `max_tokens` instead of
    /// `max_completion_tokens` (for hosts that only know the old name).
    pub openai_legacy_max_tokens: bool,
    /// Ask an OpenAI-compatible upstream for a stream's usage chunk
    /// (`stream_options.include_usage`; the upstream's `stream_include_usage`). Off for
    /// hosts that refuse the member and report usage unasked (Mistral).
    pub stream_include_usage: bool,
    /// Members of a translated Chat Completions request this upstream refuses
    /// (`translation.omit`): left out, and counted as dropped.
    pub omit: Vec<ChatMember>,
    /// An assistant turn's thinking goes back to an OpenAI-compatible upstream as its
    /// `reasoning_content` (`translation.send_reasoning_content`): hosts that think
    /// between tool calls (Kimi, GLM, DeepSeek) refuse a tool-call turn without it, where
    /// OpenAI and Mistral refuse the member itself.
    pub send_reasoning_content: bool,
    /// Tool-call ids that are not nine letters and digits go to the upstream as a stable
    /// alias of that form (`translation.mistral_tool_call_ids`): Mistral refuses others.
    pub mistral_tool_call_ids: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            default_max_tokens: 4096,
            gemini_openapi_schema: false,
            reasoning_content: false,
            openai_legacy_max_tokens: false,
            stream_include_usage: true,
            omit: Vec::new(),
            send_reasoning_content: false,
            mistral_tool_call_ids: false,
        }
    }
}

/// The optional members of a translated Chat Completions request that a strict
/// OpenAI-compatible host may refuse as unknown (Mistral answers 422 "Extra inputs are
/// not permitted" for `user` and `seed`, which it calls `random_seed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatMember {
    User,
    Seed,
    ParallelToolCalls,
    PresencePenalty,
    FrequencyPenalty,
    Logprobs,
    TopLogprobs,
    N,
    ReasoningEffort,
    ResponseFormat,
}

impl ChatMember {
    /// Every member, by its name in the request (and in `translation.omit`).
    pub const ALL: [(&'static str, ChatMember); 10] = [
        ("user", ChatMember::User),
        ("seed", ChatMember::Seed),
        ("parallel_tool_calls", ChatMember::ParallelToolCalls),
        ("presence_penalty", ChatMember::PresencePenalty),
        ("frequency_penalty", ChatMember::FrequencyPenalty),
        ("logprobs", ChatMember::Logprobs),
        ("top_logprobs", ChatMember::TopLogprobs),
        ("n", ChatMember::N),
        ("reasoning_effort", ChatMember::ReasoningEffort),
        ("response_format", ChatMember::ResponseFormat),
    ];

    /// The member named `name`, if it is one of [`ChatMember::ALL`].
    pub fn named(name: &str) -> Option<ChatMember> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, m)| *m)
    }

    /// Its name in the request.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, m)| *m == self)
            .map_or("", |(n, _)| n)
    }
}

/// What a translation dropped, one entry per dropped occurrence, labelled with the
/// field's name as `MAPPING.md` lists it: for `tollgate_translation_dropped_total{field}`
/// (a bounded set of labels: unknown fields count as `unknown_field`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notes {
    pub dropped: Vec<&'static str>,
}

impl Notes {
    /// Records one dropped occurrence of `field`.
    pub fn drop(&mut self, field: &'static str) {
        self.dropped.push(field);
    }

    /// How many occurrences of `field` were dropped.
    pub fn count(&self, field: &str) -> usize {
        self.dropped.iter().filter(|f| **f == field).count()
    }
}

#[cfg(test)]
mod tests;
