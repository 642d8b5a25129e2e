//! Usage in each dialect's published shape, to and from the disjoint buckets of
//! [`ir::Usage`] (TRANSLATION_NOTES 3.3). Reading folds the dialect's totals into
//! addends; writing only ever adds them up, so no count goes negative and an unknown
//! count stays unknown. Sums saturate: an absurd count from an upstream (near `u64::MAX`)
//! must neither wrap around nor panic. What clients see; the bill is read from the upstream's own bytes
//! by the meter, never from here.

use crate::providers::wire::{anthropic, gemini, openai, responses};

use super::ir::Usage;

/// OpenAI: the prompt count includes cached tokens; output includes reasoning.
pub fn from_openai(u: &openai::Usage) -> Usage {
    let cached = u
        .prompt_tokens_details
        .as_ref()
        .and_then(|d| d.cached_tokens)
        .or(u.prompt_cache_hit_tokens);
    Usage {
        input_uncached: u
            .prompt_tokens
            .map(|p| p.saturating_sub(cached.unwrap_or(0))),
        cache_read: cached,
        cache_write: None,
        cache_write_1h: None,
        output: u.completion_tokens,
        reasoning: u
            .completion_tokens_details
            .as_ref()
            .and_then(|d| d.reasoning_tokens),
    }
}

/// Anthropic: input, cache reads and cache writes are already disjoint.
pub fn from_anthropic(u: &anthropic::Usage) -> Usage {
    let one_hour = u.cache_creation.and_then(|c| c.ephemeral_1h_input_tokens);
    Usage {
        input_uncached: u.input_tokens,
        cache_read: u.cache_read_input_tokens,
        cache_write: u
            .cache_creation_input_tokens
            .map(|w| w.saturating_sub(one_hour.unwrap_or(0))),
        cache_write_1h: one_hour.filter(|&h| h > 0),
        output: u.output_tokens,
        reasoning: None,
    }
}

/// Gemini: the prompt count includes cached content, tool-use prompt tokens come
/// apart, and the candidates count excludes thoughts.
pub fn from_gemini(u: &gemini::UsageMetadata) -> Usage {
    let prompt = match (u.prompt_token_count, u.tool_use_prompt_token_count) {
        (None, None) => None,
        (p, t) => Some(p.unwrap_or(0).saturating_add(t.unwrap_or(0))),
    };
    let cached = u.cached_content_token_count;
    let output = match (u.candidates_token_count, u.thoughts_token_count) {
        (None, None) => None,
        (k, t) => Some(k.unwrap_or(0).saturating_add(t.unwrap_or(0))),
    };
    Usage {
        input_uncached: prompt.map(|p| p.saturating_sub(cached.unwrap_or(0))),
        cache_read: cached,
        cache_write: None,
        cache_write_1h: None,
        output,
        reasoning: u.thoughts_token_count,
    }
}

/// OpenAI's `usage`: `prompt_tokens` = every prompt token (cache writes have no field).
pub fn to_openai(u: &Usage) -> openai::Usage {
    let prompt = u.input_total().unwrap_or(0);
    let completion = u.output.unwrap_or(0);
    openai::Usage {
        prompt_tokens: Some(prompt),
        completion_tokens: Some(completion),
        total_tokens: Some(prompt.saturating_add(completion)),
        prompt_tokens_details: Some(openai::PromptDetails {
            cached_tokens: Some(u.cache_read.unwrap_or(0)),
        }),
        completion_tokens_details: u.reasoning.map(|r| openai::CompletionDetails {
            reasoning_tokens: Some(r),
        }),
        prompt_cache_hit_tokens: None,
    }
}

/// Anthropic's `usage`: three disjoint input addends; unknown counts are 0 where the
/// SDK's types require a number.
pub fn to_anthropic(u: &Usage) -> anthropic::Usage {
    let cache_creation = u.cache_write_1h.map(|h| anthropic::CacheCreation {
        ephemeral_5m_input_tokens: Some(u.cache_write.unwrap_or(0)),
        ephemeral_1h_input_tokens: Some(h),
    });
    anthropic::Usage {
        input_tokens: Some(u.input_uncached.unwrap_or(0)),
        cache_creation_input_tokens: Some(u.cache_write_total().unwrap_or(0)),
        cache_read_input_tokens: Some(u.cache_read.unwrap_or(0)),
        cache_creation,
        output_tokens: Some(u.output.unwrap_or(0)),
    }
}

/// Gemini's `usageMetadata`: the prompt includes cached content, candidates exclude
/// thoughts.
pub fn to_gemini(u: &Usage) -> gemini::UsageMetadata {
    let prompt = u.input_total();
    let output = u.output.unwrap_or(0);
    let thoughts = u.reasoning.map(|r| r.min(output));
    gemini::UsageMetadata {
        prompt_token_count: prompt,
        cached_content_token_count: u.cache_read.filter(|&c| c > 0),
        candidates_token_count: u.output.map(|o| o - thoughts.unwrap_or(0)),
        thoughts_token_count: thoughts.filter(|&t| t > 0),
        tool_use_prompt_token_count: None,
        total_token_count: Some(prompt.unwrap_or(0).saturating_add(output)),
    }
}

