//! What a request is expected to use, estimated on admission (before anything is sent)
//! for the limits filter's reservations: input tokens from the request body's size
//! ([`input_tokens`]), output tokens from the maximum the request asks for
//! (`ctx.max_output`: `max_tokens`, `max_completion_tokens`, `max_output_tokens`,
//! Gemini's `generationConfig.maxOutputTokens`, the largest if several, read by the
//! proxy's one parse of the body with [`Count`] and [`GenerationConfig`]), else
//! [`DEFAULT_OUTPUT_TOKENS`]; and their cost at the served model's price.

use std::fmt;

use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::context::RequestCtx;
use crate::endpoint::Endpoint;
use crate::usage::{PriceTable, Usage};

/// Output tokens reserved for a request that names no maximum. Providers then allow up
/// to the model's own cap (tens of thousands for some); 4096 covers nearly every answer
/// (it was the output cap of most models until recently) and keeps a small limit usable.
/// A request admitted while nothing is in flight is never refused for its estimate (the
/// limit refuses only what is already spent or reserved), so a large default only makes
/// requests near a limit wait their turn; an answer longer than it is the estimation
/// error that can still overrun a limit.
pub const DEFAULT_OUTPUT_TOKENS: u64 = 4096;

/// A request's expected use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Estimate {
    /// Input and output tokens (what tokens per minute count).
    pub tokens: u64,
    /// Their cost in nano-dollars (0 without a price).
    pub nanos: u64,
}

/// Input tokens reserved for a request body of `bytes` bytes: one per 4 bytes, the
/// characters / 4 rule metering falls back on, applied to the whole body. It is never
/// below that rule on the text the model reads (JSON syntax and field names count too)
/// and costs nothing to compute: a tokenizer or a parse of the body on every limited
/// request would make the request path slower (a long prompt takes milliseconds to
/// tokenize). Inline images and audio count by their base64 size, more than providers
/// charge for them; an estimate above the metered figure only makes requests near a
/// limit wait for those in flight, and is given back when the request ends.
pub fn input_tokens(bytes: usize) -> u64 {
    (bytes as u64).div_ceil(4)
}

/// The estimate for the request in `ctx` (routed: the served model prices it).
pub fn of(ctx: &RequestCtx, prices: &PriceTable) -> Estimate {
    let output = match &ctx.endpoint {
        Some(e) if e.counts_tokens() || e.answered_here() => {
            return Estimate::default(); // these cost nothing
        }
        None => return Estimate::default(),
        Some(Endpoint::Embeddings) => 0,
        Some(_) => ctx.max_output.unwrap_or(DEFAULT_OUTPUT_TOKENS),
    };
    let Some(model) = ctx.route.as_ref().map(|r| r.served_model.as_str()) else {
        return Estimate::default();
    };
    let usage = Usage {
        input: input_tokens(ctx.body.len()),
        output,
        ..Usage::default()
    };
    Estimate {
        tokens: usage.input.saturating_add(usage.output),
        nanos: prices.lookup(model).map(|p| p.cost(&usage)).unwrap_or(0),
    }
}

/// A token count in a request body: a non-negative integer, anything else (a string, a
/// float, null, an object) read past and taken as no count. The provider judges the
/// request; the gateway only must not refuse what it would accept. Nothing is buffered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count(pub Option<u64>);

struct CountVisitor;

/// Visitor methods that read a scalar past: the value is `$none`.
macro_rules! read_past {
    ($v:ty => $none:expr) => {
        read_past!($v => $none; visit_i64: i64, visit_f64: f64, visit_bool: bool, visit_str: &str);

        fn visit_unit<E: serde::de::Error>(self) -> Result<$v, E> {
            Ok($none)
        }
    };
    ($v:ty => $none:expr; $($f:ident: $t:ty),*) => {$(
        fn $f<E: serde::de::Error>(self, _: $t) -> Result<$v, E> {
            Ok($none)
        }
    )*};
}
/// Shared with the stream-event readers (`providers::member`), whose visitors read past
/// the same scalars.
pub(crate) use read_past;

impl<'de> Visitor<'de> for CountVisitor {
    type Value = Count;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Count, E> {
        Ok(Count(Some(n)))
    }

    read_past!(Count => Count(None));

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Count, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Count(None))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Count, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Count(None))
    }
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Count, D::Error> {
        d.deserialize_any(CountVisitor)
    }
}

/// Gemini's `generationConfig`, of which only `maxOutputTokens` is read; any other value
/// is read past as [`Count`] reads past what is no count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GenerationConfig {
    pub max_output_tokens: Count,
}

struct ConfigVisitor;

impl<'de> Visitor<'de> for ConfigVisitor {
    type Value = GenerationConfig;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<GenerationConfig, A::Error> {
        let mut config = GenerationConfig::default();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "maxOutputTokens" {
                config.max_output_tokens = map.next_value()?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(config)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<GenerationConfig, A::Error> {
        CountVisitor
            .visit_seq(seq)
            .map(|_| GenerationConfig::default())
    }

    read_past!(GenerationConfig => GenerationConfig::default(); visit_u64: u64);
    read_past!(GenerationConfig => GenerationConfig::default());
}

impl<'de> Deserialize<'de> for GenerationConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<GenerationConfig, D::Error> {
        d.deserialize_any(ConfigVisitor)
    }
}

/// The largest of the counts a body names, if any.
pub fn largest(counts: impl IntoIterator<Item = Count>) -> Option<u64> {
    counts.into_iter().filter_map(|c| c.0).max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Asked {
        #[serde(default)]
        max_tokens: Count,
        #[serde(default, rename = "generationConfig")]
        config: GenerationConfig,
    }

    /// `max_tokens` and Gemini's `maxOutputTokens`.
    type Read = (Option<u64>, Option<u64>);

    fn asked(body: &str) -> Read {
        let a: Asked = serde_json::from_str(body).unwrap_or_else(|e| panic!("{body}: {e}"));
        (a.max_tokens.0, a.config.max_output_tokens.0)
    }

    #[test]
    fn counts_keep_non_negative_integers_and_read_past_anything_else() {
        let cases: [(&str, Read); 9] = [
            (r#"{"max_tokens":9}"#, (Some(9), None)),
            (
                r#"{"generationConfig":{"topK":1,"maxOutputTokens":55}}"#,
                (None, Some(55)),
            ),
            (r#"{"max_tokens":null,"generationConfig":{}}"#, (None, None)),
            (r#"{"max_tokens":"lots"}"#, (None, None)),
            (
                r#"{"max_tokens":-1,"generationConfig":{"maxOutputTokens":2.5}}"#,
                (None, None),
            ),
            (
                r#"{"max_tokens":{"a":[1,{"b":2}]},"generationConfig":[1,[2]]}"#,
                (None, None),
            ),
            (r#"{"max_tokens":[3],"generationConfig":"x"}"#, (None, None)),
            (
                r#"{"max_tokens":true,"generationConfig":null}"#,
                (None, None),
            ),
            (
                r#"{"generationConfig":{"max\u004futputTokens":7}}"#,
                (None, Some(7)),
            ),
        ];
        for (body, want) in cases {
            assert_eq!(asked(body), want, "{body}");
        }
        assert_eq!(
            largest([Count(Some(9)), Count(None), Count(Some(20))]),
            Some(20)
        );
        assert_eq!(largest([Count(None)]), None);
    }
}
