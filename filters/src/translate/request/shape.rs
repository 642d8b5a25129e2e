//! Passes over a read request that every target needs: signatures carried in a
//! placeholder thinking part moved onto the tool call they belong to, tool results
//! given the name of their call, empty text dropped, and consecutive same-role turns
//! merged with tool results first (Anthropic and Gemini require alternation, and
//! Anthropic wants a turn's tool results before its text). Then, for a request bound
//! for an upstream, the checks of what every provider refuses.

use std::collections::HashMap;

use super::super::error::invalid;
use super::super::ir::{Message, Part, Request, SigOrigin};
use super::super::{TranslateError, Wire};

/// Runs every pass.
pub fn normalize(ir: &mut Request, client: Wire) -> Result<(), TranslateError> {
    for m in &mut ir.messages {
        attach_call_sigs(&mut m.parts);
        m.parts
            .retain(|p| !matches!(p, Part::Text { text, .. } if text.is_empty()));
    }
    ir.system
        .retain(|p| !matches!(p, Part::Text { text, .. } if text.is_empty()));
    ir.messages.retain(|m| !m.parts.is_empty());
    resolve_result_names(ir, client)?;
    ir.messages = merge_roles(std::mem::take(&mut ir.messages));
    Ok(())
}

/// Checks a normalized request bound for an upstream (not one only counted: an
/// estimate is better than a refusal) for what every provider refuses.
pub fn check(ir: &Request, client: Wire) -> Result<(), TranslateError> {
    check_turns(ir, client)?;
    check_tool_schemas(ir, client)
}

/// Where the client's dialect holds the conversation.
pub(crate) fn conversation(client: Wire) -> &'static str {
    match client {
        Wire::Chat | Wire::Messages => "messages",
        Wire::Gemini => "contents",
        Wire::Responses => "input",
    }
}

/// What every provider refuses with a 400, refused here in the client's own dialect
/// instead (naming its field) so that it never reaches an upstream of another kind: a
/// conversation with no turn (system instructions alone: Anthropic and Gemini need a
/// message), and tool calls not answered, each once, in the turn right after them (an
/// unanswered call, a result for an older call, a call answered twice).
fn check_turns(ir: &Request, client: Wire) -> Result<(), TranslateError> {
    let at = conversation(client);
    if ir.messages.is_empty() {
        return Err(invalid(
            client,
            at,
            "no message to answer: system instructions alone are not a conversation",
        ));
    }
    let mut pending: Vec<&str> = Vec::new();
    for m in &ir.messages {
        let results = m.parts.iter().filter_map(|p| match p {
            Part::ToolResult { call_id, .. } => Some(call_id.as_str()),
            _ => None,
        });
        for id in results {
            let Some(i) = pending.iter().position(|p| *p == id) else {
                return Err(invalid(
                    client,
                    at,
                    format!("the result for tool call `{id}` is not in the turn right after the call, or comes twice"),
                ));
            };
            pending.swap_remove(i);
        }
        if let Some(id) = pending.first() {
            return Err(invalid(
                client,
                at,
                format!("tool call `{id}` has no result in the turn after it"),
            ));
        }
        pending.extend(m.parts.iter().filter_map(|p| match p {
            Part::ToolCall { id, .. } => Some(id.as_str()),
            _ => None,
        }));
    }
    match pending.first() {
        Some(id) => Err(invalid(
            client,
            at,
            format!("tool call `{id}` has no result: the conversation ends with it"),
        )),
        None => Ok(()),
    }
}

/// A tool's parameters are a JSON Schema object (every provider refuses another value).
fn check_tool_schemas(ir: &Request, client: Wire) -> Result<(), TranslateError> {
    match ir.tools.iter().find(|t| !t.schema.is_object()) {
        Some(t) => Err(invalid(
            client,
            "tools",
            format!("the parameters of tool `{}` are not a JSON object", t.name),
        )),
        None => Ok(()),
    }
}

/// A thinking part with no text whose Gemini signature stands for the tool call after
/// it (how an Anthropic or Responses client carries a Gemini call signature) becomes
/// that call's signature.
fn attach_call_sigs(parts: &mut Vec<Part>) {
    let mut i = 0;
    while i + 1 < parts.len() {
        let carrier = matches!(&parts[i], Part::Thinking { text, sig: Some(s), redacted: None }
            if text.is_empty() && s.origin == SigOrigin::Gemini);
        let call_unsigned = matches!(&parts[i + 1], Part::ToolCall { sig: None, .. });
        if carrier && call_unsigned {
            if let Part::Thinking { sig, .. } = parts.remove(i) {
                if let Part::ToolCall { sig: call_sig, .. } = &mut parts[i] {
                    *call_sig = sig;
                }
            }
        }
        i += 1;
    }
}

/// Every tool result gets its call's name (Gemini needs it): an id with no call in the
/// history is refused.
fn resolve_result_names(ir: &mut Request, client: Wire) -> Result<(), TranslateError> {
    let mut by_id: HashMap<String, String> = HashMap::new();
    for (mi, m) in ir.messages.iter_mut().enumerate() {
        for p in &mut m.parts {
            match p {
                Part::ToolCall { id, name, .. } => {
                    by_id.insert(id.clone(), name.clone());
                }
                Part::ToolResult { call_id, name, .. } if name.is_none() => {
                    let found = by_id.get(call_id.as_str()).cloned();
                    if found.is_none() {
                        return Err(invalid(
                            client,
                            format!("messages[{mi}]"),
                            format!("tool result for `{call_id}` answers no earlier tool call"),
                        ));
                    }
                    *name = found;
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Consecutive turns of one role as one, tool results first in each user turn.
fn merge_roles(messages: Vec<Message>) -> Vec<Message> {
    let mut out: Vec<Message> = Vec::with_capacity(messages.len());
    for m in messages {
        match out.last_mut() {
            Some(last) if last.role == m.role => last.parts.extend(m.parts),
            _ => out.push(m),
        }
    }
    for m in &mut out {
        if m.parts.iter().any(|p| matches!(p, Part::ToolResult { .. })) {
            let (mut results, rest): (Vec<Part>, Vec<Part>) = std::mem::take(&mut m.parts)
                .into_iter()
                .partition(|p| matches!(p, Part::ToolResult { .. }));
            results.extend(rest);
            m.parts = results;
        }
    }
    out
}

/// The text a model reads in `parts` (for token estimates and counting): text,
/// thinking, tool calls and results, separated by newlines.
pub fn text_of_parts(parts: &[Part]) -> String {
    let mut out = String::new();
    push_text(&mut out, parts);
    out
}

fn push_text(out: &mut String, parts: &[Part]) {
    for p in parts {
        let before = out.len();
        match p {
            Part::Text { text, .. } => out.push_str(text),
            Part::Thinking { text, .. } => out.push_str(text),
            Part::ToolCall { name, args, .. } => {
                out.push_str(name);
                out.push(' ');
                out.push_str(args);
            }
            Part::ToolResult { content, .. } => push_text(out, content),
            Part::Image { .. } | Part::File { .. } => {}
        }
        if out.len() > before {
            out.push('\n');
        }
    }
}
