//! Whole upstream answers into an [`ir::Response`](super::super::ir::Response): the
//! first choice or candidate, its parts in order, finish reason and usage; tool names
//! mapped back to the client's.

use crate::providers::quick;
use crate::providers::wire::anthropic::{Block, MessageResponse};
use crate::providers::wire::from_json;
use crate::providers::wire::gemini::GenerateResponse;
use crate::providers::wire::openai::{ChatCompletion, ChatContent, ContentPart};

use super::super::ir::{Finish, Part, Response, Sig, SigOrigin};
use super::super::{finish, names, usage, Wire};
use super::Exchange;

/// Reads `body` in `upstream`'s dialect.
pub fn response(upstream: Wire, body: &[u8], ex: &Exchange) -> Option<Response> {
    match upstream {
        Wire::Chat | Wire::Responses => chat(quick::document_or_typed(body)?, ex),
        Wire::Messages => Some(messages(from_json(body).ok()?, ex)),
        Wire::Gemini => Some(gemini(from_json(body).ok()?, ex)),
    }
}

fn chat(c: ChatCompletion, ex: &Exchange) -> Option<Response> {
    let choice = c.choices.into_iter().find(|ch| ch.index == 0)?;
    let mut m = choice.message;
    let mut parts = Vec::new();
    if let Some(r) = m.take_reasoning() {
        parts.push(Part::unsigned_thinking(r));
    }
    match m.content {
        Some(ChatContent::Text(t)) if !t.is_empty() => parts.push(Part::text(t)),
        // Mistral's reasoning models interleave thinking chunks with the text.
        Some(ChatContent::Parts(ps)) => parts.extend(ps.into_iter().filter_map(|p| match p {
            ContentPart::Text { text } => Some(Part::text(text)),
            ContentPart::Thinking { thinking, .. } => Some(Part::unsigned_thinking(
                ContentPart::thinking_text(&thinking),
            )),
            _ => None,
        })),
        _ => {}
    }
    let refused = m.refusal.filter(|r| !r.is_empty());
    if let Some(r) = &refused {
        parts.push(Part::text(r.clone()));
    }
    for (k, call) in m.tool_calls.into_iter().enumerate() {
        let id = if call.id.is_empty() {
            names::call_id_of_place(k)
        } else {
            call.id
        };
        parts.push(Part::ToolCall {
            id,
            name: ex.client_name(&call.function.name).to_owned(),
            args: call.function.arguments,
            sig: None,
        });
    }
    let calls = parts.iter().any(|p| matches!(p, Part::ToolCall { .. }));
    let finish = match (refused, choice.finish_reason.as_deref()) {
        (Some(_), _) => Some(Finish::Refusal),
        (None, r) => r.map(|r| finish::of_openai_calls(finish::from_openai(r), calls)),
    };
    Some(Response {
        id: c.id,
        model: c.model,
        created: Some(c.created),
        parts,
        finish,
        usage: c.usage.as_ref().map(usage::from_openai).unwrap_or_default(),
    })
}

fn messages(m: MessageResponse, ex: &Exchange) -> Response {
    let parts = m
        .content
        .into_iter()
        .filter_map(|b| match b {
            Block::Text { text, .. } => Some(Part::text(text)),
            Block::Thinking {
                thinking,
                signature,
            } => Some(Part::Thinking {
                text: thinking,
                sig: (!signature.is_empty()).then_some(Sig {
                    origin: SigOrigin::Anthropic,
                    bytes: signature,
                }),
                redacted: None,
            }),
            Block::RedactedThinking { data } => Some(Part::Thinking {
                text: String::new(),
                sig: None,
                redacted: Some(data),
            }),
            Block::ToolUse {
                id, name, input, ..
            } => Some(Part::ToolCall {
                id,
                name: ex.client_name(&name).to_owned(),
                args: input.to_string(),
                sig: None,
            }),
            _ => None,
        })
        .collect();
    Response {
        id: m.id,
        model: m.model,
        created: None,
        parts,
        finish: m
            .stop_reason
            .as_deref()
            .map(|r| finish::from_anthropic(r, m.stop_sequence.as_deref())),
        usage: usage::from_anthropic(&m.usage),
    }
}

fn gemini(g: GenerateResponse, ex: &Exchange) -> Response {
    let id = g.response_id.unwrap_or_default();
    let mut parts = Vec::new();
    let mut calls = 0;
    let candidate = g.candidates.into_iter().find(|c| c.index == 0);
    let reason = candidate.as_ref().and_then(|c| c.finish_reason.clone());
    for p in candidate
        .and_then(|c| c.content)
        .map(|c| c.parts)
        .unwrap_or_default()
    {
        let sig = p.thought_signature.map(|bytes| Sig {
            origin: SigOrigin::Gemini,
            bytes,
        });
        if let Some(fc) = p.function_call {
            let call_id = fc
                .id
                .unwrap_or_else(|| names::mint_call_id("call_", &id, calls));
            calls += 1;
            parts.push(Part::ToolCall {
                id: call_id,
                name: ex.client_name(&fc.name).to_owned(),
                args: fc.args.map_or_else(|| "{}".to_owned(), |a| a.to_string()),
                sig,
            });
        } else if p.thought == Some(true) {
            parts.push(Part::Thinking {
                text: p.text.unwrap_or_default(),
                sig,
                redacted: None,
            });
        } else if let Some(t) = p.text {
            parts.push(Part::text(t));
        }
    }
    let blocked = g.prompt_feedback.and_then(|f| f.block_reason).is_some();
    let finish = match (reason, blocked) {
        (Some(r), _) => Some(finish::from_gemini(&r, calls > 0)),
        (None, true) => Some(Finish::ContentFilter),
        (None, false) => None,
    };
    Response {
        id,
        model: g.model_version.unwrap_or_default(),
        created: None,
        parts,
        finish,
        usage: g
            .usage_metadata
            .as_ref()
            .map(usage::from_gemini)
            .unwrap_or_default(),
    }
}
