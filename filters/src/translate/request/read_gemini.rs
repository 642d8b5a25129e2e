//! Reads a Gemini generateContent request into the [`ir`](super::super::ir). Gemini
//! calls usually have no id: each gets a stable one, and a function response without
//! an id answers the earliest open call of its name. Thought parts become thinking
//! (with a signature, or a foreign one this client carried), and a schema written in
//! Gemini's OpenAPI subset is turned back into JSON Schema (lowercase types).

use serde_json::{Map, Value};

use crate::providers::wire::gemini::{
    Content, FunctionCallingConfig, GenerateRequest, GenerationConfig, Part as GemPart,
    GENERATE_REQUEST_FIELDS,
};
use crate::providers::wire::unknown_members;

use super::super::error::{invalid, parse};
use super::super::ir::{
    Effort, Media, Message, OutputFormat, Part, Reasoning, ReasoningLevel, Request, Role, Sampling,
    SigOrigin, Tool, ToolChoice,
};
use super::super::names::{uncarry, Carried};
use super::super::{Notes, TranslateError, Wire};

const W: Wire = Wire::Gemini;

/// Fields dropped whatever the target, as `MAPPING.md` lists them.
const DROPPED: &[&str] = &["safetySettings", "safety_settings", "labels"];

/// Reads `body` (the stream flag comes from the path, not the body).
pub fn read(body: &[u8], notes: &mut Notes) -> Result<Request, TranslateError> {
    let mut req: GenerateRequest = parse(body, W)?;
    req.extra = unknown_members(body, GENERATE_REQUEST_FIELDS);
    for key in req.extra.keys() {
        let k = key.as_str();
        if matches!(k, "cachedContent" | "cached_content") {
            return Err(TranslateError::unsupported(
                k,
                "cached contents live on Gemini's servers",
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
    // The model is in the path, not the body: the served model takes its place.
    let mut ir = Request {
        system: req.system_instruction.map(system).unwrap_or_default(),
        tools: tools(req.tools)?,
        tool_choice: tool_choice(req.tool_config.and_then(|c| c.function_calling_config))?,
        ..Request::default()
    };
    if let Some(g) = req.generation_config {
        generation(&mut ir, g, notes)?;
    }
    let mut open: Vec<(String, String)> = Vec::new();
    for (i, c) in req.contents.into_iter().enumerate() {
        let m = content(c, i, &mut open)?;
        ir.messages.push(m);
    }
    Ok(ir)
}

fn system(c: Content) -> Vec<Part> {
    c.parts
        .into_iter()
        .filter_map(|p| p.text)
        .map(Part::text)
        .collect()
}

fn content(
    c: Content,
    i: usize,
    open: &mut Vec<(String, String)>,
) -> Result<Message, TranslateError> {
    let role = match c.role.as_deref() {
        None | Some("user" | "function" | "tool") => Role::User,
        Some("model") => Role::Assistant,
        Some(other) => {
            return Err(invalid(
                W,
                format!("contents[{i}].role"),
                format!("role `{other}`"),
            ))
        }
    };
    let mut parts: Vec<Part> = Vec::with_capacity(c.parts.len());
    for (j, p) in c.parts.into_iter().enumerate() {
        let at = format!("contents[{i}].parts[{j}]");
        if let Some(part) = part(p, &at, (i, j), open)? {
            push_merging_thoughts(&mut parts, part);
        }
    }
    Ok(Message { role, parts })
}

/// Consecutive thought parts are one thinking block (a signature ends it).
fn push_merging_thoughts(parts: &mut Vec<Part>, part: Part) {
    if let Part::Thinking {
        text,
        sig,
        redacted: None,
    } = &part
    {
        if let Some(Part::Thinking {
            text: prev,
            sig: prev_sig @ None,
            redacted: None,
        }) = parts.last_mut()
        {
            prev.push_str(text);
            *prev_sig = sig.clone();
            return;
        }
    }
    parts.push(part);
}

fn part(
    p: GemPart,
    at: &str,
    (i, j): (usize, usize),
    open: &mut Vec<(String, String)>,
) -> Result<Option<Part>, TranslateError> {
    let only_gemini = [
        ("executableCode", p.executable_code.is_some()),
        ("codeExecutionResult", p.code_execution_result.is_some()),
        ("videoMetadata", p.video_metadata.is_some()),
    ];
    if let Some((key, _)) = only_gemini.iter().find(|(_, present)| *present) {
        return Err(TranslateError::unsupported(
            format!("{at}.{key}"),
            "this part kind exists only on Gemini",
        ));
    }
    let carried = p
        .thought_signature
        .as_deref()
        .map(|s| uncarry(s, SigOrigin::Gemini));
    if let Some(fc) = p.function_call {
        let id = fc.id.unwrap_or_else(|| format!("call_{i}_{j}"));
        open.push((fc.name.clone(), id.clone()));
        let args = fc.args.map_or_else(|| "{}".to_owned(), |a| a.to_string());
        let sig = match carried {
            Some(Carried::Sig(s)) => Some(s),
            _ => None,
        };
        return Ok(Some(Part::ToolCall {
            id,
            name: fc.name,
            args,
            sig,
        }));
    }
    if let Some(fr) = p.function_response {
        let call_id = match fr.id {
            Some(id) => id,
            None => take_open(open, &fr.name).ok_or_else(|| {
                invalid(
                    W,
                    at,
                    format!("functionResponse `{}` answers no call", fr.name),
                )
            })?,
        };
        let (content, is_error) = unwrap_response(fr.response);
        return Ok(Some(Part::ToolResult {
            call_id,
            name: Some(fr.name),
            content,
            is_error,
            cache: None,
        }));
    }
    if p.thought == Some(true) {
        return Ok(Some(thought(p.text.unwrap_or_default(), carried)));
    }
    if let Some(text) = p.text {
        // A signature on a plain text part is not validated on replay: it is dropped.
        return Ok(Some(Part::text(text)));
    }
    Ok(media_part(
        p.inline_data.map(|b| (b.mime_type, b.data)),
        p.file_data.map(|f| (f.mime_type, f.file_uri)),
    ))
}

/// A thought part as thinking, with the signature it carries (Gemini's own, or one a
/// foreign upstream minted).
fn thought(text: String, carried: Option<Carried>) -> Part {
    let (sig, redacted) = match carried {
        Some(Carried::Sig(sig)) => (Some(sig), None),
        Some(Carried::Redacted(data)) => (None, Some(data)),
        None => (None, None),
    };
    Part::Thinking {
        text,
        sig,
        redacted,
    }
}

fn media_part(inline: Option<(String, String)>, file: Option<(String, String)>) -> Option<Part> {
    let (mime, media) = match (inline, file) {
        (Some((mime, data)), _) => (mime.clone(), Media::Inline { mime, data }),
        (None, Some((mime, uri))) => (mime.clone(), Media::GeminiFile { mime, uri }),
        (None, None) => return None,
    };
    Some(if mime.starts_with("image/") {
        Part::Image { media, cache: None }
    } else {
        Part::File { media, cache: None }
    })
}

fn take_open(open: &mut Vec<(String, String)>, name: &str) -> Option<String> {
    let k = open.iter().position(|(n, _)| n == name)?;
    Some(open.remove(k).1)
}

/// A function response object back to tool-result text: `{"result": x}` and
/// `{"error": x}` (how other dialects' results are wrapped) are unwrapped.
pub fn unwrap_response(v: Value) -> (Vec<Part>, bool) {
    let text = |x: &Value| x.as_str().map_or_else(|| x.to_string(), str::to_owned);
    match v {
        Value::Object(m) if m.len() == 1 && m.contains_key("result") => {
            (vec![Part::text(text(&m["result"]))], false)
        }
        Value::Object(m) if m.len() == 1 && m.contains_key("error") => {
            (vec![Part::text(text(&m["error"]))], true)
        }
        other => (vec![Part::text(other.to_string())], false),
    }
}

fn tools(tools: Vec<crate::providers::wire::gemini::Tool>) -> Result<Vec<Tool>, TranslateError> {
    let mut out = Vec::new();
    for (i, t) in tools.into_iter().enumerate() {
        if let Some(key) = t.extra.keys().next() {
            return Err(TranslateError::unsupported(
                format!("tools[{i}].{key}"),
                "a Gemini built-in tool",
            ));
        }
        for f in t.function_declarations {
            let schema = match (f.parameters_json_schema, f.parameters) {
                (Some(s), _) => s,
                (None, Some(p)) => from_openapi(p),
                (None, None) => serde_json::json!({"type": "object", "properties": {}}),
            };
            out.push(Tool {
                name: f.name,
                description: f.description,
                schema,
                strict: None,
                cache: None,
            });
        }
    }
    Ok(out)
}

/// Gemini's OpenAPI-subset schema as JSON Schema: lowercase type names, `nullable` as a
/// `null` type.
pub fn from_openapi(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let nullable = m.get("nullable") == Some(&Value::Bool(true));
            let mut out = Map::new();
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("nullable", _) => {}
                    ("type", Value::String(t)) => {
                        let t = Value::String(t.to_ascii_lowercase());
                        let t = if nullable {
                            Value::Array(vec![t, "null".into()])
                        } else {
                            t
                        };
                        out.insert(k, t);
                    }
                    ("enum" | "required" | "propertyOrdering", v) => {
                        out.insert(k, v);
                    }
                    ("properties", Value::Object(props)) => {
                        let props = props
                            .into_iter()
                            .map(|(n, s)| (n, from_openapi(s)))
                            .collect();
                        out.insert(k, Value::Object(props));
                    }
                    (_, v) => {
                        out.insert(k, from_openapi(v));
                    }
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.into_iter().map(from_openapi).collect()),
        other => other,
    }
}

fn tool_choice(c: Option<FunctionCallingConfig>) -> Result<Option<ToolChoice>, TranslateError> {
    let Some(c) = c else { return Ok(None) };
    let mut allowed = c.allowed_function_names;
    Ok(match (c.mode.as_deref(), allowed.len()) {
        (Some("NONE"), _) => Some(ToolChoice::None),
        (Some("ANY"), 1) => allowed.pop().map(ToolChoice::Named),
        (Some("ANY"), 0) => Some(ToolChoice::Required),
        (Some("ANY"), _) => {
            return Err(TranslateError::unsupported(
                "toolConfig.functionCallingConfig.allowedFunctionNames",
                "more than one allowed function has no counterpart",
            ))
        }
        (Some("AUTO" | "VALIDATED") | None, _) => Some(ToolChoice::Auto),
        (Some(other), _) => {
            return Err(TranslateError::unsupported(
                "toolConfig.functionCallingConfig.mode",
                format!("`{other}`"),
            ))
        }
    })
}

fn generation(
    ir: &mut Request,
    g: GenerationConfig,
    notes: &mut Notes,
) -> Result<(), TranslateError> {
    for key in g.extra.keys() {
        match key.as_str() {
            "responseModalities" | "response_modalities" | "speechConfig" | "speech_config" => {
                return Err(TranslateError::unsupported(
                    format!("generationConfig.{key}"),
                    "only text output is translated",
                ))
            }
            "mediaResolution" | "media_resolution" => {
                notes.drop("generationConfig.mediaResolution")
            }
            _ => notes.drop("unknown_field"),
        }
    }
    ir.sampling = Sampling {
        temperature: g.temperature,
        top_p: g.top_p,
        top_k: g.top_k,
        seed: g.seed,
        presence_penalty: g.presence_penalty,
        frequency_penalty: g.frequency_penalty,
        logprobs: g.response_logprobs,
        top_logprobs: g.logprobs,
    };
    ir.max_out = g.max_output_tokens;
    ir.stop = g.stop_sequences;
    ir.n = g.candidate_count;
    let json = g.response_mime_type.as_deref() == Some("application/json");
    ir.output = match (json, g.response_json_schema, g.response_schema) {
        (true, Some(s), _) => OutputFormat::JsonSchema {
            name: "response".into(),
            schema: s,
            strict: None,
        },
        (true, None, Some(s)) => OutputFormat::JsonSchema {
            name: "response".into(),
            schema: from_openapi(s),
            strict: None,
        },
        (true, None, None) => OutputFormat::JsonObject,
        (false, ..) => OutputFormat::Text,
    };
    ir.reasoning = g.thinking_config.map(|t| {
        let level = match (t.thinking_level.as_deref(), t.thinking_budget) {
            (Some("low" | "LOW" | "minimal" | "MINIMAL"), _) => ReasoningLevel::Effort(Effort::Low),
            (Some("medium" | "MEDIUM"), _) => ReasoningLevel::Effort(Effort::Medium),
            (Some(_), _) => ReasoningLevel::Effort(Effort::High),
            (None, Some(0)) => ReasoningLevel::Off,
            (None, Some(b)) if b > 0 => ReasoningLevel::Budget(b as u32),
            (None, _) => ReasoningLevel::Effort(Effort::Medium),
        };
        Reasoning {
            level,
            include_thoughts: t.include_thoughts.unwrap_or(false),
        }
    });
    Ok(())
}
