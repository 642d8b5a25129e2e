//! Reads an OpenAI Responses API request into the [`ir`](super::super::ir), and the
//! request fields a `response` object echoes back (Codex and the SDKs read them).
//! Tollgate keeps no conversation state: `previous_response_id` and server-side
//! conversations are refused, as are OpenAI's hosted tools, except `web_search`, which
//! Codex sends by default and which is dropped. Tools in a `namespace` group (Codex's
//! sub-agent tools) become plain function tools, freeform (`custom`) tools (Codex's
//! `apply_patch`) functions of one string (see [`super::super::freeform`]), and a tool
//! search the client runs a function whose results load tools
//! ([`super::super::tool_search`]).

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
use super::super::{freeform, tool_search};
use super::super::{Notes, TranslateError, Wire};
use super::allowed_tools;
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
    // Codex's turn and session ids, for OpenAI's own analytics.
    "client_metadata",
];
/// Fields that need OpenAI's servers.
const REFUSED: &[&str] = &["conversation", "prompt", "background"];

/// Reads `body`: the request and the echo (JSON members, without braces).
pub fn read(body: &[u8], notes: &mut Notes) -> Result<(Request, String), TranslateError> {
    let mut req: ResponsesRequest = parse(body, W)?;
    req.extra = unknown_members(body, RESPONSES_REQUEST_FIELDS);
    check_fields(&req, notes)?;
    let echo = echo(&req);
    let (choice, allowed) = allowed_tools::choice(req.tool_choice.as_ref(), tool_choice)?;
    let mut ir = Request {
        model: req.model,
        tool_choice: choice,
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
    tools(&mut ir, req.tools, notes, Repeat::Refuse)?;
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
                self::item(&mut ir, item, i, notes)?;
            }
        }
    }
    // After the items: tools they add may be among the allowed ones.
    if let Some(names) = allowed {
        allowed_tools::keep(&mut ir, &names)?;
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

fn item(ir: &mut Request, mut v: Value, i: usize, notes: &mut Notes) -> Result<(), TranslateError> {
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
        "message"
            | "function_call"
            | "function_call_output"
            | "custom_tool_call"
            | "custom_tool_call_output"
            | "tool_search_call"
            | "tool_search_output"
            | "additional_tools"
            | "reasoning"
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
            push_call(ir, call_id, name, arguments);
            Ok(())
        }
        Item::CustomToolCall {
            call_id,
            name,
            input,
        } => {
            push_call(ir, call_id, name, freeform::wrap(&input));
            Ok(())
        }
        Item::ToolSearchCall {
            call_id,
            execution,
            arguments,
        } => {
            // A search OpenAI ran is in its own context; only the tools it found (in
            // the output) matter elsewhere.
            if execution == "client" {
                let id = call_id.ok_or_else(|| invalid(W, format!("{at}.call_id"), "missing"))?;
                let args = match arguments {
                    Value::String(s) => s,
                    Value::Null => "{}".to_owned(),
                    v => v.to_string(),
                };
                push_call(ir, id, tool_search::NAME.to_owned(), args);
            }
            Ok(())
        }
        Item::AdditionalTools { tools: added } => tools(ir, added, notes, Repeat::Skip),
        Item::ToolSearchOutput {
            call_id,
            execution,
            tools: found,
        } => {
            let before = ir.tools.len();
            tools(ir, found, notes, Repeat::Skip)?;
            let names: Vec<String> = ir.tools[before..].iter().map(|t| t.name.clone()).collect();
            if execution == "client" {
                let call_id =
                    call_id.ok_or_else(|| invalid(W, format!("{at}.call_id"), "missing"))?;
                push(
                    ir,
                    Role::User,
                    Part::ToolResult {
                        call_id,
                        name: Some(tool_search::NAME.to_owned()),
                        content: vec![Part::text(tool_search::result(&names))],
                        is_error: false,
                        cache: None,
                    },
                );
            }
            Ok(())
        }
        Item::FunctionCallOutput { call_id, output }
        | Item::CustomToolCallOutput { call_id, output } => {
            let content = parts(output, &at)?;
            // A second output for a call in the same turn (Codex's code-mode `exec`
            // sends one per `notify`) adds to its result: other providers take one.
            if let Some(Part::ToolResult { content: first, .. }) = ir
                .messages
                .last_mut()
                .filter(|m| m.role == Role::User)
                .and_then(|m| {
                    m.parts
                        .iter_mut()
                        .find(|p| matches!(p, Part::ToolResult { call_id: c, .. } if *c == call_id))
                })
            {
                first.extend(content);
                return Ok(());
            }
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

/// Appends the model's call `id` of tool `name` with JSON `args`.
fn push_call(ir: &mut Request, id: String, name: String, args: String) {
    let call = Part::ToolCall {
        id,
        name,
        args,
        sig: None,
    };
    push(ir, Role::Assistant, call);
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

/// What a tool named like one already declared means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repeat {
    /// The request's own list: two tools of one name cannot be told apart once
    /// flattened.
    Refuse,
    /// Tools a search found or the conversation added: one the request has already is
    /// left as it is.
    Skip,
}

/// Adds `tools` to `ir`'s: function tools, those of `namespace` groups flattened among
/// them (each noted in `ir.namespaces` to be named again in the client's calls), the
/// freeform ones as functions (each noted in `ir.custom_tools`), and a client-run
/// `tool_search` as a function (noted in `ir.tool_search`).
fn tools(
    ir: &mut Request,
    tools: Vec<Value>,
    notes: &mut Notes,
    repeat: Repeat,
) -> Result<(), TranslateError> {
    // Whether the tool was added (a repeat found by a search is not).
    let add = |ir: &mut Request, (tool, custom): (Tool, bool), at: &str| {
        if repeat == Repeat::Skip && ir.tools.iter().any(|t| t.name == tool.name) {
            return Ok(false);
        }
        if custom {
            ir.custom_tools.push(tool.name.clone());
        }
        push_unique(&mut ir.tools, tool, at).map(|()| true)
    };
    for (i, t) in tools.iter().enumerate() {
        match t.get("type").and_then(Value::as_str).unwrap_or("") {
            "namespace" => {
                let ns = t.get("name").and_then(Value::as_str).unwrap_or("");
                let inner = t.get("tools").and_then(Value::as_array);
                for (j, f) in inner.into_iter().flatten().enumerate() {
                    let at = format!("tools[{i}].tools[{j}]");
                    let tool = function_tool(f, &at)?;
                    let name = tool.0.name.clone();
                    if add(ir, tool, &at)? {
                        ir.namespaces.push((name, ns.to_owned()));
                    }
                }
            }
            // Hosted by OpenAI, with no counterpart elsewhere; Codex sends it unasked, and
            // the model answers without searching.
            "web_search" | "web_search_preview" => notes.drop("web_search"),
            "tool_search" if t.get("execution").and_then(Value::as_str) == Some("client") => {
                ir.tool_search = true;
                let tool = declared(t, tool_search::NAME);
                add(ir, (tool, false), &format!("tools[{i}]"))?;
            }
            // OpenAI's hosted search loads the tools marked `defer_loading`, which go
            // upstream with the others.
            "tool_search" => notes.drop("tool_search"),
            _ => {
                let at = format!("tools[{i}]");
                add(ir, function_tool(t, &at)?, &at)?;
            }
        }
    }
    Ok(())
}

/// A `function` tool, or a `custom` one as a function (then `true`); any other type is
/// hosted by OpenAI (refused at `at`.type).
fn function_tool(t: &Value, at: &str) -> Result<(Tool, bool), TranslateError> {
    let kind = t.get("type").and_then(Value::as_str).unwrap_or("");
    match (kind, t.get("name").and_then(Value::as_str)) {
        ("custom", Some(name)) if !name.is_empty() => Ok((
            Tool {
                name: name.to_owned(),
                description: Some(freeform::description(
                    t.get("description").and_then(Value::as_str),
                )),
                schema: freeform::schema(t.get("format")),
                strict: None,
                cache: None,
            },
            true,
        )),
        ("function", Some(name)) => Ok((declared(t, name), false)),
        ("function" | "custom", _) => Err(invalid(
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

/// The function tool `name` that `t` declares by its `description`, `parameters` and
/// `strict`.
fn declared(t: &Value, name: &str) -> Tool {
    Tool {
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
        (None, Some("function" | "custom"), Some(name)) => Ok(ToolChoice::Named(name.to_owned())),
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
