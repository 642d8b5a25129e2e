//! Writes the [`ir`](super::super::ir) as an Anthropic Messages request: system blocks
//! with their cache marks, alternating turns with tool results first, ids Anthropic
//! accepts, arguments as objects, only Anthropic-minted thinking sent back, and the
//! thinking rules enforced (a budget below `max_tokens`, no forced tool choice, no
//! sampling overrides, and none at all when a tool-use turn lost its signed thinking).

use serde_json::{json, Value};

use crate::providers::wire::anthropic::{
    Block, CacheControl, Content, Message, MessagesRequest, Metadata, OutputConfig, Source, System,
    TextBlock, Thinking, ToolChoice as AntChoice,
};

use super::super::ir::{CacheTtl, Media, OutputFormat, Part, Request, Role, SigOrigin, ToolChoice};
use super::super::{names, Notes, Options, TranslateError, Wire};

const W: Wire = Wire::Messages;
/// Image types Anthropic accepts.
const IMAGE_TYPES: &[&str] = &["image/jpeg", "image/png", "image/gif", "image/webp"];
/// The smallest thinking budget Anthropic accepts.
const MIN_BUDGET: u32 = 1024;

/// Writes `ir` (more than one choice was refused before: see `translate`).
pub fn write(
    ir: &Request,
    opts: &Options,
    notes: &mut Notes,
) -> Result<MessagesRequest, TranslateError> {
    let max_tokens = ir.max_out.unwrap_or(opts.default_max_tokens);
    let mut messages = Vec::with_capacity(ir.messages.len());
    for (i, m) in ir.messages.iter().enumerate() {
        let m = message(m, i)?;
        // A turn of thinking minted elsewhere only has nothing left to send, and
        // Anthropic refuses an empty message.
        if !matches!(&m.content, Content::Blocks(b) if b.is_empty()) {
            messages.push(m);
        }
    }
    for p in ir.messages.iter().flat_map(|m| &m.parts) {
        if matches!(p, Part::Thinking { sig, redacted: None, .. }
            if sig.as_ref().is_none_or(|s| s.origin != SigOrigin::Anthropic))
        {
            notes.drop("thinking");
        }
    }
    let thinking = thinking(ir, max_tokens, notes);
    let mut system = system_blocks(ir);
    if ir.output == OutputFormat::JsonObject {
        system.push(text_block(
            "Respond with a single JSON object and nothing else.".into(),
            None,
        ));
    }
    let mut req = MessagesRequest {
        model: ir.model.clone(),
        messages,
        system: (!system.is_empty()).then_some(System::Blocks(system)),
        max_tokens: Some(max_tokens),
        tools: ir.tools.iter().map(tool).collect(),
        tool_choice: tool_choice(ir),
        stop_sequences: ir.stop.clone(),
        stream: ir.stream.then_some(true),
        thinking,
        metadata: ir.user.clone().map(|u| Metadata { user_id: Some(u) }),
        output_config: output_config(&ir.output),
        ..MessagesRequest::default()
    };
    sampling(&mut req, ir, notes);
    Ok(req)
}

fn cache_control(c: Option<CacheTtl>) -> Option<CacheControl> {
    c.map(|c| CacheControl {
        kind: "ephemeral".into(),
        ttl: (c == CacheTtl::OneHour).then(|| "1h".to_owned()),
    })
}

fn text_block(text: String, cache: Option<CacheTtl>) -> TextBlock {
    TextBlock {
        kind: "text".into(),
        text,
        cache_control: cache_control(cache),
    }
}

fn system_blocks(ir: &Request) -> Vec<TextBlock> {
    ir.system
        .iter()
        .filter_map(|p| match p {
            Part::Text { text, cache } => Some(text_block(text.clone(), *cache)),
            _ => None,
        })
        .collect()
}

