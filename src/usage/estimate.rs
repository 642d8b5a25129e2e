//! Token estimates for responses that carried no usage: a real tokenizer for OpenAI
//! models (tiktoken o200k / cl100k), characters / 4 otherwise.
//!
//! Building a tokenizer's tables takes ~500M instructions (100+ ms) and tens of MiB, so
//! it never happens on a request: the first estimate that wants one starts building it
//! on a thread of its own and is itself made by characters / 4, as are the estimates
//! until the tables are ready.

use std::sync::atomic::{AtomicU8, Ordering};

use tiktoken_rs::tokenizer::Tokenizer;
use tiktoken_rs::CoreBPE;
use tollgate_filters::metering::TokenEstimator;

const NOT_ASKED: u8 = 0;
const BUILDING: u8 = 1;
const READY: u8 = 2;

/// Per tokenizer: [`NOT_ASKED`], [`BUILDING`] or [`READY`].
static STATE: [AtomicU8; 7] = [const { AtomicU8::new(NOT_ASKED) }; 7];

fn slot(t: Tokenizer) -> &'static AtomicU8 {
    let i = match t {
        Tokenizer::O200kHarmony => 0,
        Tokenizer::O200kBase => 1,
        Tokenizer::Cl100kBase => 2,
        Tokenizer::P50kBase => 3,
        Tokenizer::R50kBase => 4,
        Tokenizer::P50kEdit => 5,
        Tokenizer::Gpt2 => 6,
    };
    &STATE[i]
}

/// The tokenizer of `model` if its tables are built; if nobody asked for them yet, starts
/// building them in the background. Never blocks.
fn ready_tokenizer(model: &str) -> Option<&'static CoreBPE> {
    let t = tiktoken_rs::tokenizer::get_tokenizer(model)?;
    let state = slot(t);
    match state.load(Ordering::Acquire) {
        READY => tiktoken_rs::bpe_for_tokenizer(t).ok(),
        NOT_ASKED
            if state
                .compare_exchange(NOT_ASKED, BUILDING, Ordering::AcqRel, Ordering::Acquire)
                .is_ok() =>
        {
            let spawned = std::thread::Builder::new()
                .name("tokenizer".into())
                .spawn(move || {
                    super::lower_this_threads_priority();
                    let _ = tiktoken_rs::bpe_for_tokenizer(t);
                    state.store(READY, Ordering::Release);
                });
            if spawned.is_err() {
                state.store(NOT_ASKED, Ordering::Release); // try again next time
            }
            None
        }
        _ => None,
    }
}

/// Builds the tokenizer of `model` now, on this thread (tests, and warm-up off the
/// request path).
pub fn preload(model: &str) {
    if let Some(t) = tiktoken_rs::tokenizer::get_tokenizer(model) {
        let _ = tiktoken_rs::bpe_for_tokenizer(t);
        slot(t).store(READY, Ordering::Release);
    }
}

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

/// Tokens of `text` as `model` would read it: its tokenizer where Tollgate has one
/// ready, else characters / 4.
pub fn text_tokens(model: &str, text: &str) -> u64 {
    match ready_tokenizer(model) {
        Some(bpe) => bpe.encode_ordinary(text).len() as u64,
        None => by_chars(text.chars().count() as u64),
    }
}

impl TokenEstimator for Estimator {
    fn input_tokens(&self, model: &str, body: &[u8]) -> u64 {
        text_tokens(model, &request_text(body))
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
        preload("gpt-4o");
        let n = Estimator.input_tokens("gpt-4o", body);
        assert_eq!(n, 8, "o200k tokens of the message text plus its separator");
        let chars = "Hello world, how are you today?\n".chars().count() as u64;
        assert_eq!(
            Estimator.input_tokens("claude-sonnet-4-5", body),
            chars.div_ceil(4)
        );
        assert_eq!(Estimator.output_tokens("x", 9), 3);
    }

    #[test]
    fn an_unbuilt_tokenizer_is_never_built_on_the_request() {
        // cl100k is used by no other test of this binary: the first ask answers by
        // characters and leaves the tables to a background thread.
        let body = br#"{"messages":[{"role":"user","content":"Hello world, how are you today?"}]}"#;
        let chars = "Hello world, how are you today?\n".chars().count() as u64;
        let state = slot(Tokenizer::Cl100kBase);
        assert_eq!(state.load(Ordering::Acquire), NOT_ASKED);
        assert_eq!(Estimator.input_tokens("gpt-4", body), chars.div_ceil(4));
        assert_ne!(
            state.load(Ordering::Acquire),
            NOT_ASKED,
            "building was started"
        );
        preload("gpt-4");
        assert_eq!(Estimator.input_tokens("gpt-4", body), 8);
    }
}
