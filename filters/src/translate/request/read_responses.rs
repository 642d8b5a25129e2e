//! Reads an OpenAI Responses API request into the [`ir`](super::super::ir), and the
//! request fields a `response` object echoes back (Codex and the SDKs read them).
//! Tollgate keeps no conversation state: `previous_response_id` and server-side
//! conversations are refused, as are OpenAI's hosted tools, except `web_search`, which
//! Codex sends by default and which is dropped. Tools in a `namespace` group (Codex's
//! sub-agent tools) become plain function tools.

use serde_json::{Map, Value};

use crate::providers::wire::responses::{
    InputPart, Item, MessageContent, ResponsesRequest, SummaryText, RESPONSES_REQUEST_FIELDS,
};
use crate::providers::wire::unknown_members;

use super::super::error::{from_value, invalid, parse};
use super::super::ir::{
    Message, OutputFormat, Part, Request, Role, Sampling, SigOrigin, Tool, ToolChoice,
};
use super::super::names::{uncarry, Carried};
use super::super::{Notes, TranslateError, Wire};
use super::read_chat::{media_from_url, reasoning};

const W: Wire = Wire::Responses;

/// Fields dropped whatever the target, as `MAPPING.md` lists them.
const DROPPED: &[&str] = &[
    "truncation",
    "service_tier",
    "prompt_cache_key",
    "prompt_cache_retention",
    "safety_identifier",
    "max_tool_calls",
    "stream_options",
];
/// Fields that need OpenAI's servers.
const REFUSED: &[&str] = &["conversation", "prompt", "background"];

/// Reads `body`: the request and the echo (JSON members, without braces).
pub fn read(body: &[u8], notes: &mut Notes) -> Result<(Request, String), TranslateError> {
    let mut req: ResponsesRequest = parse(body, W)?;
    req.extra = unknown_members(body, RESPONSES_REQUEST_FIELDS);
    check_fields(&req, notes)?;
    let echo = echo(&req);
    let mut namespaces = Vec::new();
    let mut ir = Request {
        model: req.model,
        tools: tools(req.tools, notes, &mut namespaces)?,
        tool_choice: req.tool_choice.as_ref().map(tool_choice).transpose()?,
        parallel_tools: req.parallel_tool_calls,
        sampling: Sampling {
            temperature: req.temperature,
            top_p: req.top_p,
            top_logprobs: req.top_logprobs,
            ..Sampling::default()
        },
        max_out: req.max_output_tokens,
        output: output(req.text.and_then(|t| t.format)),
        stream: req.stream.unwrap_or(false),
        user: req.user,
        ..Request::default()
    };
    ir.namespaces = namespaces;
    if let Some(r) = req.reasoning {
        if let Some(effort) = r.effort.as_deref() {
            let mut level = reasoning(effort)?;
            level.include_thoughts = r.summary.is_some();
            ir.reasoning = Some(level);
        }
    }
    if let Some(i) = req.instructions {
        ir.system.push(Part::text(i));
    }
    match req.input {
        None => {}
        Some(crate::providers::wire::responses::Input::Text(t)) => ir.messages.push(Message {
            role: Role::User,
            parts: vec![Part::text(t)],
        }),
        Some(crate::providers::wire::responses::Input::Items(items)) => {
            for (i, item) in items.into_iter().enumerate() {
                self::item(&mut ir, item, i)?;
            }
        }
    }
    Ok((ir, echo))
}

fn check_fields(req: &ResponsesRequest, notes: &mut Notes) -> Result<(), TranslateError> {
    if req.previous_response_id.is_some() {
        return Err(TranslateError::unsupported(
            "previous_response_id",
            "Tollgate keeps no responses: send the whole conversation in `input`",
        ));
    }
    for (key, v) in &req.extra {
        let k = key.as_str();
        if REFUSED.contains(&k) && !(v.is_null() || v == &Value::Bool(false)) {
            return Err(TranslateError::unsupported(k, "it needs OpenAI's servers"));
        }
        if !REFUSED.contains(&k) {
            notes.drop(
                DROPPED
                    .iter()
                    .find(|d| **d == k)
                    .copied()
                    .unwrap_or("unknown_field"),
            );
        }
    }
    if req.store == Some(true) {
        notes.drop("store");
    }
    if req.metadata.is_some() {
        notes.drop("metadata");
    }
    Ok(())
}

