//! Writes the [`ir`](super::super::ir) as a Gemini generateContent request: a
//! `systemInstruction`, `user`/`model` contents with parallel function responses
//! grouped in one turn, tool schemas adapted (section 2.4), thought signatures sent
//! back where Gemini minted them (and the documented placeholder on a turn's first
//! call where the history has none), and reasoning as `thinkingConfig`.

use serde_json::json;

use crate::providers::wire::gemini::{
    Blob, Content, FileData, FunctionCall, FunctionCallingConfig, FunctionDeclaration,
    FunctionResponse, GenerateRequest, GenerationConfig, Part as GemPart, ThinkingConfig, Tool,
    ToolConfig,
};

use super::super::ir::{
    Effort, Media, Message, OutputFormat, Part, Request, Role, SigOrigin, ToolChoice,
};
use super::super::{names, schema, Notes, Options, TranslateError, Wire};
use super::write_messages::args_object;

const W: Wire = Wire::Gemini;
/// Google's documented value for a function call whose signature was lost.
pub const SKIP_SIGNATURE: &str = "skip_thought_signature_validator";

/// Writes `ir`.
pub fn write(
    ir: &Request,
    opts: &Options,
    notes: &mut Notes,
) -> Result<GenerateRequest, TranslateError> {
    let mut contents = Vec::with_capacity(ir.messages.len());
    for (i, m) in ir.messages.iter().enumerate() {
        let c = content(m, i, notes)?;
        if !c.parts.is_empty() {
            contents.push(c);
        }
    }
    let system = (!ir.system.is_empty()).then(|| Content {
        role: None,
        parts: ir
            .system
            .iter()
            .filter_map(|p| text_part(p, notes))
            .collect(),
    });
    let req = GenerateRequest {
        contents,
        system_instruction: system,
        tools: tools(ir, opts, notes)?,
        tool_config: tool_config(ir, notes),
        generation_config: Some(generation(ir, opts, notes)?),
        extra: Default::default(),
    };
    if ir.user.is_some() {
        notes.drop("user");
    }
    Ok(req)
}

fn text_part(p: &Part, notes: &mut Notes) -> Option<GemPart> {
    if p.cache().is_some() {
        notes.drop("cache_control");
    }
    match p {
        Part::Text { text, .. } => Some(GemPart {
            text: Some(text.clone()),
            ..GemPart::default()
        }),
        _ => None,
    }
}

fn content(m: &Message, i: usize, notes: &mut Notes) -> Result<Content, TranslateError> {
    let mut parts = Vec::with_capacity(m.parts.len());
    let mut first_call = true;
    for (j, p) in m.parts.iter().enumerate() {
        let at = format!("messages[{i}].content[{j}]");
        if p.cache().is_some() {
            notes.drop("cache_control");
        }
        match p {
            Part::ToolCall {
                name, args, sig, ..
            } => {
                let gem_sig = sig.as_ref().filter(|s| s.origin == SigOrigin::Gemini);
                let sig = match (gem_sig, first_call) {
                    (Some(s), _) => Some(s.bytes.clone()),
                    (None, true) => Some(SKIP_SIGNATURE.to_owned()),
                    (None, false) => None,
                };
                first_call = false;
                parts.push(GemPart {
                    function_call: Some(FunctionCall {
                        id: None,
                        name: names::tool_name(W, name).into_owned(),
                        args: Some(args_object(args, &at)?),
                    }),
                    thought_signature: sig,
                    ..GemPart::default()
                });
            }
            Part::ToolResult {
                name,
                content,
                is_error,
                ..
            } => {
                tool_result(&mut parts, name.as_deref(), content, *is_error, &at)?;
            }
            Part::Thinking {
                text,
                sig: Some(sig),
                redacted: None,
            } if sig.origin == SigOrigin::Gemini => {
                parts.push(GemPart {
                    text: Some(text.clone()),
                    thought: Some(true),
                    thought_signature: Some(sig.bytes.clone()),
                    ..GemPart::default()
                });
            }
            Part::Thinking { .. } => notes.drop("thinking"),
            other => parts.push(media_or_text(other, &at)?),
        }
    }
    let role = match m.role {
        Role::User => "user",
        Role::Assistant => "model",
    };
    Ok(Content {
        role: Some(role.into()),
        parts,
    })
}

/// A function response: the result text wrapped in an object (`{"result": ...}`, or
/// `{"error": ...}`), its images as sibling parts of the same turn.
fn tool_result(
    parts: &mut Vec<GemPart>,
    name: Option<&str>,
    content: &[Part],
    is_error: bool,
    at: &str,
) -> Result<(), TranslateError> {
    let name = name.ok_or_else(|| {
        TranslateError::unsupported(at, "Gemini needs the called function's name")
    })?;
    let mut text = String::new();
    let mut media = Vec::new();
    for p in content {
        match p {
            Part::Text { text: t, .. } => {
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(t);
            }
            other => media.push(media_or_text(other, at)?),
        }
    }
    let key = if is_error { "error" } else { "result" };
    parts.push(GemPart {
        function_response: Some(FunctionResponse {
            id: None,
            name: names::tool_name(W, name).into_owned(),
            response: json!({ key: text }),
        }),
        ..GemPart::default()
    });
    parts.extend(media);
    Ok(())
}

