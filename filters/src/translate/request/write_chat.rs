//! Writes the [`ir`](super::super::ir) as an OpenAI Chat Completions request: one
//! system message, tool results as `tool` messages (their images in a user message
//! after them, since tool messages take text only), tool calls with string arguments.
//! Signatures and prior thinking are never sent to OpenAI; cache marks are dropped and
//! counted (OpenAI caches prefixes by itself).

use serde_json::{json, Value};

use crate::providers::wire::openai::{
    ChatContent, ChatMessage, ChatRequest, ChatTool, ContentPart, FilePart, FunctionCall,
    FunctionDecl, ImageUrl, InputAudio, JsonSchemaFormat, ResponseFormat, StreamOptions, ToolCall,
};

use super::super::ir::{Media, Message, OutputFormat, Part, Request, Role, ToolChoice};
use super::super::{names, ChatMember, Notes, Options, TranslateError, Wire};

const W: Wire = Wire::Chat;

/// Writes `ir`.
pub fn write(
    ir: &Request,
    opts: &Options,
    notes: &mut Notes,
) -> Result<ChatRequest, TranslateError> {
    let mut messages = Vec::with_capacity(ir.messages.len() + 1);
    if !ir.system.is_empty() {
        let text = join_text(&ir.system, notes);
        messages.push(ChatMessage {
            role: "system".into(),
            content: Some(ChatContent::Text(text)),
            ..Default::default()
        });
    }
    for m in &ir.messages {
        match m.role {
            Role::User => user(&mut messages, m, notes)?,
            Role::Assistant => {
                let a = assistant(m, opts.send_reasoning_content, notes);
                // A turn of thinking only says nothing to an OpenAI upstream.
                let said = matches!(&a.content, Some(ChatContent::Text(t)) if !t.is_empty());
                if said || !a.tool_calls.is_empty() {
                    messages.push(a);
                }
            }
        }
    }
    if opts.mistral_tool_call_ids {
        mistral_ids(&mut messages);
    }
    let (max_tokens, max_completion_tokens) = match opts.openai_legacy_max_tokens {
        true => (ir.max_out, None),
        false => (None, ir.max_out),
    };
    let has_tools = !ir.tools.is_empty();
    for _ in ir.tools.iter().filter(|t| t.cache.is_some()) {
        notes.drop("cache_control");
    }
    if ir.sampling.top_k.is_some() {
        notes.drop("top_k");
    }
    let req = ChatRequest {
        model: ir.model.clone(),
        messages,
        tools: ir.tools.iter().map(tool).collect(),
        tool_choice: ir
            .tool_choice
            .as_ref()
            .filter(|_| has_tools)
            .map(tool_choice),
        parallel_tool_calls: ir.parallel_tools.filter(|_| has_tools),
        temperature: ir.sampling.temperature,
        top_p: ir.sampling.top_p,
        seed: ir.sampling.seed,
        presence_penalty: ir.sampling.presence_penalty,
        frequency_penalty: ir.sampling.frequency_penalty,
        logprobs: ir.sampling.logprobs,
        top_logprobs: ir.sampling.top_logprobs,
        max_tokens,
        max_completion_tokens,
        stop: (!ir.stop.is_empty())
            .then(|| crate::providers::wire::OneOrMany::Many(ir.stop.clone())),
        n: ir.n,
        response_format: response_format(&ir.output),
        reasoning_effort: reasoning_effort(ir),
        stream: ir.stream.then_some(true),
        // The meter needs the usage chunk; the response translator swallows it when
        // the client did not ask for it.
        stream_options: (ir.stream && opts.stream_include_usage).then_some(StreamOptions {
            include_usage: true,
        }),
        user: ir.user.clone(),
        extra: Default::default(),
    };
    Ok(omit(req, &opts.omit, notes))
}

/// Every tool-call id, on calls and on results alike, in the form Mistral takes.
fn mistral_ids(messages: &mut [ChatMessage]) {
    fn alias(id: &mut String) {
        if let std::borrow::Cow::Owned(a) = names::mistral_tool_call_id(id) {
            *id = a;
        }
    }
    for m in messages {
        m.tool_calls.iter_mut().for_each(|c| alias(&mut c.id));
        if let Some(id) = &mut m.tool_call_id {
            alias(id);
        }
    }
}