fn echo(req: &ResponsesRequest) -> String {
    let mut m = Map::new();
    let opt = |v: Option<Value>| v.unwrap_or(Value::Null);
    m.insert(
        "instructions".into(),
        opt(req.instructions.clone().map(Value::String)),
    );
    m.insert("tools".into(), Value::Array(req.tools.clone()));
    m.insert(
        "tool_choice".into(),
        req.tool_choice.clone().unwrap_or_else(|| "auto".into()),
    );
    m.insert(
        "parallel_tool_calls".into(),
        req.parallel_tool_calls.unwrap_or(true).into(),
    );
    m.insert("temperature".into(), opt(req.temperature.map(Value::from)));
    m.insert("top_p".into(), opt(req.top_p.map(Value::from)));
    m.insert(
        "max_output_tokens".into(),
        opt(req.max_output_tokens.map(Value::from)),
    );
    let text = req.text.as_ref().and_then(|t| serde_json::to_value(t).ok());
    m.insert(
        "text".into(),
        text.unwrap_or_else(|| serde_json::json!({"format": {"type": "text"}})),
    );
    let reasoning = req
        .reasoning
        .as_ref()
        .and_then(|r| serde_json::to_value(r).ok());
    m.insert("reasoning".into(), opt(reasoning));
    m.insert(
        "metadata".into(),
        req.metadata
            .clone()
            .unwrap_or_else(|| Value::Object(Map::new())),
    );
    m.insert("store".into(), false.into());
    m.insert("previous_response_id".into(), Value::Null);
    m.insert("user".into(), opt(req.user.clone().map(Value::String)));
    let s = Value::Object(m).to_string();
    s[1..s.len() - 1].to_owned()
}

fn item(ir: &mut Request, mut v: Value, i: usize) -> Result<(), TranslateError> {
    if let Some(obj) = v.as_object_mut() {
        // A member sent as `null` is absent (`"type": null` too: a message then).
        obj.retain(|_, m| !m.is_null());
        if !obj.contains_key("type") && obj.contains_key("role") {
            obj.insert("type".into(), "message".into());
        }
    }
    let kind = v
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if kind.is_empty() {
        return Err(invalid(
            W,
            format!("input[{i}].type"),
            absent_or_not_text(&v, "type"),
        ));
    }
    if !matches!(
        kind.as_str(),
        "message" | "function_call" | "function_call_output" | "reasoning"
    ) {
        return Err(TranslateError::unsupported(
            format!("input[{i}].type"),
            format!("input item `{kind}` has no counterpart"),
        ));
    }
    let at = format!("input[{i}]");
    match from_value::<Item>(v, W, &at)? {
        Item::Message { role, content } => message(ir, &role, content, &at),
        Item::FunctionCall {
            call_id,
            name,
            arguments,
        } => {
            push(
                ir,
                Role::Assistant,
                Part::ToolCall {
                    id: call_id,
                    name,
                    args: arguments,
                    sig: None,
                },
            );
            Ok(())
        }
        Item::FunctionCallOutput { call_id, output } => {
            let content = parts(output, &at)?;
            push(
                ir,
                Role::User,
                Part::ToolResult {
                    call_id,
                    name: None,
                    content,
                    is_error: false,
                    cache: None,
                },
            );
            Ok(())
        }
        Item::Reasoning {
            summary,
            encrypted_content,
        } => {
            push(
                ir,
                Role::Assistant,
                reasoning_part(summary, encrypted_content),
            );
            Ok(())
        }
    }
}

/// A reasoning item as thinking: its summary as the text, its `encrypted_content` as a
/// signature (OpenAI's own, or one carried for another provider).
fn reasoning_part(summary: Vec<SummaryText>, encrypted: Option<String>) -> Part {
    let text = summary
        .into_iter()
        .map(|s| s.text)
        .collect::<Vec<_>>()
        .join("\n\n");
    let (sig, redacted) = match encrypted
        .as_deref()
        .map(|e| uncarry(e, SigOrigin::Responses))
    {
        Some(Carried::Sig(sig)) => (Some(sig), None),
        Some(Carried::Redacted(d)) => (None, Some(d)),
        None => (None, None),
    };
    Part::Thinking {
        text,
        sig,
        redacted,
    }
}

/// Appends a part to the last message if it has `role`, else starts a message.
fn push(ir: &mut Request, role: Role, part: Part) {
    match ir.messages.last_mut() {
        Some(m) if m.role == role => m.parts.push(part),
        _ => ir.messages.push(Message {
            role,
            parts: vec![part],
        }),
    }
}

fn message(
    ir: &mut Request,
    role: &str,
    c: MessageContent,
    at: &str,
) -> Result<(), TranslateError> {
    let ps = parts(c, at)?;
    let role = match role {
        "system" | "developer" => {
            ir.system.extend(ps);
            return Ok(());
        }
        "user" => Role::User,
        "assistant" => Role::Assistant,
        other => {
            return Err(super::super::error::invalid(
                W,
                format!("{at}.role"),
                format!("role `{other}`"),
            ))
        }
    };
    for p in ps {
        push(ir, role, p);
    }
    Ok(())
}