fn message(m: &super::super::ir::Message, i: usize) -> Result<Message, TranslateError> {
    let mut blocks = Vec::with_capacity(m.parts.len());
    for (j, p) in m.parts.iter().enumerate() {
        if let Some(b) = block(p, &format!("messages[{i}].content[{j}]"))? {
            blocks.push(b);
        }
    }
    let role = match m.role {
        Role::User => "user",
        Role::Assistant => "assistant",
    };
    Ok(Message {
        role: role.into(),
        content: Content::Blocks(blocks),
    })
}

fn block(p: &Part, at: &str) -> Result<Option<Block>, TranslateError> {
    Ok(Some(match p {
        Part::Text { text, cache } => Block::Text {
            text: text.clone(),
            cache_control: cache_control(*cache),
        },
        Part::Image { media, cache } => Block::Image {
            source: image_source(media, at)?,
            cache_control: cache_control(*cache),
        },
        Part::File { media, cache } => Block::Document {
            source: document_source(media, at)?,
            cache_control: cache_control(*cache),
        },
        Part::ToolCall { id, name, args, .. } => Block::ToolUse {
            id: names::ant_tool_id(id).into_owned(),
            name: names::tool_name(W, name).into_owned(),
            input: args_object(args, at)?,
            cache_control: None,
        },
        Part::ToolResult {
            call_id,
            content,
            is_error,
            cache,
            ..
        } => {
            let mut blocks = Vec::with_capacity(content.len());
            for p in content {
                blocks.extend(block(p, at)?);
            }
            Block::ToolResult {
                tool_use_id: names::ant_tool_id(call_id).into_owned(),
                content: Some(Content::Blocks(blocks)),
                is_error: is_error.then_some(true),
                cache_control: cache_control(*cache),
            }
        }
        Part::Thinking {
            redacted: Some(data),
            ..
        } => Block::RedactedThinking { data: data.clone() },
        Part::Thinking {
            text,
            sig: Some(sig),
            ..
        } if sig.origin == SigOrigin::Anthropic => Block::Thinking {
            thinking: text.clone(),
            signature: sig.bytes.clone(),
        },
        // Thinking minted elsewhere (or unsigned) is never sent: Anthropic verifies it.
        Part::Thinking { .. } => return Ok(None),
    }))
}

/// Tool-call arguments as the object Anthropic takes: invalid JSON from the client is
/// refused, an empty string is `{}`.
pub fn args_object(args: &str, at: &str) -> Result<Value, TranslateError> {
    if args.trim().is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_str::<Value>(args) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) | Err(_) => Err(TranslateError::unsupported(
            format!("{at}.arguments"),
            "tool-call arguments must be a JSON object",
        )),
    }
}

fn image_source(media: &Media, at: &str) -> Result<Source, TranslateError> {
    match media {
        Media::Inline { mime, .. } if !IMAGE_TYPES.contains(&mime.as_str()) => {
            Err(TranslateError::unsupported(
                at,
                format!("Anthropic takes jpeg, png, gif and webp images, not {mime}"),
            ))
        }
        other => document_source(other, at),
    }
}

fn document_source(media: &Media, at: &str) -> Result<Source, TranslateError> {
    match media {
        Media::Inline { mime, .. } if mime.starts_with("audio/") => Err(
            TranslateError::unsupported(at, "Anthropic does not take audio"),
        ),
        Media::Inline { mime, data } => Ok(Source::Base64 {
            media_type: mime.clone(),
            data: data.clone(),
        }),
        Media::Url(url) => Ok(Source::Url { url: url.clone() }),
        Media::GeminiFile { uri, .. } => Err(TranslateError::unsupported(
            at,
            format!("`{uri}` can only be read by Gemini: send the bytes inline"),
        )),
        Media::FileId(id) => Err(TranslateError::unsupported(
            at,
            format!("OpenAI file `{id}` can only be read by OpenAI"),
        )),
    }
}

fn tool(t: &super::super::ir::Tool) -> Value {
    let mut schema = t.schema.clone();
    if let Some(m) = schema.as_object_mut() {
        m.entry("type").or_insert_with(|| "object".into());
    }
    let mut v = json!({"name": names::tool_name(W, &t.name), "input_schema": schema});
    if let Some(d) = &t.description {
        v["description"] = d.clone().into();
    }
    if let Some(c) = cache_control(t.cache) {
        v["cache_control"] = serde_json::to_value(c).unwrap_or(Value::Null);
    }
    v
}

