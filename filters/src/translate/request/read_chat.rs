//! Reads an OpenAI Chat Completions request into the [`ir`](super::super::ir):
//! system and developer messages hoisted, `tool` messages as tool results of a user
//! turn, tool-call ids stripped of a carried signature, fields without counterpart
//! recorded for the mapping table.

use serde_json::Value;

use crate::providers::wire::openai::{
    ChatContent, ChatMessage, ChatRequest, ContentPart, ResponseFormat, CHAT_REQUEST_FIELDS,
};
use crate::providers::wire::unknown_members;

use super::super::error::{invalid, parse};
use super::super::ir::{
    Effort, Media, Message, OutputFormat, Part, Reasoning, ReasoningLevel, Request, Role, Sampling,
    Tool, ToolChoice,
};
use super::super::{names, Notes, TranslateError, Wire};
use super::allowed_tools;

const W: Wire = Wire::Chat;

/// Fields dropped whatever the target, as `MAPPING.md` lists them.
const DROPPED: &[&str] = &[
    "service_tier",
    "store",
    "prediction",
    "web_search_options",
    "modalities",
    "audio",
    "logit_bias",
    "metadata",
    "prompt_cache_key",
    "prompt_cache_retention",
    "safety_identifier",
    "verbosity",
];

/// Reads `body`.
pub fn read(body: &[u8], notes: &mut Notes) -> Result<Request, TranslateError> {
    let mut req: ChatRequest = parse(body, W)?;
    req.extra = unknown_members(body, CHAT_REQUEST_FIELDS);
    extra_fields(&req, notes)?;
    count_unsent(&req.messages, notes);
    let (choice, allowed) = allowed_tools::choice(req.tool_choice.as_ref(), tool_choice)?;
    let mut ir = Request {
        model: req.model,
        tools: tools(req.tools)?,
        tool_choice: choice,
        parallel_tools: req.parallel_tool_calls,
        sampling: Sampling {
            temperature: req.temperature,
            top_p: req.top_p,
            top_k: None,
            seed: req.seed,
            presence_penalty: req.presence_penalty,
            frequency_penalty: req.frequency_penalty,
            logprobs: req.logprobs,
            top_logprobs: req.top_logprobs,
        },
        max_out: req.max_completion_tokens.or(req.max_tokens),
        stop: req.stop.map(|s| s.into_vec()).unwrap_or_default(),
        n: req.n,
        output: output(req.response_format),
        reasoning: req.reasoning_effort.as_deref().map(reasoning).transpose()?,
        stream: req.stream.unwrap_or(false),
        include_usage: req.stream_options.is_some_and(|o| o.include_usage),
        user: req.user,
        ..Request::default()
    };
    if let Some(names) = allowed {
        allowed_tools::keep(&mut ir, &names)?;
    }
    for (i, m) in req.messages.into_iter().enumerate() {
        message(&mut ir, m, i)?;
    }
    Ok(ir)
}

fn extra_fields(req: &ChatRequest, notes: &mut Notes) -> Result<(), TranslateError> {
    for key in req.extra.keys() {
        match key.as_str() {
            "functions" | "function_call" => {
                return Err(TranslateError::unsupported(
                    key.as_str(),
                    "legacy function calling is not translated: use `tools`",
                ))
            }
            k => notes.drop(
                DROPPED
                    .iter()
                    .find(|d| **d == k)
                    .copied()
                    .unwrap_or("unknown_field"),
            ),
        }
    }
    Ok(())
}

/// Message fields with no counterpart elsewhere: a participant's `name`, an image's
/// `detail`, a Mistral `reference` chunk.
fn count_unsent(messages: &[ChatMessage], notes: &mut Notes) {
    for m in messages {
        if m.name.is_some() {
            notes.drop("name");
        }
        if let Some(ChatContent::Parts(ps)) = &m.content {
            for p in ps {
                match p {
                    ContentPart::ImageUrl { image_url } if image_url.detail.is_some() => {
                        notes.drop("image_url.detail");
                    }
                    ContentPart::Reference { .. } => notes.drop("reference"),
                    _ => {}
                }
            }
        }
    }
}

fn message(ir: &mut Request, m: ChatMessage, i: usize) -> Result<(), TranslateError> {
    match m.role.as_str() {
        "system" | "developer" => {
            ir.system.extend(content(m.content, i)?);
            Ok(())
        }
        "user" => {
            let parts = content(m.content, i)?;
            ir.messages.push(Message {
                role: Role::User,
                parts,
            });
            Ok(())
        }
        "assistant" => {
            let parts = assistant(m, i)?;
            ir.messages.push(Message {
                role: Role::Assistant,
                parts,
            });
            Ok(())
        }
        "tool" => {
            let call_id = m
                .tool_call_id
                .ok_or_else(|| invalid(W, format!("messages[{i}].tool_call_id"), "missing"))?;
            let (bare, _) = names::split_id_sig(&call_id);
            let result = Part::ToolResult {
                call_id: bare.to_owned(),
                name: None,
                content: content(m.content, i)?,
                is_error: false,
                cache: None,
            };
            ir.messages.push(Message {
                role: Role::User,
                parts: vec![result],
            });
            Ok(())
        }
        other => Err(invalid(
            W,
            format!("messages[{i}].role"),
            format!("role `{other}` is not translated"),
        )),
    }
}

