//! Tool and output JSON Schemas adapted to what Gemini accepts (TRANSLATION_NOTES 2.4).
//! By default a schema goes as `parametersJsonSchema` (real JSON Schema, only `$schema`
//! and `$ref` siblings removed); a route that opts out gets the OpenAPI-subset
//! `parameters`, built by an allow-list walk: refs inlined, `oneOf` as `anyOf`,
//! `type` arrays as `nullable`, `const` as `enum`, every other keyword stripped.

use serde_json::{Map, Value};

/// Keywords Gemini's OpenAPI-subset `Schema` accepts (its proto's fields, less
/// `title`, `default` and `example`, which some model paths refuse).
pub const OPENAPI_KEYWORDS: &[&str] = &[
    "type",
    "format",
    "description",
    "nullable",
    "enum",
    "properties",
    "required",
    "items",
    "minItems",
    "maxItems",
    "minimum",
    "maximum",
    "anyOf",
    "propertyOrdering",
    "minLength",
    "maxLength",
    "pattern",
    "minProperties",
    "maxProperties",
];

const MAX_DEPTH: usize = 32;

/// Whether a tool's schema declares no arguments (Gemini refuses an empty `properties`
/// on some models: such a tool goes without parameters).
pub fn is_empty_object(schema: &Value) -> bool {
    match schema {
        Value::Object(m) => {
            let no_props = m
                .get("properties")
                .and_then(Value::as_object)
                .is_none_or(Map::is_empty);
            let plain = m.keys().all(|k| {
                matches!(
                    k.as_str(),
                    "type" | "properties" | "$schema" | "additionalProperties" | "required"
                )
            });
            no_props && plain
        }
        Value::Null => true,
        _ => false,
    }
}

/// The schema for `parametersJsonSchema` / `responseJsonSchema`.
pub fn json_schema(schema: &Value) -> Value {
    let mut out = schema.clone();
    if let Some(m) = out.as_object_mut() {
        m.remove("$schema");
    }
    drop_ref_siblings(&mut out);
    out
}

fn drop_ref_siblings(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if m.contains_key("$ref") {
                m.retain(|k, _| k.starts_with('$'));
            }
            m.values_mut().for_each(drop_ref_siblings);
        }
        Value::Array(a) => a.iter_mut().for_each(drop_ref_siblings),
        _ => {}
    }
}

/// The schema for the OpenAPI-subset `parameters` / `responseSchema`, or why it cannot
/// be expressed (a recursive `$ref`, an `allOf` of non-objects, too deep).
pub fn openapi_schema(schema: &Value) -> Result<Value, String> {
    let defs = schema
        .get("$defs")
        .or_else(|| schema.get("definitions"))
        .and_then(Value::as_object);
    let mut walk = Walk {
        defs,
        stack: Vec::new(),
    };
    walk.node(schema, 0)
}

struct Walk<'a> {
    defs: Option<&'a Map<String, Value>>,
    stack: Vec<&'a str>,
}