fn tool_choice(ir: &Request) -> Option<AntChoice> {
    if ir.tools.is_empty() {
        return None;
    }
    let disable = ir.parallel_tools.map(|p| !p).filter(|d| *d);
    let (kind, name) = match &ir.tool_choice {
        None if disable.is_some() => ("auto", None),
        None => return None,
        Some(ToolChoice::Auto) => ("auto", None),
        Some(ToolChoice::None) => ("none", None),
        Some(ToolChoice::Required) => ("any", None),
        Some(ToolChoice::Named(n)) => ("tool", Some(names::tool_name(W, n).into_owned())),
    };
    Some(AntChoice {
        kind: kind.into(),
        name,
        disable_parallel_tool_use: disable,
    })
}

fn output_config(o: &OutputFormat) -> Option<OutputConfig> {
    match o {
        OutputFormat::JsonSchema { schema, .. } => Some(OutputConfig {
            format: Some(json!({"type": "json_schema", "schema": schema})),
            effort: None,
        }),
        _ => None,
    }
}

/// Extended thinking, if asked for and allowed: the budget stays below `max_tokens` and
/// at least 1024; a forced tool choice, or a tool-use turn whose signed thinking was
/// lost in another dialect, turns it off (Anthropic would refuse the request).
fn thinking(ir: &Request, max_tokens: u32, notes: &mut Notes) -> Option<Thinking> {
    let budget = ir.reasoning?.budget()?.min(max_tokens.saturating_sub(1));
    let forced = matches!(
        ir.tool_choice,
        Some(ToolChoice::Required | ToolChoice::Named(_))
    );
    if budget < MIN_BUDGET || forced || lost_signed_thinking(ir) {
        notes.drop("thinking");
        return None;
    }
    Some(Thinking::Enabled {
        budget_tokens: budget,
    })
}

/// Whether the last assistant turn calls a tool without the signed thinking block
/// Anthropic demands before it when thinking is on.
fn lost_signed_thinking(ir: &Request) -> bool {
    let Some(last) = ir.messages.iter().rev().find(|m| m.role == Role::Assistant) else {
        return false;
    };
    let calls = last
        .parts
        .iter()
        .any(|p| matches!(p, Part::ToolCall { .. }));
    let signed = last.parts.iter().any(|p| match p {
        Part::Thinking { sig: Some(s), .. } => s.origin == SigOrigin::Anthropic,
        Part::Thinking { redacted, .. } => redacted.is_some(),
        _ => false,
    });
    calls && !signed
}

fn sampling(req: &mut MessagesRequest, ir: &Request, notes: &mut Notes) {
    let s = &ir.sampling;
    let thinking = req.thinking.is_some();
    req.temperature = s.temperature.map(|t| t.min(1.0));
    if s.temperature.is_some_and(|t| t > 1.0) {
        notes.drop("temperature");
    }
    req.top_p = s.top_p;
    req.top_k = s.top_k;
    if thinking {
        if req.temperature.take_if(|t| *t != 1.0).is_some() {
            notes.drop("temperature");
        }
        if req.top_p.take_if(|p| *p < 0.95).is_some() {
            notes.drop("top_p");
        }
        if req.top_k.take().is_some() {
            notes.drop("top_k");
        }
    }
    if req.temperature.is_some() && req.top_p.take().is_some() {
        notes.drop("top_p");
    }
    let unsupported = [
        (s.seed.is_some(), "seed"),
        (s.presence_penalty.is_some(), "presence_penalty"),
        (s.frequency_penalty.is_some(), "frequency_penalty"),
        (s.logprobs.is_some() || s.top_logprobs.is_some(), "logprobs"),
    ];
    for (present, field) in unsupported {
        if present {
            notes.drop(field);
        }
    }
}
