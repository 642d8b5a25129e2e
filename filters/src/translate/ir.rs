//! The small typed model every dialect is read into and written from (TRANSLATION_NOTES
//! section 1): a request, its messages and parts, tools, sampling, reasoning, and on the
//! way back a response with its finish reason and usage. It holds only what at least two
//! dialects share; a field with no counterpart never reaches it (the readers drop or
//! refuse it, as `MAPPING.md` says).

use serde_json::Value;

/// A whole request, as the client meant it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Request {
    /// The model as the client named it (the writer puts the served one).
    pub model: String,
    /// System and developer instructions, hoisted from wherever the dialect puts them.
    pub system: Vec<Part>,
    pub messages: Vec<Message>,
    pub tools: Vec<Tool>,
    pub tool_choice: Option<ToolChoice>,
    pub parallel_tools: Option<bool>,
    pub sampling: Sampling,
    pub max_out: Option<u32>,
    pub stop: Vec<String>,
    /// Number of choices asked for (OpenAI `n`, Gemini `candidateCount`).
    pub n: Option<u32>,
    pub output: OutputFormat,
    pub reasoning: Option<Reasoning>,
    pub stream: bool,
    /// OpenAI's `stream_options.include_usage`: whether the client wants a usage chunk.
    pub include_usage: bool,
    /// The end user, for the provider's abuse tracking (`user`, `metadata.user_id`).
    pub user: Option<String>,
    /// (tool name, namespace) of each tool a Responses client sent inside a `namespace`
    /// group: the group is flattened into [`Request::tools`], and the client's calls of
    /// those tools must name their namespace again.
    pub namespaces: Vec<(String, String)>,
    /// The names of a Responses client's freeform (`custom`) tools, sent upstream as
    /// functions of one string (see [`super::freeform`]); their calls go back unwrapped.
    pub custom_tools: Vec<String>,
    /// A Responses client runs its own tool search (`tool_search`, execution `client`):
    /// sent upstream as a function of that name, whose calls go back as searches.
    pub tool_search: bool,
}

/// Who said a message. System and developer messages are hoisted into
/// [`Request::system`]; OpenAI `tool` messages become [`Part::ToolResult`]s of a user one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
}

/// One turn of the conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub role: Role,
    pub parts: Vec<Part>,
}

/// A prompt-cache breakpoint (Anthropic `cache_control`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheTtl {
    FiveMinutes,
    OneHour,
}

/// Who minted a reasoning signature: it only ever goes back to that provider family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigOrigin {
    Anthropic,
    Gemini,
    /// OpenAI Responses `encrypted_content`.
    Responses,
}

/// An opaque reasoning signature and who minted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sig {
    pub origin: SigOrigin,
    pub bytes: String,
}

/// Where an image (or other media) comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Media {
    /// Base64 bytes with their MIME type.
    Inline { mime: String, data: String },
    /// A URL the provider fetches (https, or a `data:` URI that was not split).
    Url(String),
    /// A Gemini Files API or GCS URI: only a Gemini upstream can read it.
    GeminiFile { mime: String, uri: String },
    /// An OpenAI Files API id: only an OpenAI upstream can read it.
    FileId(String),
}

/// One piece of a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text {
        text: String,
        cache: Option<CacheTtl>,
    },
    Image {
        media: Media,
        cache: Option<CacheTtl>,
    },
    /// A PDF or audio clip, carried where the target takes it.
    File {
        media: Media,
        cache: Option<CacheTtl>,
    },
    ToolCall {
        id: String,
        name: String,
        /// The arguments as received: a JSON object's text (may be invalid from OpenAI).
        args: String,
        sig: Option<Sig>,
    },
    ToolResult {
        call_id: String,
        /// The called function's name, resolved from the call when the dialect omits it.
        name: Option<String>,
        content: Vec<Part>,
        is_error: bool,
        cache: Option<CacheTtl>,
    },
    Thinking {
        text: String,
        sig: Option<Sig>,
        /// Anthropic `redacted_thinking` data (then `text` is empty).
        redacted: Option<String>,
    },
}

impl Part {
    /// A text part without a cache mark.
    pub fn text(text: impl Into<String>) -> Part {
        Part::Text {
            text: text.into(),
            cache: None,
        }
    }

    /// Thinking no provider signed (an OpenAI-compatible host's, or a client's without
    /// a signature).
    pub fn unsigned_thinking(text: String) -> Part {
        Part::Thinking {
            text,
            sig: None,
            redacted: None,
        }
    }

    /// The cache mark of a part that can carry one.
    pub fn cache(&self) -> Option<CacheTtl> {
        match self {
            Part::Text { cache, .. }
            | Part::Image { cache, .. }
            | Part::File { cache, .. }
            | Part::ToolResult { cache, .. } => *cache,
            Part::ToolCall { .. } | Part::Thinking { .. } => None,
        }
    }
}