impl<'a> Walk<'a> {
    fn node(&mut self, v: &'a Value, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err("schema nests too deeply".into());
        }
        let Some(m) = v.as_object() else {
            return Ok(Value::Object(Map::new()));
        };
        if let Some(r) = m.get("$ref").and_then(Value::as_str) {
            return self.reference(r, depth);
        }
        if let Some(all) = m.get("allOf").and_then(Value::as_array) {
            let merged = merge_all_of(m, all)?;
            return openapi_with(self.defs, &merged, depth + 1);
        }
        let mut out = Map::new();
        for (k, val) in m {
            self.keyword(&mut out, k, val, depth)?;
        }
        fix_nullable_any_of(&mut out);
        prune_required(&mut out);
        Ok(Value::Object(out))
    }

    fn reference(&mut self, r: &'a str, depth: usize) -> Result<Value, String> {
        let name = r
            .strip_prefix("#/$defs/")
            .or_else(|| r.strip_prefix("#/definitions/"))
            .ok_or_else(|| format!("$ref {r} is not a local definition"))?;
        if self.stack.contains(&name) {
            return Err(format!("$ref {r} is recursive"));
        }
        let target = self
            .defs
            .and_then(|d| d.get(name))
            .ok_or_else(|| format!("$ref {r} names no definition"))?;
        self.stack.push(name);
        let out = self.node(target, depth + 1);
        self.stack.pop();
        out
    }

    fn keyword(
        &mut self,
        out: &mut Map<String, Value>,
        k: &'a str,
        v: &'a Value,
        depth: usize,
    ) -> Result<(), String> {
        match k {
            "properties" => {
                let mut props = Map::new();
                for (name, p) in v.as_object().into_iter().flatten() {
                    props.insert(name.clone(), self.node(p, depth + 1)?);
                }
                out.insert(k.to_owned(), Value::Object(props));
            }
            "items" => {
                let item = v.as_array().and_then(|a| a.first()).unwrap_or(v);
                out.insert(k.to_owned(), self.node(item, depth + 1)?);
            }
            "anyOf" | "oneOf" => {
                let mut alts = Vec::new();
                for a in v.as_array().into_iter().flatten() {
                    alts.push(self.node(a, depth + 1)?);
                }
                out.insert("anyOf".to_owned(), Value::Array(alts));
            }
            _ => self.scalar_keyword(out, k, v),
        }
        Ok(())
    }

    fn scalar_keyword(&mut self, out: &mut Map<String, Value>, k: &str, v: &Value) {
        match k {
            "type" => set_type(out, v),
            "const" if v.is_string() => {
                out.insert("enum".to_owned(), Value::Array(vec![v.clone()]));
            }
            "enum" if v.as_array().is_some_and(|a| a.iter().all(Value::is_string)) => {
                out.insert(k.to_owned(), v.clone());
            }
            "const" | "enum" => {}
            "format" => {
                if matches!(v.as_str(), Some("enum" | "date-time")) {
                    out.insert(k.to_owned(), v.clone());
                }
            }
            // The nested keywords (`properties`, `items`, `anyOf`) never come here:
            // [`Walk::keyword`] walks them.
            _ if OPENAPI_KEYWORDS.contains(&k) => {
                out.insert(k.to_owned(), v.clone());
            }
            _ => {}
        }
    }
}

fn openapi_with(
    defs: Option<&Map<String, Value>>,
    v: &Value,
    depth: usize,
) -> Result<Value, String> {
    let mut w = Walk {
        defs,
        stack: Vec::new(),
    };
    w.node(v, depth)
}

/// `type: ["string", "null"]` as `type: "string"` + `nullable: true`.
fn set_type(out: &mut Map<String, Value>, v: &Value) {
    match v {
        Value::Array(types) => {
            let mut first = None;
            for t in types {
                if t.as_str() == Some("null") {
                    out.insert("nullable".to_owned(), Value::Bool(true));
                } else if first.is_none() {
                    first = Some(t.clone());
                }
            }
            if let Some(t) = first {
                out.insert("type".to_owned(), t);
            }
        }
        Value::String(s) if s == "null" => {
            out.insert("nullable".to_owned(), Value::Bool(true));
        }
        _ => {
            out.insert("type".to_owned(), v.clone());
        }
    }
}

/// `anyOf: [X, {type: null}]` (Pydantic's `Optional`) as X with `nullable: true`.
fn fix_nullable_any_of(out: &mut Map<String, Value>) {
    let Some(Value::Array(alts)) = out.get_mut("anyOf") else {
        return;
    };
    let before = alts.len();
    let is_null = |a: &Value| {
        a.as_object()
            .is_some_and(|m| m.len() == 1 && m.get("nullable") == Some(&Value::Bool(true)))
    };
    alts.retain(|a| !is_null(a));
    let had_null = alts.len() != before;
    if had_null {
        if alts.len() == 1 {
            if let Some(Value::Object(only)) = alts.pop() {
                out.remove("anyOf");
                for (k, v) in only {
                    out.entry(k).or_insert(v);
                }
            }
        }
        out.insert("nullable".to_owned(), Value::Bool(true));
    }
}

/// `required` names only declared properties (Gemini refuses others).
fn prune_required(out: &mut Map<String, Value>) {
    let declared: Vec<String> = match out.get("properties").and_then(Value::as_object) {
        Some(p) => p.keys().cloned().collect(),
        None => {
            out.remove("required");
            return;
        }
    };
    if let Some(Value::Array(req)) = out.get_mut("required") {
        req.retain(|r| r.as_str().is_some_and(|r| declared.iter().any(|d| d == r)));
    }
}

