//! `tool_choice` of type `allowed_tools` (OpenAI Chat Completions and Responses): the
//! model may call only the tools it names, freely (`mode: "auto"`) or one at least
//! (`"required"`), while the request keeps its whole tool list (for OpenAI's prompt
//! cache). Other providers have no such choice: only the allowed tools are sent, with the
//! mode as the choice.

use serde_json::Value;

use super::super::ir::{Request, ToolChoice};
use super::super::TranslateError;

/// A request's `tool_choice`, read by `other` unless it is an `allowed_tools` one: the
/// choice, and the allowed tools' names if any.
pub fn choice(
    v: Option<&Value>,
    other: impl Fn(&Value) -> Result<ToolChoice, TranslateError>,
) -> Result<(Option<ToolChoice>, Option<Vec<String>>), TranslateError> {
    let Some(v) = v else { return Ok((None, None)) };
    match read(v) {
        Some(read) => read.map(|(c, names)| (Some(c), Some(names))),
        None => Ok((Some(other(v)?), None)),
    }
}

/// The choice and the allowed tools' names, if `v` is an `allowed_tools` choice: Chat's
/// `{"type":"allowed_tools","allowed_tools":{"mode":..,"tools":[{"type":"function",
/// "function":{"name":..}}]}}` or Responses' `{"type":"allowed_tools","mode":..,
/// "tools":[{"type":"function","name":..}]}`.
fn read(v: &Value) -> Option<Result<(ToolChoice, Vec<String>), TranslateError>> {
    if v.get("type").and_then(Value::as_str) != Some("allowed_tools") {
        return None;
    }
    let inner = v.get("allowed_tools").unwrap_or(v);
    let choice = match inner.get("mode").and_then(Value::as_str) {
        Some("auto") | None => ToolChoice::Auto,
        Some("required") => ToolChoice::Required,
        Some(other) => {
            return Some(Err(TranslateError::unsupported(
                "tool_choice.mode",
                format!("`{other}`: `auto` or `required`"),
            )))
        }
    };
    let names: Vec<String> = inner
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| {
            t.get("function")
                .and_then(|f| f.get("name"))
                .or_else(|| t.get("name"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect();
    if names.is_empty() {
        return Some(Err(TranslateError::unsupported(
            "tool_choice.tools",
            "no tool is allowed: name at least one",
        )));
    }
    Some(Ok((choice, names)))
}

/// Leaves in `ir` only the tools named in `allowed`; naming a tool the request does not
/// have is refused, as OpenAI refuses it.
pub fn keep(ir: &mut Request, allowed: &[String]) -> Result<(), TranslateError> {
    if let Some(missing) = allowed
        .iter()
        .find(|n| !ir.tools.iter().any(|t| &t.name == *n))
    {
        return Err(TranslateError::unsupported(
            "tool_choice.tools",
            format!("`{missing}` is not among the request's tools"),
        ));
    }
    ir.tools.retain(|t| allowed.contains(&t.name));
    Ok(())
}