fn media_or_text(p: &Part, at: &str) -> Result<GemPart, TranslateError> {
    let media = match p {
        Part::Text { text, .. } => {
            return Ok(GemPart {
                text: Some(text.clone()),
                ..GemPart::default()
            })
        }
        Part::Image { media, .. } | Part::File { media, .. } => media,
        _ => return Ok(GemPart::default()),
    };
    match media {
        Media::Inline { mime, data } => Ok(GemPart {
            inline_data: Some(Blob {
                mime_type: mime.clone(),
                data: data.clone(),
            }),
            ..GemPart::default()
        }),
        Media::GeminiFile { mime, uri } => Ok(GemPart {
            file_data: Some(FileData {
                mime_type: mime.clone(),
                file_uri: uri.clone(),
            }),
            ..GemPart::default()
        }),
        Media::Url(url) => Err(TranslateError::unsupported(
            at,
            format!("Gemini does not fetch `{url}`: send the image inline (base64)"),
        )),
        Media::FileId(id) => Err(TranslateError::unsupported(
            at,
            format!("OpenAI file `{id}` can only be read by OpenAI"),
        )),
    }
}

fn tools(ir: &Request, opts: &Options, notes: &mut Notes) -> Result<Vec<Tool>, TranslateError> {
    if ir.tools.is_empty() {
        return Ok(Vec::new());
    }
    let mut decls = Vec::with_capacity(ir.tools.len());
    for (i, t) in ir.tools.iter().enumerate() {
        if t.cache.is_some() {
            notes.drop("cache_control");
        }
        let (parameters, parameters_json_schema) = if schema::is_empty_object(&t.schema) {
            (None, None)
        } else if opts.gemini_openapi_schema {
            let s = schema::openapi_schema(&t.schema).map_err(|why| {
                TranslateError::unsupported(format!("tools[{i}].parameters"), why)
            })?;
            (Some(s), None)
        } else {
            (None, Some(schema::json_schema(&t.schema)))
        };
        decls.push(FunctionDeclaration {
            name: names::tool_name(W, &t.name).into_owned(),
            description: t.description.clone(),
            parameters,
            parameters_json_schema,
        });
    }
    Ok(vec![Tool {
        function_declarations: decls,
        extra: Default::default(),
    }])
}

fn tool_config(ir: &Request, notes: &mut Notes) -> Option<ToolConfig> {
    if ir.parallel_tools == Some(false) {
        notes.drop("parallel_tool_calls");
    }
    let (mode, allowed) = match ir.tool_choice.as_ref().filter(|_| !ir.tools.is_empty())? {
        ToolChoice::Auto => ("AUTO", Vec::new()),
        ToolChoice::None => ("NONE", Vec::new()),
        ToolChoice::Required => ("ANY", Vec::new()),
        ToolChoice::Named(n) => ("ANY", vec![names::tool_name(W, n).into_owned()]),
    };
    Some(ToolConfig {
        function_calling_config: Some(FunctionCallingConfig {
            mode: Some(mode.into()),
            allowed_function_names: allowed,
        }),
    })
}

fn generation(
    ir: &Request,
    opts: &Options,
    notes: &mut Notes,
) -> Result<GenerationConfig, TranslateError> {
    let s = &ir.sampling;
    let (mime, json_schema, openapi) = match &ir.output {
        OutputFormat::Text => (None, None, None),
        OutputFormat::JsonObject => (Some("application/json".to_owned()), None, None),
        OutputFormat::JsonSchema { schema: sc, .. } if opts.gemini_openapi_schema => {
            let s = schema::openapi_schema(sc)
                .map_err(|why| TranslateError::unsupported("response_format", why))?;
            (Some("application/json".to_owned()), None, Some(s))
        }
        OutputFormat::JsonSchema { schema: sc, .. } => (
            Some("application/json".to_owned()),
            Some(schema::json_schema(sc)),
            None,
        ),
    };
    Ok(GenerationConfig {
        temperature: s.temperature,
        top_p: s.top_p,
        top_k: s.top_k,
        seed: s.seed,
        presence_penalty: s.presence_penalty,
        frequency_penalty: s.frequency_penalty,
        response_logprobs: s.logprobs,
        logprobs: s.top_logprobs,
        max_output_tokens: ir.max_out,
        stop_sequences: ir.stop.clone(),
        candidate_count: ir.n,
        response_mime_type: mime,
        response_schema: openapi,
        response_json_schema: json_schema,
        thinking_config: thinking(ir, notes),
        extra: Default::default(),
    })
}

/// `thinkingConfig`: `thinkingLevel` for Gemini 3 models, `thinkingBudget` before.
fn thinking(ir: &Request, notes: &mut Notes) -> Option<ThinkingConfig> {
    let r = ir.reasoning?;
    let include = r.include_thoughts.then_some(true);
    if ir.model.starts_with("gemini-3") {
        let level = match r.effort() {
            None => {
                // Gemini 3 cannot turn thinking off: the lowest level is the nearest.
                notes.drop("reasoning.off");
                "low"
            }
            Some(Effort::Minimal | Effort::Low) => "low",
            Some(Effort::Medium | Effort::High) => "high",
        };
        return Some(ThinkingConfig {
            include_thoughts: include,
            thinking_budget: None,
            thinking_level: Some(level.into()),
        });
    }
    let budget = r.budget().map_or(0, i64::from);
    Some(ThinkingConfig {
        include_thoughts: include,
        thinking_budget: Some(budget),
        thinking_level: None,
    })
}