/// `allOf` of object schemas merged into one (properties and required united).
fn merge_all_of(node: &Map<String, Value>, all: &[Value]) -> Result<Value, String> {
    let mut merged = node.clone();
    merged.remove("allOf");
    for part in all {
        let Some(p) = part.as_object() else {
            return Err("allOf holds a non-object schema".into());
        };
        if p.contains_key("$ref") {
            return Err("allOf with $ref cannot be merged".into());
        }
        for (k, v) in p {
            match (k.as_str(), merged.get_mut(k)) {
                ("properties", Some(Value::Object(props))) => {
                    for (name, s) in v.as_object().into_iter().flatten() {
                        props.insert(name.clone(), s.clone());
                    }
                }
                ("required", Some(Value::Array(req))) => {
                    req.extend(v.as_array().into_iter().flatten().cloned());
                }
                (_, Some(existing)) if existing != v && k != "description" => {
                    return Err(format!("allOf parts disagree on `{k}`"));
                }
                (_, Some(_)) => {}
                (_, None) => {
                    merged.insert(k.clone(), v.clone());
                }
            }
        }
    }
    Ok(Value::Object(merged))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pydantic_and_zod_shapes_become_the_openapi_subset() {
        let pydantic = json!({
            "$defs": {"Unit": {"enum": ["c", "f"], "title": "Unit", "type": "string"}},
            "properties": {
                "city": {"title": "City", "type": "string", "minLength": 1},
                "unit": {"anyOf": [{"$ref": "#/$defs/Unit"}, {"type": "null"}], "default": null},
                "days": {"type": ["integer", "null"], "exclusiveMinimum": 0},
                "kind": {"const": "forecast"},
                "when": {"type": "string", "format": "date-time"},
                "mail": {"type": "string", "format": "email"}
            },
            "required": ["city", "ghost"],
            "title": "Args", "type": "object", "additionalProperties": false,
            "$schema": "http://json-schema.org/draft-07/schema#"
        });
        let out = openapi_schema(&pydantic).unwrap();
        assert_eq!(
            out,
            json!({
                "properties": {
                    "city": {"type": "string", "minLength": 1},
                    "unit": {"enum": ["c", "f"], "type": "string", "nullable": true},
                    "days": {"type": "integer", "nullable": true},
                    "kind": {"enum": ["forecast"]},
                    "when": {"type": "string", "format": "date-time"},
                    "mail": {"type": "string"}
                },
                "required": ["city"],
                "type": "object"
            })
        );
    }

    #[test]
    fn recursion_and_disagreeing_all_of_are_refused() {
        let rec = json!({"$defs": {"N": {"type": "object", "properties": {"next": {"$ref": "#/$defs/N"}}}}, "$ref": "#/$defs/N"});
        assert!(openapi_schema(&rec).unwrap_err().contains("recursive"));
        let all = json!({"allOf": [{"type": "object", "properties": {"a": {"type": "string"}}}, {"properties": {"b": {"oneOf": [{"type": "string"}, {"type": "number"}]}}, "required": ["b"]}]});
        let out = openapi_schema(&all).unwrap();
        assert_eq!(
            out["properties"]["b"]["anyOf"][1],
            json!({"type": "number"})
        );
        assert_eq!(out["required"], json!(["b"]));
        let bad = json!({"allOf": [{"type": "object"}, {"type": "string"}]});
        assert!(openapi_schema(&bad).is_err());
    }

    #[test]
    fn json_schema_mode_keeps_the_schema_but_not_its_dialect_marker() {
        let s = json!({"$schema": "x", "type": "object", "properties": {"a": {"$ref": "#/$defs/A", "description": "d"}}, "$defs": {"A": {"type": "string"}}});
        let out = json_schema(&s);
        assert_eq!(
            out,
            json!({"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}, "$defs": {"A": {"type": "string"}}})
        );
        assert!(is_empty_object(
            &json!({"type": "object", "properties": {}})
        ));
        assert!(!is_empty_object(
            &json!({"type": "object", "properties": {"a": {}}})
        ));
    }
}

#[cfg(test)]
mod depth_tests {
    use super::*;
    use serde_json::json;

    /// A string schema inside `depth` levels, each made by `wrap`.
    fn wrapped(depth: usize, wrap: fn(Value) -> Value) -> Value {
        (0..depth).fold(json!({"type": "string"}), |inner, _| wrap(inner))
    }

    /// `depth` objects, each the only property of the one around it.
    fn nested(depth: usize) -> Value {
        wrapped(
            depth,
            |inner| json!({"type": "object", "properties": {"p": inner}}),
        )
    }

    /// The walk goes as deep as the bound and no deeper; a `$ref` counts a level and
    /// `items` is walked (its first element when it is a list).
    #[test]
    fn nesting_is_walked_to_the_bound_through_items_and_refs() {
        // Each property is a level below its object.
        assert!(openapi_schema(&nested(MAX_DEPTH)).is_ok());
        assert!(openapi_schema(&nested(MAX_DEPTH + 1)).is_err());
        let s =
            json!({"type": "array", "items": [{"type": "string", "format": "email", "x-odd": 1}]});
        let out = openapi_schema(&s).unwrap();
        assert_eq!(out["items"]["type"], "string");
        assert!(out["items"].get("x-odd").is_none());
        let s = json!({"$defs": {"a": {"type": "integer"}}, "type": "object",
            "properties": {"x": {"$ref": "#/$defs/a"}}});
        assert_eq!(
            openapi_schema(&s).unwrap()["properties"]["x"]["type"],
            "integer"
        );
        // A $ref at the bound: the definition it names is one level too many.
        let mut deep = json!({"$ref": "#/$defs/a"});
        for _ in 0..MAX_DEPTH {
            deep = json!({"type": "object", "properties": {"p": deep}});
        }
        deep["$defs"] = json!({"a": {"type": "integer"}});
        assert!(openapi_schema(&deep).is_err());
    }

    /// `items` and `anyOf` count their levels as `properties` do.
    #[test]
    fn items_and_any_of_nest_to_the_bound_too() {
        let items = |d: usize| wrapped(d, |inner| json!({"type": "array", "items": inner}));
        let any = |d: usize| wrapped(d, |inner| json!({"anyOf": [inner]}));
        assert!(openapi_schema(&items(MAX_DEPTH)).is_ok());
        assert!(openapi_schema(&items(MAX_DEPTH + 1)).is_err());
        assert!(openapi_schema(&any(MAX_DEPTH)).is_ok());
        assert!(openapi_schema(&any(MAX_DEPTH + 1)).is_err());
        // A merged allOf is walked a level down: allOf inside allOf is bounded too.
        let all = |d: usize| wrapped(d, |inner| json!({"allOf": [inner]}));
        assert!(openapi_schema(&all(MAX_DEPTH)).is_ok());
        assert!(openapi_schema(&all(MAX_DEPTH + 1)).is_err());
    }

    /// Gemini's schemas take string enums only: a string `const` becomes a one-value
    /// enum, any other `const` or `enum` goes; `allOf` parts that agree merge.
    #[test]
    fn only_string_enums_stay_and_agreeing_all_of_parts_merge() {
        let one = |s: Value| openapi_schema(&s).unwrap();
        assert_eq!(one(json!({"const": "a"}))["enum"], json!(["a"]));
        assert!(one(json!({"const": 5})).get("enum").is_none());
        assert_eq!(one(json!({"enum": ["a", "b"]}))["enum"], json!(["a", "b"]));
        assert!(one(json!({"enum": [1, 2]})).get("enum").is_none());
        let merged = one(json!({"allOf": [
            {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
            {"type": "object", "properties": {"b": {"type": "integer"}}, "required": ["b"]}]}));
        assert_eq!(merged["properties"]["b"]["type"], "integer");
        assert_eq!(merged["required"], json!(["a", "b"]));
        assert!(
            openapi_schema(&json!({"allOf": [{"type": "object"}, {"type": "string"}]})).is_err()
        );
    }

    /// `null` declares no arguments; `$ref` siblings go inside arrays too.
    #[test]
    fn null_is_no_arguments_and_ref_siblings_go_everywhere() {
        assert!(is_empty_object(&Value::Null));
        assert!(!is_empty_object(&json!(3)));
        let s = json!({"anyOf": [{"$ref": "#/$defs/a", "description": "d"}]});
        assert_eq!(json_schema(&s), json!({"anyOf": [{"$ref": "#/$defs/a"}]}));
    }
}