fn assistant(mut m: ChatMessage, i: usize) -> Result<Vec<Part>, TranslateError> {
    let mut parts = Vec::new();
    if let Some(r) = m.take_reasoning() {
        parts.push(Part::unsigned_thinking(r));
    }
    parts.extend(content(m.content, i)?);
    if let Some(r) = m.refusal.filter(|r| !r.is_empty()) {
        parts.push(Part::text(r));
    }
    for (j, call) in m.tool_calls.into_iter().enumerate() {
        if call.id.is_empty() {
            return Err(invalid(
                W,
                format!("messages[{i}].tool_calls[{j}].id"),
                "missing",
            ));
        }
        let (id, sig) = names::split_id_sig(&call.id);
        parts.push(Part::ToolCall {
            id: id.to_owned(),
            name: call.function.name,
            args: call.function.arguments,
            sig,
        });
    }
    Ok(parts)
}

fn content(c: Option<ChatContent>, i: usize) -> Result<Vec<Part>, TranslateError> {
    match c {
        None => Ok(Vec::new()),
        Some(ChatContent::Text(t)) => Ok(vec![Part::text(t)]),
        Some(ChatContent::Parts(ps)) => ps
            .into_iter()
            .enumerate()
            .filter_map(|(j, p)| part(p, i, j).transpose())
            .collect(),
    }
}

/// A content part, `None` for one dropped (a Mistral reference, see [`count_unsent`]).
fn part(p: ContentPart, i: usize, j: usize) -> Result<Option<Part>, TranslateError> {
    Ok(Some(match p {
        ContentPart::Text { text } => Part::text(text),
        ContentPart::Refusal { refusal } => Part::text(refusal),
        ContentPart::ImageUrl { image_url } => Part::Image {
            media: media_from_url(&image_url.url),
            cache: None,
        },
        ContentPart::InputAudio { input_audio } => Part::File {
            media: Media::Inline {
                mime: format!("audio/{}", input_audio.format),
                data: input_audio.data,
            },
            cache: None,
        },
        ContentPart::File { file } => {
            let media = match (file.file_data, file.file_id) {
                (Some(d), _) => media_from_url(&d),
                (None, Some(id)) => Media::FileId(id),
                (None, None) => {
                    return Err(invalid(
                        W,
                        format!("messages[{i}].content[{j}].file"),
                        "no file_data or file_id",
                    ))
                }
            };
            Part::File { media, cache: None }
        }
        // A Mistral assistant's thinking, fed back: unsigned, so each writer drops it
        // or sends it as its own unsigned reasoning.
        ContentPart::Thinking { thinking, .. } => {
            Part::unsigned_thinking(ContentPart::thinking_text(&thinking))
        }
        ContentPart::Reference { .. } => return Ok(None),
    }))
}

/// A `data:` URI as inline bytes, any other URL as itself.
pub fn media_from_url(url: &str) -> Media {
    let inline = url.strip_prefix("data:").and_then(|rest| {
        let (meta, data) = rest.split_once(',')?;
        let mime = meta.strip_suffix(";base64")?;
        Some(Media::Inline {
            mime: mime.to_owned(),
            data: data.to_owned(),
        })
    });
    inline.unwrap_or_else(|| Media::Url(url.to_owned()))
}

fn tools(
    tools: Vec<crate::providers::wire::openai::ChatTool>,
) -> Result<Vec<Tool>, TranslateError> {
    tools
        .into_iter()
        .enumerate()
        .map(|(i, t)| match (t.kind.as_str(), t.function) {
            ("function", Some(f)) => Ok(Tool {
                name: f.name,
                description: f.description,
                schema: f
                    .parameters
                    .unwrap_or_else(|| serde_json::json!({"type": "object"})),
                strict: f.strict,
                cache: None,
            }),
            (kind, _) => Err(TranslateError::unsupported(
                format!("tools[{i}].type"),
                format!("tool type `{kind}` has no counterpart"),
            )),
        })
        .collect()
}

fn tool_choice(v: &Value) -> Result<ToolChoice, TranslateError> {
    let named = v
        .get("function")
        .and_then(|f| f.get("name"))
        .and_then(Value::as_str);
    match (v.as_str(), named) {
        (Some("auto"), _) => Ok(ToolChoice::Auto),
        (Some("none"), _) => Ok(ToolChoice::None),
        (Some("required"), _) => Ok(ToolChoice::Required),
        (None, Some(name)) => Ok(ToolChoice::Named(name.to_owned())),
        _ => Err(TranslateError::unsupported(
            "tool_choice",
            format!("`{v}` is not translated"),
        )),
    }
}

fn output(f: Option<ResponseFormat>) -> OutputFormat {
    match f {
        None | Some(ResponseFormat::Text) => OutputFormat::Text,
        Some(ResponseFormat::JsonObject) => OutputFormat::JsonObject,
        Some(ResponseFormat::JsonSchema { json_schema }) => OutputFormat::JsonSchema {
            name: json_schema.name,
            schema: json_schema
                .schema
                .unwrap_or_else(|| serde_json::json!({"type": "object"})),
            strict: json_schema.strict,
        },
    }
}

/// `reasoning_effort`.
pub fn reasoning(effort: &str) -> Result<Reasoning, TranslateError> {
    let level = match effort {
        "none" => ReasoningLevel::Off,
        "minimal" => ReasoningLevel::Effort(Effort::Minimal),
        "low" => ReasoningLevel::Effort(Effort::Low),
        "medium" => ReasoningLevel::Effort(Effort::Medium),
        "high" | "xhigh" => ReasoningLevel::Effort(Effort::High),
        other => {
            return Err(TranslateError::unsupported(
                "reasoning_effort",
                format!("`{other}` is not a known effort"),
            ))
        }
    };
    Ok(Reasoning {
        level,
        include_thoughts: false,
    })
}
