//! Reads an Anthropic Messages request (or a `count_tokens` body) into the
//! [`ir`](super::super::ir): system blocks with their cache marks, content blocks, tool
//! use and results, thinking with its signature (or a foreign signature this client
//! carried, by its prefix). Server tools and server-side features have no counterpart
//! on another provider and are refused by name.

use serde_json::Value;

use crate::providers::wire::anthropic::{
    Block, CacheControl, Content, Message, MessagesRequest, Source, System, Thinking, Tool,
    MESSAGES_REQUEST_FIELDS,
};
use crate::providers::wire::unknown_members;

use super::super::error::{from_value, invalid, parse};
use super::super::ir::{
    self, CacheTtl, Effort, Media, OutputFormat, Part, Reasoning, ReasoningLevel, Request, Role,
    Sampling, SigOrigin, ToolChoice,
};
use super::super::names::{from_ant_tool_id, uncarry, Carried};
use super::super::{Notes, TranslateError, Wire};

const W: Wire = Wire::Messages;

/// Fields dropped whatever the target, as `MAPPING.md` lists them.
const DROPPED: &[&str] = &["service_tier", "context_management", "inference_geo"];
/// Fields that need Anthropic's servers.
const REFUSED: &[&str] = &["container", "mcp_servers"];

/// Reads `body`.
pub fn read(body: &[u8], notes: &mut Notes) -> Result<Request, TranslateError> {
    let mut req: MessagesRequest = parse(body, W)?;
    req.extra = unknown_members(body, MESSAGES_REQUEST_FIELDS);
    for key in req.extra.keys() {
        let k = key.as_str();
        if REFUSED.contains(&k) {
            return Err(TranslateError::unsupported(
                k,
                "it needs Anthropic's servers",
            ));
        }
        notes.drop(
            DROPPED
                .iter()
                .find(|d| **d == k)
                .copied()
                .unwrap_or("unknown_field"),
        );
    }
    let (tool_choice, parallel_tools) = tool_choice(req.tool_choice.as_ref())?;
    let mut ir = Request {
        model: req.model,
        system: system(req.system),
        tools: tools(req.tools, notes)?,
        tool_choice,
        parallel_tools,
        sampling: Sampling {
            temperature: req.temperature,
            top_p: req.top_p,
            top_k: req.top_k,
            ..Sampling::default()
        },
        max_out: req.max_tokens,
        stop: req.stop_sequences,
        output: output(req.output_config.as_ref().and_then(|o| o.format.as_ref())),
        reasoning: reasoning(
            req.thinking.as_ref(),
            req.output_config.as_ref().and_then(|o| o.effort.as_deref()),
        ),
        stream: req.stream.unwrap_or(false),
        user: req.metadata.and_then(|m| m.user_id),
        ..Request::default()
    };
    for (i, m) in req.messages.into_iter().enumerate() {
        ir.messages.push(message(m, i)?);
    }
    Ok(ir)
}

/// The TTL of a `cache_control` mark.
pub fn cache(c: Option<CacheControl>) -> Option<CacheTtl> {
    c.map(|c| match c.ttl.as_deref() {
        Some("1h") => CacheTtl::OneHour,
        _ => CacheTtl::FiveMinutes,
    })
}

fn system(s: Option<System>) -> Vec<Part> {
    match s {
        None => Vec::new(),
        Some(System::Text(t)) => vec![Part::text(t)],
        Some(System::Blocks(bs)) => bs
            .into_iter()
            .map(|b| Part::Text {
                text: b.text,
                cache: cache(b.cache_control),
            })
            .collect(),
    }
}

fn message(m: Message, i: usize) -> Result<ir::Message, TranslateError> {
    let role = match m.role.as_str() {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        other => {
            return Err(invalid(
                W,
                format!("messages[{i}].role"),
                format!("role `{other}`"),
            ))
        }
    };
    let parts = match m.content {
        Content::Text(t) => vec![Part::text(t)],
        Content::Blocks(bs) => bs
            .into_iter()
            .enumerate()
            .map(|(j, b)| block(b, &format!("messages[{i}].content[{j}]")))
            .collect::<Result<_, _>>()?,
    };
    Ok(ir::Message { role, parts })
}

fn block(b: Block, at: &str) -> Result<Part, TranslateError> {
    Ok(match b {
        Block::Text {
            text,
            cache_control,
        } => Part::Text {
            text,
            cache: cache(cache_control),
        },
        Block::Image {
            source,
            cache_control,
        } => Part::Image {
            media: media(source, at)?,
            cache: cache(cache_control),
        },
        Block::Document {
            source: Source::Text { data, .. },
            cache_control,
        } => Part::Text {
            text: data,
            cache: cache(cache_control),
        },
        Block::Document {
            source,
            cache_control,
        } => Part::File {
            media: media(source, at)?,
            cache: cache(cache_control),
        },
        Block::ToolUse {
            id, name, input, ..
        } => Part::ToolCall {
            id: from_ant_tool_id(id),
            name,
            args: input.to_string(),
            sig: None,
        },
        Block::ToolResult {
            tool_use_id,
            content,
            is_error,
            cache_control,
        } => Part::ToolResult {
            call_id: from_ant_tool_id(tool_use_id),
            name: None,
            content: result_content(content, at)?,
            is_error: is_error.unwrap_or(false),
            cache: cache(cache_control),
        },
        Block::Thinking {
            thinking,
            signature,
        } => thinking_part(thinking, &signature),
        Block::RedactedThinking { data } => Part::Thinking {
            text: String::new(),
            sig: None,
            redacted: Some(data),
        },
        // Other providers get every tool from the start (`defer_loading` is not sent):
        // the reference only tells the model that the search found it.
        Block::ToolReference { tool_name } => Part::text(format!("Tool found: {tool_name}")),
    })
}

