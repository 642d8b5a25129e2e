//! Token estimates for responses that carried no usage: a real tokenizer for OpenAI
//! models (tiktoken o200k / cl100k), characters / 4 otherwise.

use tollgate_filters::metering::TokenEstimator;

/// Tiktoken where the model is an OpenAI one, chars/4 elsewhere.
pub struct Estimator;

/// The text of a request body a model reads: string values of message content, prompts,
/// inputs, system prompts and Gemini parts, joined.
fn request_text(body: &[u8]) -> String {
    fn walk(v: &serde_json::Value, key: Option<&str>, out: &mut String) {
        match v {
            serde_json::Value::String(s) if key.is_some_and(|k| TEXT_KEYS.contains(&k)) => {
                out.push_str(s);
                out.push('\n');
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, key, out)),
            serde_json::Value::Object(map) => map.iter().for_each(|(k, v)| walk(v, Some(k), out)),
            _ => {}
        }
    }
    const TEXT_KEYS: &[&str] = &[
        "content",
        "text",
        "prompt",
        "input",
        "system",
        "instructions",
        "arguments",
    ];
    let mut out = String::new();
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        walk(&v, None, &mut out);
    }
    out
}

fn by_chars(chars: u64) -> u64 {
    chars.div_ceil(4)
}

impl TokenEstimator for Estimator {
    fn input_tokens(&self, model: &str, body: &[u8]) -> u64 {
        let text = request_text(body);
        if tiktoken_rs::tokenizer::get_tokenizer(model).is_some() {
            if let Ok(bpe) = tiktoken_rs::bpe_for_model(model) {
                return bpe.encode_ordinary(&text).len() as u64;
            }
        }
        by_chars(text.chars().count() as u64)
    }

    fn output_tokens(&self, _model: &str, chars: u64) -> u64 {
        // Only the character count of the generated text is kept while streaming (no
        // per-chunk copies), so outputs use the chars/4 rule for every model.
        by_chars(chars)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_models_use_tiktoken_others_chars() {
        let body = br#"{"model":"gpt-4o","messages":[{"role":"user","content":"Hello world, how are you today?"}]}"#;
        let n = Estimator.input_tokens("gpt-4o", body);
        assert_eq!(n, 8, "o200k tokens of the message text plus its separator");
        let chars = "Hello world, how are you today?\n".chars().count() as u64;
        assert_eq!(
            Estimator.input_tokens("claude-sonnet-4-5", body),
            chars.div_ceil(4)
        );
        assert_eq!(Estimator.output_tokens("x", 9), 3);
    }
}