/// A function the model may call, with its schema as the client wrote it (adapted to
/// the target only when written).
#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    pub name: String,
    pub description: Option<String>,
    pub schema: Value,
    pub strict: Option<bool>,
    pub cache: Option<CacheTtl>,
}

/// Whether and which tool the model must call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    Auto,
    None,
    Required,
    Named(String),
}

/// Sampling knobs; a field the target lacks is dropped per the mapping table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sampling {
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<u32>,
    pub seed: Option<i64>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
    pub logprobs: Option<bool>,
    pub top_logprobs: Option<u32>,
}

/// The shape of the answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum OutputFormat {
    #[default]
    Text,
    JsonObject,
    JsonSchema {
        name: String,
        schema: Value,
        strict: Option<bool>,
    },
}

/// How hard the model should think.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effort {
    Minimal,
    Low,
    Medium,
    High,
}

/// Reasoning asked for, in whichever unit the client used (converted with the one table
/// of TRANSLATION_NOTES 2.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReasoningLevel {
    Effort(Effort),
    Budget(u32),
    Off,
}

/// Reasoning settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reasoning {
    pub level: ReasoningLevel,
    /// Whether the client wants the thoughts (or their summaries) back.
    pub include_thoughts: bool,
}

impl Reasoning {
    /// The token budget for this level (LiteLLM's defaults for efforts).
    pub fn budget(&self) -> Option<u32> {
        match self.level {
            ReasoningLevel::Budget(b) => Some(b),
            ReasoningLevel::Effort(Effort::Minimal | Effort::Low) => Some(1024),
            ReasoningLevel::Effort(Effort::Medium) => Some(2048),
            ReasoningLevel::Effort(Effort::High) => Some(4096),
            ReasoningLevel::Off => None,
        }
    }

    /// The nearest effort for this level.
    pub fn effort(&self) -> Option<Effort> {
        match self.level {
            ReasoningLevel::Effort(e) => Some(e),
            ReasoningLevel::Budget(b) if b <= 1024 => Some(Effort::Low),
            ReasoningLevel::Budget(b) if b <= 8192 => Some(Effort::Medium),
            ReasoningLevel::Budget(_) => Some(Effort::High),
            ReasoningLevel::Off => None,
        }
    }
}

/// Token counts in disjoint buckets: every conversion is an addition, and `None` (not
/// reported) stays apart from 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens neither read from nor written to the cache.
    pub input_uncached: Option<u64>,
    pub cache_read: Option<u64>,
    /// Cache writes with the 5-minute (or unspecified) lifetime.
    pub cache_write: Option<u64>,
    pub cache_write_1h: Option<u64>,
    /// Every generated token, reasoning included.
    pub output: Option<u64>,
    /// The reasoning part of `output`, if known.
    pub reasoning: Option<u64>,
}

impl Usage {
    /// Every prompt token: uncached, cache reads and cache writes.
    pub fn input_total(&self) -> Option<u64> {
        let parts = [
            self.input_uncached,
            self.cache_read,
            self.cache_write,
            self.cache_write_1h,
        ];
        parts.iter().any(Option::is_some).then(|| {
            parts
                .iter()
                .fold(0u64, |t, p| t.saturating_add(p.unwrap_or(0)))
        })
    }

    /// Both cache-write lifetimes.
    pub fn cache_write_total(&self) -> Option<u64> {
        match (self.cache_write, self.cache_write_1h) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0).saturating_add(b.unwrap_or(0))),
        }
    }

    /// Whether anything was reported.
    pub fn is_known(&self) -> bool {
        self.input_total().is_some() || self.output.is_some()
    }

    /// Takes every count `other` knows (later stream events carry the running totals).
    pub fn merge(&mut self, other: &Usage) {
        let take = |a: &mut Option<u64>, b: Option<u64>| {
            if let Some(b) = b {
                *a = Some(a.map_or(b, |a| a.max(b)));
            }
        };
        take(&mut self.input_uncached, other.input_uncached);
        take(&mut self.cache_read, other.cache_read);
        take(&mut self.cache_write, other.cache_write);
        take(&mut self.cache_write_1h, other.cache_write_1h);
        take(&mut self.output, other.output);
        take(&mut self.reasoning, other.reasoning);
    }
}

/// Why generation stopped: a closed set, with an explicit fallback per target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    Stop,
    Length,
    ToolUse,
    StopSequence(Option<String>),
    ContentFilter,
    Refusal,
    PauseTurn,
    /// A malformed tool call or another upstream-side failure to finish.
    Error,
    Other(String),
}

/// A whole (non-streamed) answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Response {
    pub id: String,
    pub model: String,
    pub created: Option<u64>,
    pub parts: Vec<Part>,
    pub finish: Option<Finish>,
    pub usage: Usage,
}