/// The Responses API's `usage` (OpenAI semantics under other names).
pub fn to_responses(u: &Usage) -> responses::Usage {
    let input = u.input_total().unwrap_or(0);
    let output = u.output.unwrap_or(0);
    responses::Usage {
        input_tokens: input,
        input_tokens_details: responses::InputDetails {
            cached_tokens: u.cache_read.unwrap_or(0),
        },
        output_tokens: output,
        output_tokens_details: responses::OutputDetails {
            reasoning_tokens: u.reasoning.unwrap_or(0),
        },
        total_tokens: input.saturating_add(output),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ant(i: u64, r: u64, w: u64, o: u64) -> anthropic::Usage {
        anthropic::Usage {
            input_tokens: Some(i),
            cache_read_input_tokens: Some(r),
            cache_creation_input_tokens: Some(w),
            cache_creation: None,
            output_tokens: Some(o),
        }
    }

    /// Counts near `u64::MAX` (an upstream's nonsense) add up to `u64::MAX`, in every
    /// dialect, instead of wrapping around (release) or panicking (debug).
    #[test]
    fn absurd_counts_saturate() {
        let max = u64::MAX;
        let a = from_anthropic(&ant(max, max, max, max));
        assert_eq!(a.input_total(), Some(max));
        assert_eq!(a.cache_write_total(), Some(max));
        let o = to_openai(&a);
        assert_eq!((o.prompt_tokens, o.total_tokens), (Some(max), Some(max)));
        assert_eq!(to_gemini(&a).total_token_count, Some(max));
        assert_eq!(to_responses(&a).total_tokens, max);
        let g = from_gemini(&gemini::UsageMetadata {
            prompt_token_count: Some(max),
            tool_use_prompt_token_count: Some(1),
            candidates_token_count: Some(max),
            thoughts_token_count: Some(1),
            ..Default::default()
        });
        assert_eq!((g.input_total(), g.output), (Some(max), Some(max)));
    }

    /// TRANSLATION_NOTES 3.3, row by row (checklist item 6).
    #[test]
    fn usage_arithmetic_per_pair() {
        let a = from_anthropic(&ant(21, 2048, 1536, 187));
        let o = to_openai(&a);
        assert_eq!(o.prompt_tokens, Some(21 + 2048 + 1536));
        assert_eq!(o.prompt_tokens_details.unwrap().cached_tokens, Some(2048));
        assert_eq!(
            (o.completion_tokens, o.total_tokens),
            (Some(187), Some(3792))
        );
        let g = to_gemini(&a);
        assert_eq!(g.prompt_token_count, Some(3605));
        assert_eq!(g.cached_content_token_count, Some(2048));
        assert_eq!(g.total_token_count, Some(3792));
        let r = to_responses(&a);
        assert_eq!(
            (r.input_tokens, r.input_tokens_details.cached_tokens),
            (3605, 2048)
        );

        let oai: openai::Usage = serde_json::from_str(r#"{"prompt_tokens":1117,"completion_tokens":246,"prompt_tokens_details":{"cached_tokens":1024},"completion_tokens_details":{"reasoning_tokens":192}}"#).unwrap();
        let u = from_openai(&oai);
        let back = to_anthropic(&u);
        assert_eq!(back.input_tokens, Some(93));
        assert_eq!(back.cache_read_input_tokens, Some(1024));
        assert_eq!(back.cache_creation_input_tokens, Some(0));
        assert_eq!(back.output_tokens, Some(246));
        let g = to_gemini(&u);
        assert_eq!(
            (g.prompt_token_count, g.cached_content_token_count),
            (Some(1117), Some(1024))
        );
        assert_eq!(
            (g.candidates_token_count, g.thoughts_token_count),
            (Some(54), Some(192))
        );

        // Gemini leaves out a zero cache or thoughts count, as Gemini itself does.
        let none_cached = from_openai(&serde_json::from_str(r#"{"prompt_tokens":9,"completion_tokens":4,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}"#).unwrap());
        let g = to_gemini(&none_cached);
        assert_eq!(
            (g.cached_content_token_count, g.thoughts_token_count),
            (None, None)
        );
        assert_eq!(
            (g.prompt_token_count, g.candidates_token_count),
            (Some(9), Some(4))
        );

        let gem: gemini::UsageMetadata = serde_json::from_str(r#"{"promptTokenCount":2061,"candidatesTokenCount":52,"cachedContentTokenCount":2048,"thoughtsTokenCount":324,"toolUsePromptTokenCount":10,"totalTokenCount":2447}"#).unwrap();
        let u = from_gemini(&gem);
        let o = to_openai(&u);
        assert_eq!(
            (o.prompt_tokens, o.completion_tokens),
            (Some(2071), Some(376))
        );
        assert_eq!(
            o.completion_tokens_details.unwrap().reasoning_tokens,
            Some(324)
        );
        let a = to_anthropic(&u);
        assert_eq!(
            (a.input_tokens, a.cache_read_input_tokens, a.output_tokens),
            (Some(23), Some(2048), Some(376))
        );
    }

    #[test]
    fn unknown_is_not_zero() {
        let u = from_openai(&openai::Usage {
            prompt_tokens: Some(10),
            ..Default::default()
        });
        assert_eq!((u.cache_read, u.output), (None, None));
        assert_eq!(Usage::default().input_total(), None);
        let mut one_hour = ant(1, 0, 30, 2);
        one_hour.cache_creation = Some(anthropic::CacheCreation {
            ephemeral_5m_input_tokens: Some(10),
            ephemeral_1h_input_tokens: Some(20),
        });
        let u = from_anthropic(&one_hour);
        assert_eq!((u.cache_write, u.cache_write_1h), (Some(10), Some(20)));
        assert_eq!(to_anthropic(&u).cache_creation_input_tokens, Some(30));
        // A zero one-hour count (sent with every cache_creation object) is no report of
        // usage: an event carrying nothing else leaves the usage unknown.
        let zero_hour = anthropic::Usage {
            cache_creation: Some(anthropic::CacheCreation {
                ephemeral_5m_input_tokens: None,
                ephemeral_1h_input_tokens: Some(0),
            }),
            ..Default::default()
        };
        let u = from_anthropic(&zero_hour);
        assert_eq!(u.cache_write_1h, None);
        assert!(!u.is_known());
    }
}