/// `req` without the members its upstream refuses; each one left out that had a value
/// is counted as dropped.
fn omit(mut req: ChatRequest, members: &[ChatMember], notes: &mut Notes) -> ChatRequest {
    fn clear<T>(field: &mut Option<T>) -> bool {
        field.take().is_some()
    }
    for &m in members {
        let had = match m {
            ChatMember::User => clear(&mut req.user),
            ChatMember::Seed => clear(&mut req.seed),
            ChatMember::ParallelToolCalls => clear(&mut req.parallel_tool_calls),
            ChatMember::PresencePenalty => clear(&mut req.presence_penalty),
            ChatMember::FrequencyPenalty => clear(&mut req.frequency_penalty),
            ChatMember::Logprobs => clear(&mut req.logprobs),
            ChatMember::TopLogprobs => clear(&mut req.top_logprobs),
            ChatMember::N => clear(&mut req.n),
            ChatMember::ReasoningEffort => clear(&mut req.reasoning_effort),
            ChatMember::ResponseFormat => clear(&mut req.response_format),
        };
        if had {
            notes.drop(m.name());
        }
    }
    req
}

fn join_text(parts: &[Part], notes: &mut Notes) -> String {
    let mut out = String::new();
    for p in parts {
        if p.cache().is_some() {
            notes.drop("cache_control");
        }
        if let Part::Text { text, .. } = p {
            if !out.is_empty() {
                out.push_str("\n\n");
            }
            out.push_str(text);
        }
    }
    out
}

fn user(out: &mut Vec<ChatMessage>, m: &Message, notes: &mut Notes) -> Result<(), TranslateError> {
    let mut content = Vec::new();
    let mut result_images = Vec::new();
    for p in &m.parts {
        if p.cache().is_some() {
            notes.drop("cache_control");
        }
        match p {
            Part::ToolResult {
                call_id,
                content: c,
                is_error,
                ..
            } => {
                if *is_error {
                    notes.drop("tool_result.is_error");
                }
                let (text, images) = split_result(c)?;
                result_images.extend(images);
                out.push(ChatMessage {
                    role: "tool".into(),
                    content: Some(ChatContent::Text(text)),
                    tool_call_id: Some(call_id.clone()),
                    ..Default::default()
                });
            }
            other => content.extend(content_part(other)?),
        }
    }
    // Images of tool results follow the tool messages, before the turn's own content.
    result_images.extend(content);
    if !result_images.is_empty() {
        out.push(ChatMessage {
            role: "user".into(),
            content: Some(simplify(result_images)),
            ..Default::default()
        });
    }
    Ok(())
}

fn split_result(parts: &[Part]) -> Result<(String, Vec<ContentPart>), TranslateError> {
    let mut text = String::new();
    let mut images = Vec::new();
    for p in parts {
        match p {
            Part::Text { text: t, .. } => {
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(t);
            }
            other => images.extend(content_part(other)?),
        }
    }
    Ok((text, images))
}

/// A single text part as a plain string (what most OpenAI-compatible hosts expect).
fn simplify(parts: Vec<ContentPart>) -> ChatContent {
    match parts.as_slice() {
        [ContentPart::Text { text }] => ChatContent::Text(text.clone()),
        _ => ChatContent::Parts(parts),
    }
}

fn content_part(p: &Part) -> Result<Option<ContentPart>, TranslateError> {
    Ok(match p {
        Part::Text { text, .. } => Some(ContentPart::Text { text: text.clone() }),
        Part::Image { media, .. } => Some(ContentPart::ImageUrl {
            image_url: ImageUrl {
                url: url_of(media)?,
                detail: None,
            },
        }),
        Part::File {
            media: Media::Inline { mime, data },
            ..
        } if mime.starts_with("audio/") => {
            let format = mime
                .trim_start_matches("audio/")
                .trim_start_matches("x-")
                .to_owned();
            Some(ContentPart::InputAudio {
                input_audio: InputAudio {
                    data: data.clone(),
                    format,
                },
            })
        }
        Part::File {
            media: Media::FileId(id),
            ..
        } => Some(ContentPart::File {
            file: FilePart {
                file_data: None,
                file_id: Some(id.clone()),
                filename: None,
            },
        }),
        Part::File { media, .. } => Some(ContentPart::File {
            file: FilePart {
                file_data: Some(url_of(media)?),
                file_id: None,
                filename: Some("file".into()),
            },
        }),
        Part::ToolCall { .. } | Part::ToolResult { .. } | Part::Thinking { .. } => None,
    })
}