fn parts(c: MessageContent, at: &str) -> Result<Vec<Part>, TranslateError> {
    let ps = match c {
        MessageContent::Text(t) => return Ok(vec![Part::text(t)]),
        MessageContent::Parts(ps) => ps,
    };
    ps.into_iter()
        .map(|p| match p {
            InputPart::InputText { text } | InputPart::OutputText { text } => Ok(Part::text(text)),
            InputPart::Refusal { refusal } => Ok(Part::text(refusal)),
            InputPart::InputImage {
                image_url: Some(u), ..
            } => Ok(Part::Image {
                media: media_from_url(&u),
                cache: None,
            }),
            InputPart::InputFile {
                file_data: Some(d), ..
            } => Ok(Part::File {
                media: media_from_url(&d),
                cache: None,
            }),
            InputPart::InputImage { .. } | InputPart::InputFile { .. } => {
                Err(TranslateError::unsupported(
                    format!("{at}.content.file_id"),
                    "OpenAI file ids can only be read by OpenAI",
                ))
            }
        })
        .collect()
}

/// The function tools, those of `namespace` groups flattened among them (each noted in
/// `namespaces` to be named again in the client's calls). Two tools of one name cannot be
/// told apart once flattened: refused.
fn tools(
    tools: Vec<Value>,
    notes: &mut Notes,
    namespaces: &mut Vec<(String, String)>,
) -> Result<Vec<Tool>, TranslateError> {
    let mut out: Vec<Tool> = Vec::with_capacity(tools.len());
    for (i, t) in tools.iter().enumerate() {
        match t.get("type").and_then(Value::as_str).unwrap_or("") {
            "namespace" => {
                let ns = t.get("name").and_then(Value::as_str).unwrap_or("");
                let inner = t.get("tools").and_then(Value::as_array);
                for (j, f) in inner.into_iter().flatten().enumerate() {
                    let at = format!("tools[{i}].tools[{j}]");
                    let tool = function_tool(f, &at)?;
                    namespaces.push((tool.name.clone(), ns.to_owned()));
                    push_unique(&mut out, tool, &at)?;
                }
            }
            // Hosted by OpenAI, with no counterpart elsewhere; Codex sends it unasked, and
            // the model answers without searching.
            "web_search" | "web_search_preview" => notes.drop("web_search"),
            _ => {
                let at = format!("tools[{i}]");
                push_unique(&mut out, function_tool(t, &at)?, &at)?;
            }
        }
    }
    Ok(out)
}

/// A `function` tool; any other type is hosted by OpenAI (refused at `at`.type).
fn function_tool(t: &Value, at: &str) -> Result<Tool, TranslateError> {
    let kind = t.get("type").and_then(Value::as_str).unwrap_or("");
    match (kind, t.get("name").and_then(Value::as_str)) {
        ("function", Some(name)) => Ok(Tool {
            name: name.to_owned(),
            description: t
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_owned),
            schema: t
                .get("parameters")
                .cloned()
                .unwrap_or_else(|| serde_json::json!({"type": "object"})),
            strict: t.get("strict").and_then(Value::as_bool),
            cache: None,
        }),
        ("function", None) => Err(invalid(
            W,
            format!("{at}.name"),
            absent_or_not_text(t, "name"),
        )),
        ("", _) => Err(invalid(
            W,
            format!("{at}.type"),
            absent_or_not_text(t, "type"),
        )),
        _ => Err(TranslateError::unsupported(
            format!("{at}.type"),
            format!("tool type `{kind}` is hosted by OpenAI"),
        )),
    }
}

/// Why the member `key` of `v` gave no text: it is missing, or not a (non-empty) string.
fn absent_or_not_text(v: &Value, key: &str) -> &'static str {
    match v.get(key) {
        None => "missing",
        Some(Value::String(_)) => "empty",
        Some(_) => "expected a string",
    }
}

fn push_unique(out: &mut Vec<Tool>, tool: Tool, at: &str) -> Result<(), TranslateError> {
    if out.iter().any(|t| t.name == tool.name) {
        return Err(TranslateError::unsupported(
            format!("{at}.name"),
            format!(
                "another tool is named `{}` too (namespaces are flattened upstream)",
                tool.name
            ),
        ));
    }
    out.push(tool);
    Ok(())
}

fn tool_choice(v: &Value) -> Result<ToolChoice, TranslateError> {
    match (
        v.as_str(),
        v.get("type").and_then(Value::as_str),
        v.get("name").and_then(Value::as_str),
    ) {
        (Some("auto"), ..) => Ok(ToolChoice::Auto),
        (Some("none"), ..) => Ok(ToolChoice::None),
        (Some("required"), ..) => Ok(ToolChoice::Required),
        (None, Some("function"), Some(name)) => Ok(ToolChoice::Named(name.to_owned())),
        _ => Err(TranslateError::unsupported(
            "tool_choice",
            format!("`{v}` is not translated"),
        )),
    }
}

fn output(format: Option<Value>) -> OutputFormat {
    let Some(f) = format else {
        return OutputFormat::Text;
    };
    match f.get("type").and_then(Value::as_str) {
        Some("json_object") => OutputFormat::JsonObject,
        Some("json_schema") => OutputFormat::JsonSchema {
            name: f
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("output")
                .to_owned(),
            schema: f.get("schema").cloned().unwrap_or(Value::Null),
            strict: f.get("strict").and_then(Value::as_bool),
        },
        _ => OutputFormat::Text,
    }
}
