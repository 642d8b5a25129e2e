//! An [`ir::Response`](super::super::ir::Response) as the client's whole answer: an
//! OpenAI `chat.completion`, an Anthropic `message`, a Gemini
//! `GenerateContentResponse` or a Responses API `response`. Signatures minted by the
//! upstream ride where the client echoes them back (TRANSLATION_NOTES 4.6).

use serde_json::{json, Value};

use crate::providers::wire;
use crate::providers::wire::anthropic::{Block, MessageResponse};
use crate::providers::wire::gemini::{
    Candidate, Content, FunctionCall, GenerateResponse, Part as GemPart,
};
use crate::providers::wire::openai::{
    ChatCompletion, ChatContent, ChatMessage, Choice, FunctionCall as OaiCall, ToolCall,
};
use crate::providers::wire::responses::{OutputItem, OutputText, SummaryText};

use super::super::ir::{Finish, Part, Response, Sig, SigOrigin};
use super::super::stream::encode_messages_id;
use super::super::{finish, json_bytes, names, usage, Wire};
use super::Exchange;

/// Writes `r` for `ex`'s client (into a buffer of `capacity` bytes to start with).
pub fn response(r: &Response, ex: &Exchange, capacity: usize) -> Vec<u8> {
    let model = if r.model.is_empty() {
        ex.model.clone()
    } else {
        r.model.clone()
    };
    let v = match ex.pair.client {
        Wire::Chat => json_bytes(&chat(r, ex, model), capacity),
        Wire::Messages => {
            let m = messages(r, model);
            let mut out = Vec::with_capacity(capacity);
            match wire::write::message(&m, &mut out) {
                Some(()) => Ok(out),
                None => json_bytes(&m, capacity),
            }
        }
        Wire::Gemini => json_bytes(&gemini(r, model), capacity),
        Wire::Responses => json_bytes(&responses(r, ex, model), capacity),
    };
    v.unwrap_or_default()
}

fn chat(r: &Response, ex: &Exchange, model: String) -> ChatCompletion {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut tool_calls = Vec::new();
    for p in &r.parts {
        match p {
            Part::Text { text: t, .. } => text.push_str(t),
            Part::Thinking { text: t, .. } => reasoning.push_str(t),
            Part::ToolCall {
                id,
                name,
                args,
                sig,
            } => tool_calls.push(ToolCall {
                id: match sig {
                    Some(s) if s.origin == SigOrigin::Gemini => names::id_with_sig(id, s),
                    _ => id.clone(),
                },
                kind: "function".into(),
                function: OaiCall {
                    name: name.clone(),
                    arguments: args.clone(),
                },
            }),
            _ => {}
        }
    }
    let content = (!text.is_empty() || tool_calls.is_empty()).then_some(ChatContent::Text(text));
    let message = ChatMessage {
        role: "assistant".into(),
        content,
        tool_calls,
        reasoning_content: (ex.reasoning_content && !reasoning.is_empty()).then_some(reasoning),
        ..ChatMessage::default()
    };
    let id = if r.id.starts_with("chatcmpl") {
        r.id.clone()
    } else {
        format!("chatcmpl-{}", r.id)
    };
    ChatCompletion {
        id,
        object: "chat.completion".into(),
        created: r.created.unwrap_or(ex.now),
        model,
        choices: vec![Choice {
            index: 0,
            message,
            finish_reason: Some(
                finish::to_openai(r.finish.as_ref().unwrap_or(&Finish::Stop)).into(),
            ),
        }],
        usage: Some(usage::to_openai(&r.usage)),
    }
}

fn thinking_block(text: &str, sig: Option<&Sig>, redacted: Option<&String>) -> Block {
    match redacted {
        Some(data) => Block::RedactedThinking { data: data.clone() },
        None => Block::Thinking {
            thinking: text.to_owned(),
            signature: sig.map(names::carry).unwrap_or_default(),
        },
    }
}

fn messages(r: &Response, model: String) -> MessageResponse {
    let mut content = Vec::with_capacity(r.parts.len());
    for p in &r.parts {
        match p {
            Part::Text { text, .. } => content.push(Block::Text {
                text: text.clone(),
                cache_control: None,
            }),
            Part::Thinking {
                text,
                sig,
                redacted,
            } => content.push(thinking_block(text, sig.as_ref(), redacted.as_ref())),
            Part::ToolCall {
                id,
                name,
                args,
                sig,
            } => {
                if let Some(s) = sig {
                    content.push(thinking_block("", Some(s), None));
                }
                content.push(Block::ToolUse {
                    id: names::ant_tool_id(id).into_owned(),
                    name: name.clone(),
                    input: args_or_empty(args, name),
                    cache_control: None,
                });
            }
            _ => {}
        }
    }
    let (reason, sequence) = finish::to_anthropic(r.finish.as_ref().unwrap_or(&Finish::Stop));
    MessageResponse {
        id: encode_messages_id(&r.id),
        kind: "message".into(),
        role: "assistant".into(),
        model,
        content,
        stop_reason: Some(reason.into()),
        stop_sequence: sequence.map(str::to_owned),
        usage: usage::to_anthropic(&r.usage),
    }
}