fn url_of(media: &Media) -> Result<String, TranslateError> {
    match media {
        Media::Inline { mime, data } => Ok(format!("data:{mime};base64,{data}")),
        Media::Url(u) => Ok(u.clone()),
        Media::GeminiFile { uri, .. } => Err(TranslateError::unsupported(
            "fileData",
            format!("`{uri}` can only be read by Gemini: send the bytes inline"),
        )),
        Media::FileId(id) => Err(TranslateError::unsupported(
            "file_id",
            format!("`{id}` is not a URL"),
        )),
    }
}

/// An assistant turn; its thinking as `reasoning_content` when the upstream takes it
/// back (`send_reasoning`), else dropped.
fn assistant(m: &Message, send_reasoning: bool, notes: &mut Notes) -> ChatMessage {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut tool_calls = Vec::new();
    for p in &m.parts {
        match p {
            Part::Text { text: t, .. } => text.push_str(t),
            Part::ToolCall {
                id,
                name,
                args,
                sig,
            } => {
                if sig.is_some() {
                    notes.drop("signature");
                }
                tool_calls.push(ToolCall {
                    id: id.clone(),
                    kind: "function".into(),
                    function: FunctionCall {
                        name: names::tool_name(W, name).into_owned(),
                        arguments: args.clone(),
                    },
                });
            }
            Part::Thinking {
                text: t,
                redacted: None,
                ..
            } if send_reasoning => {
                if !reasoning.is_empty() && !t.is_empty() {
                    reasoning.push_str("\n\n");
                }
                reasoning.push_str(t);
            }
            Part::Thinking { .. } => notes.drop("thinking"),
            _ => {}
        }
    }
    let content = match (text.is_empty(), tool_calls.is_empty()) {
        (true, false) => None,
        _ => Some(ChatContent::Text(text)),
    };
    // A host that wants it back refuses a tool-call turn without it, even an empty one.
    let reasoning_content =
        (send_reasoning && (!reasoning.is_empty() || !tool_calls.is_empty())).then_some(reasoning);
    ChatMessage {
        role: "assistant".into(),
        content,
        tool_calls,
        reasoning_content,
        ..Default::default()
    }
}

fn tool(t: &super::super::ir::Tool) -> ChatTool {
    ChatTool {
        kind: "function".into(),
        function: Some(FunctionDecl {
            name: names::tool_name(W, &t.name).into_owned(),
            description: t.description.clone(),
            parameters: Some(t.schema.clone()),
            strict: t.strict,
        }),
    }
}

fn tool_choice(c: &ToolChoice) -> Value {
    match c {
        ToolChoice::Auto => json!("auto"),
        ToolChoice::None => json!("none"),
        ToolChoice::Required => json!("required"),
        ToolChoice::Named(n) => {
            json!({"type": "function", "function": {"name": names::tool_name(W, n)}})
        }
    }
}

fn response_format(o: &OutputFormat) -> Option<ResponseFormat> {
    match o {
        OutputFormat::Text => None,
        OutputFormat::JsonObject => Some(ResponseFormat::JsonObject),
        OutputFormat::JsonSchema {
            name,
            schema,
            strict,
        } => Some(ResponseFormat::JsonSchema {
            json_schema: JsonSchemaFormat {
                name: name.clone(),
                schema: Some(schema.clone()),
                strict: *strict,
            },
        }),
    }
}

fn reasoning_effort(ir: &Request) -> Option<String> {
    use super::super::ir::Effort;
    let r = ir.reasoning?;
    Some(
        match r.effort()? {
            Effort::Minimal => "minimal",
            Effort::Low => "low",
            Effort::Medium => "medium",
            Effort::High => "high",
        }
        .to_owned(),
    )
}
