//! `count_tokens` for a model on a non-Anthropic upstream (CONTRACT section 7): the
//! Anthropic body read as a request and rendered as the text the upstream would read
//! (system, tools as their declarations would be written there, then the messages),
//! for the proxy to count with a tokenizer and answer with `x-tollgate-estimated`.

use super::ir::Part;
use super::request::text_of_parts;
use super::{names, schema, Notes, TranslateError, Wire};

/// What to count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountInput {
    /// The text a tokenizer should count.
    pub text: String,
    /// Images in the prompt (a tokenizer cannot count them: the proxy adds a fixed
    /// estimate per image).
    pub images: u32,
}

/// The text of an Anthropic `count_tokens` body as `upstream` would receive it.
pub fn count_tokens_input(body: &[u8], upstream: Wire) -> Result<CountInput, TranslateError> {
    let mut notes = Notes::default();
    let ir = super::request::read_for_count(body, &mut notes)?;
    let mut text = text_of_parts(&ir.system);
    for t in &ir.tools {
        text.push_str(&names::tool_name(upstream, &t.name));
        text.push('\n');
        if let Some(d) = &t.description {
            text.push_str(d);
            text.push('\n');
        }
        let s = match upstream {
            Wire::Gemini => schema::json_schema(&t.schema),
            _ => t.schema.clone(),
        };
        text.push_str(&s.to_string());
        text.push('\n');
    }
    let mut images = 0;
    for m in &ir.messages {
        text.push_str(&text_of_parts(&m.parts));
        images += count_images(&m.parts);
    }
    Ok(CountInput { text, images })
}

fn count_images(parts: &[Part]) -> u32 {
    parts
        .iter()
        .map(|p| match p {
            Part::Image { .. } => 1,
            Part::ToolResult { content, .. } => count_images(content),
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_tools_and_messages_are_counted_as_translated() {
        let body = br#"{"model":"m","system":[{"type":"text","text":"Be brief.","cache_control":{"type":"ephemeral"}}],
            "tools":[{"name":"get_weather","description":"Weather now","input_schema":{"$schema":"x","type":"object","properties":{"city":{"type":"string"}}}}],
            "messages":[{"role":"user","content":[{"type":"text","text":"Paris?"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBOR"}}]}]}"#;
        let c = count_tokens_input(body, Wire::Gemini).unwrap();
        assert!(
            c.text.starts_with("Be brief.\nget_weather\nWeather now\n"),
            "{}",
            c.text
        );
        assert!(
            !c.text.contains("$schema"),
            "schemas as Gemini would get them"
        );
        assert!(c.text.ends_with("Paris?\n"));
        assert_eq!(c.images, 1);
        assert!(count_tokens_input(b"{}", Wire::Chat).is_err());
    }

    /// What translation refuses (a conversation ending with a call not answered yet,
    /// system instructions alone) is still counted: an estimate is better than a 400.
    #[test]
    fn what_translation_refuses_is_still_counted() {
        let body = br#"{"model":"m","messages":[{"role":"user","content":"Weather?"},
            {"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"get_weather","input":{"city":"Paris"}}]}]}"#;
        let c = count_tokens_input(body, Wire::Chat).unwrap();
        assert!(c.text.contains("get_weather"), "{}", c.text);
        let c = count_tokens_input(
            br#"{"model":"m","system":"Be brief.","messages":[]}"#,
            Wire::Chat,
        )
        .unwrap();
        assert_eq!(c.text, "Be brief.\n");
    }
}