/// Arguments as an object for clients that take objects: invalid JSON from an
/// OpenAI-compatible upstream becomes `{}` (and a warning with the tool's name).
fn args_or_empty(args: &str, name: &str) -> Value {
    match serde_json::from_str::<Value>(args) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            if !args.trim().is_empty() {
                log::warn!("tool call {name} had invalid JSON arguments; sent as {{}}");
            }
            json!({})
        }
    }
}

fn gemini(r: &Response, model: String) -> GenerateResponse {
    let mut parts = Vec::with_capacity(r.parts.len());
    for p in &r.parts {
        match p {
            Part::Text { text, .. } => parts.push(GemPart {
                text: Some(text.clone()),
                ..GemPart::default()
            }),
            Part::Thinking {
                text,
                sig,
                redacted,
            } => parts.push(GemPart {
                text: Some(text.clone()),
                thought: Some(true),
                thought_signature: match redacted {
                    Some(d) => Some(names::carry_redacted(d)),
                    None => sig.as_ref().map(names::carry),
                },
                ..GemPart::default()
            }),
            Part::ToolCall {
                id,
                name,
                args,
                sig,
            } => parts.push(GemPart {
                function_call: Some(FunctionCall {
                    id: Some(id.clone()),
                    name: name.clone(),
                    args: Some(args_or_empty(args, name)),
                }),
                thought_signature: sig.as_ref().map(names::carry),
                ..GemPart::default()
            }),
            _ => {}
        }
    }
    GenerateResponse {
        candidates: vec![Candidate {
            content: Some(Content {
                role: Some("model".into()),
                parts,
            }),
            finish_reason: Some(
                finish::to_gemini(r.finish.as_ref().unwrap_or(&Finish::Stop)).into(),
            ),
            index: 0,
        }],
        prompt_feedback: None,
        usage_metadata: Some(usage::to_gemini(&r.usage)),
        model_version: Some(model),
        response_id: (!r.id.is_empty()).then(|| r.id.clone()),
        error: None,
    }
}

fn responses(r: &Response, ex: &Exchange, model: String) -> Value {
    let mut base =
        r.id.trim_start_matches("resp_")
            .replace(|c: char| !c.is_ascii_alphanumeric(), "");
    if base.is_empty() {
        base = format!("tg{}", ex.now);
    }
    let items = output_items(&r.parts, &base, ex);
    let (status, reason) = finish::to_responses(r.finish.as_ref());
    let mut v = json!({
        "id": format!("resp_{base}"),
        "object": "response",
        "created_at": r.created.unwrap_or(ex.now),
        "status": status,
        "model": model,
        "output": items,
        "usage": usage::to_responses(&r.usage),
        "incomplete_details": reason.map(|r| json!({"reason": r})),
        "error": null,
    });
    if let (Some(obj), Ok(Value::Object(echo))) = (
        v.as_object_mut(),
        serde_json::from_str::<Value>(&format!("{{{}}}", ex.echo)),
    ) {
        obj.extend(echo);
    }
    v
}

/// The parts as Responses output items: consecutive text in one message item, a
/// call's Gemini signature in a reasoning item before it, a namespaced tool's call
/// naming its namespace, a freeform tool's call with its raw text, a call of the
/// client's tool search as a search.
fn output_items(parts: &[Part], base: &str, ex: &Exchange) -> Vec<OutputItem> {
    let mut items: Vec<OutputItem> = Vec::new();
    let item_id = |prefix: &str, n: usize| format!("{prefix}_{base}_{n}");
    for p in parts {
        let n = items.len();
        match p {
            Part::Text { text, .. } => match items.last_mut() {
                Some(OutputItem::Message { content, .. }) => content[0].text.push_str(text),
                _ => items.push(OutputItem::Message {
                    id: item_id("msg", n),
                    status: "completed",
                    role: "assistant",
                    content: vec![OutputText::new(text.clone())],
                }),
            },
            Part::Thinking {
                text,
                sig,
                redacted,
            } => items.push(OutputItem::Reasoning {
                id: item_id("rs", n),
                summary: if text.is_empty() {
                    vec![]
                } else {
                    vec![SummaryText {
                        kind: "summary_text".into(),
                        text: text.clone(),
                    }]
                },
                encrypted_content: redacted
                    .as_deref()
                    .map(names::carry_redacted)
                    .or_else(|| sig.as_ref().map(names::carry)),
            }),
            Part::ToolCall {
                id,
                name,
                args,
                sig,
            } => {
                if let Some(s) = sig {
                    items.push(OutputItem::Reasoning {
                        id: item_id("rs", n),
                        summary: vec![],
                        encrypted_content: Some(names::carry(s)),
                    });
                }
                let item = item_id(ex.call_prefix(name), items.len());
                items.push(ex.call_item(item, id.clone(), name.clone(), args, "completed"));
            }
            _ => {}
        }
    }
    items
}
