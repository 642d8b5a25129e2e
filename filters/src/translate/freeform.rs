//! A Responses client's freeform (`custom`) tools on upstreams that only know JSON
//! function tools. Codex declares `apply_patch` so with GPT-5 models: the model writes
//! the patch as raw text, and the call comes back as a `custom_tool_call` whose `input`
//! is that text. No other dialect has such tools, so each goes upstream as a function
//! taking one string, `input`, and its calls are unwrapped back to the raw text.

use serde_json::{json, Value};

/// The one parameter a freeform tool's function takes.
pub const INPUT: &str = "input";

/// The function parameters standing for a freeform tool of `format` (Responses'
/// `{"type":"text"}` or `{"type":"grammar","syntax":...,"definition":...}`): the
/// grammar, when there is one, is told to the model in the parameter's description,
/// since no function-calling API constrains a string by a grammar.
pub fn schema(format: Option<&Value>) -> Value {
    let mut about = String::from("The tool's whole input, as raw text (not JSON).");
    let grammar = format.filter(|f| f.get("type").and_then(Value::as_str) == Some("grammar"));
    if let Some(definition) = grammar
        .and_then(|f| f.get("definition"))
        .and_then(Value::as_str)
    {
        let syntax = grammar
            .and_then(|f| f.get("syntax"))
            .and_then(Value::as_str)
            .unwrap_or("lark");
        about.push_str(" It must match this ");
        about.push_str(syntax);
        about.push_str(" grammar:\n");
        about.push_str(definition);
    }
    json!({
        "type": "object",
        "properties": {INPUT: {"type": "string", "description": about}},
        "required": [INPUT],
        "additionalProperties": false,
    })
}

/// The tool's description for the model, which sees a function: the client's text
/// (Codex's says "do not wrap the patch in JSON") and where the text now goes.
pub fn description(client: Option<&str>) -> String {
    let note = "Put the text, unchanged, in the `input` parameter.";
    match client {
        Some(d) if !d.is_empty() => format!("{d}\n\n{note}"),
        _ => note.to_owned(),
    }
}

/// A call's raw `input` (a client's history) as the function's JSON arguments.
pub fn wrap(input: &str) -> String {
    json!({ INPUT: input }).to_string()
}

/// The raw text of a call the upstream made with JSON `args`: its `input`, or the one
/// string member a model named otherwise. Arguments of any other shape are handed over
/// as they are, so that the client's own parser reports what is wrong to the model.
pub fn unwrap(args: &str) -> String {
    if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(args) {
        if let Some(Value::String(s)) = m.get(INPUT) {
            return s.clone();
        }
        if let (1, Some(Value::String(s))) = (m.len(), m.values().next()) {
            return s.clone();
        }
    }
    args.to_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_patch_goes_up_as_json_and_comes_back_as_the_same_text() {
        let patch = "*** Begin Patch\n*** Add File: a \"b\".txt\n+\\tab\u{e9}\n*** End Patch\n";
        let args = wrap(patch);
        let v: Value = serde_json::from_str(&args).unwrap();
        assert_eq!(v, json!({"input": patch}));
        assert_eq!(unwrap(&args), patch);
    }

    #[test]
    fn a_call_under_another_single_name_is_read_and_anything_else_passed_on() {
        assert_eq!(unwrap(r#"{"patch":"*** Begin Patch"}"#), "*** Begin Patch");
        assert_eq!(unwrap(r#"{"input":"x","other":1}"#), "x");
        for raw in [
            "*** Begin Patch",
            r#"{"a":"x","b":"y"}"#,
            r#"{"a":1}"#,
            r#""x""#,
            "",
        ] {
            assert_eq!(unwrap(raw), raw);
        }
    }

    #[test]
    fn the_grammar_is_told_in_the_parameter_and_the_note_in_the_description() {
        let s = schema(Some(
            &json!({"type": "grammar", "syntax": "regex", "definition": "a+"}),
        ));
        assert_eq!(s["required"], json!(["input"]));
        assert_eq!(s["additionalProperties"], json!(false));
        let about = s["properties"]["input"]["description"].as_str().unwrap();
        assert!(
            about.ends_with("It must match this regex grammar:\na+"),
            "{about}"
        );
        let plain = schema(Some(&json!({"type": "text"})));
        let about = plain["properties"]["input"]["description"]
            .as_str()
            .unwrap();
        assert!(!about.contains("grammar"), "{about}");
        assert_eq!(schema(None), plain);
        assert_eq!(
            description(Some("Edit files.")),
            "Edit files.\n\nPut the text, unchanged, in the `input` parameter."
        );
        assert_eq!(
            description(Some("")),
            "Put the text, unchanged, in the `input` parameter."
        );
        assert_eq!(description(None), description(Some("")));
    }
}
