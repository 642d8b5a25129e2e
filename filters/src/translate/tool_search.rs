//! A Responses client's own tool search (Codex's `tool_search`, execution `client`) on
//! upstreams without one. Codex keeps some tools (MCP servers' above all) out of the
//! request and lets the model search for them: the model calls `tool_search`, Codex
//! answers with the tools found, and from then on the model may call them. Upstream the
//! search is a function of that name; its calls go back as `tool_search_call` items, and
//! a `tool_search_output` in the history becomes the call's result while the tools it
//! holds join the request's tools.

use serde_json::{json, Map, Value};

/// The function the search is sent as (Codex's tool carries no name of its own).
pub const NAME: &str = "tool_search";

/// The search's arguments as the object a `tool_search_call` holds: the upstream's JSON
/// arguments, or an empty object for anything that is not one.
pub fn arguments(args: &str) -> Value {
    match serde_json::from_str::<Value>(args) {
        Ok(v @ Value::Object(_)) => v,
        _ => Value::Object(Map::new()),
    }
}

/// The result the model reads for a search that found `names` (their definitions go
/// to the request's tools).
pub fn result(names: &[String]) -> String {
    json!({ "loaded_tools": names }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_an_object_whatever_the_upstream_sent() {
        assert_eq!(
            arguments(r#"{"query":"calendar","limit":2}"#),
            json!({"query": "calendar", "limit": 2})
        );
        for bad in ["", "[1]", "\"q\"", "{", "null"] {
            assert_eq!(arguments(bad), json!({}), "{bad}");
        }
    }

    #[test]
    fn the_result_names_the_tools_found() {
        assert_eq!(
            result(&["a".into(), "b".into()]),
            r#"{"loaded_tools":["a","b"]}"#
        );
        assert_eq!(result(&[]), r#"{"loaded_tools":[]}"#);
    }
}