fn thinking_part(text: String, signature: &str) -> Part {
    if signature.is_empty() {
        return Part::unsigned_thinking(text);
    }
    match uncarry(signature, SigOrigin::Anthropic) {
        Carried::Sig(sig) => Part::Thinking {
            text,
            sig: Some(sig),
            redacted: None,
        },
        Carried::Redacted(data) => Part::Thinking {
            text,
            sig: None,
            redacted: Some(data),
        },
    }
}

fn result_content(c: Option<Content>, at: &str) -> Result<Vec<Part>, TranslateError> {
    match c {
        None => Ok(Vec::new()),
        Some(Content::Text(t)) => Ok(vec![Part::text(t)]),
        Some(Content::Blocks(bs)) => bs.into_iter().map(|b| block(b, at)).collect(),
    }
}

fn media(s: Source, at: &str) -> Result<Media, TranslateError> {
    match s {
        Source::Base64 { media_type, data } => Ok(Media::Inline {
            mime: media_type,
            data,
        }),
        Source::Url { url } => Ok(Media::Url(url)),
        Source::Text { media_type, data } => Ok(Media::Inline {
            mime: media_type,
            data,
        }),
        Source::File { .. } => Err(TranslateError::unsupported(
            format!("{at}.source"),
            "Anthropic Files API ids can only be read by Anthropic",
        )),
    }
}

/// The client tools. Anthropic's server-side tool search is dropped (`tool_search`): the
/// tools it would load (`defer_loading`, dropped too) go as tools like the others.
fn tools(tools: Vec<Value>, notes: &mut Notes) -> Result<Vec<ir::Tool>, TranslateError> {
    let mut out = Vec::with_capacity(tools.len());
    for (i, t) in tools.into_iter().enumerate() {
        let kind = t.get("type").and_then(Value::as_str).unwrap_or("custom");
        if kind.starts_with("tool_search_tool_") {
            notes.drop("tool_search");
            continue;
        }
        if kind != "custom" {
            let name = t.get("name").and_then(Value::as_str).unwrap_or(kind);
            return Err(TranslateError::unsupported(
                format!("tools[{i}]"),
                format!("`{name}` ({kind}) is an Anthropic server tool"),
            ));
        }
        let t: Tool = from_value(t, W, &format!("tools[{i}]"))?;
        if t.defer_loading.is_some() {
            notes.drop("defer_loading");
        }
        out.push(ir::Tool {
            name: t.name,
            description: t.description,
            schema: t.input_schema,
            strict: t.strict,
            cache: cache(t.cache_control),
        });
    }
    Ok(out)
}

fn tool_choice(
    c: Option<&crate::providers::wire::anthropic::ToolChoice>,
) -> Result<(Option<ToolChoice>, Option<bool>), TranslateError> {
    let Some(c) = c else { return Ok((None, None)) };
    let choice = match (c.kind.as_str(), &c.name) {
        ("auto", _) => ToolChoice::Auto,
        ("any", _) => ToolChoice::Required,
        ("none", _) => ToolChoice::None,
        ("tool", Some(n)) => ToolChoice::Named(n.clone()),
        (other, _) => {
            return Err(TranslateError::unsupported(
                "tool_choice.type",
                format!("`{other}`"),
            ))
        }
    };
    Ok((Some(choice), c.disable_parallel_tool_use.map(|d| !d)))
}

fn output(format: Option<&Value>) -> OutputFormat {
    match format {
        Some(f) if f.get("type").and_then(Value::as_str) == Some("json_schema") => {
            OutputFormat::JsonSchema {
                name: "output".to_owned(),
                schema: f.get("schema").cloned().unwrap_or(Value::Null),
                strict: Some(true),
            }
        }
        _ => OutputFormat::Text,
    }
}

fn reasoning(t: Option<&Thinking>, effort: Option<&str>) -> Option<Reasoning> {
    let level = match t? {
        Thinking::Enabled { budget_tokens } => ReasoningLevel::Budget(*budget_tokens),
        Thinking::Disabled => ReasoningLevel::Off,
        Thinking::Adaptive => ReasoningLevel::Effort(match effort {
            Some("low") => Effort::Low,
            Some("high" | "max") => Effort::High,
            _ => Effort::Medium,
        }),
    };
    Some(Reasoning {
        level,
        include_thoughts: level != ReasoningLevel::Off,
    })
}
