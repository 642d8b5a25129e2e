//! OpenAI Chat Completions wire types: the request, the `chat.completion` answer and the
//! `chat.completion.chunk` stream event, with the non-standard `reasoning_content` that
//! vLLM, DeepSeek and other compatible hosts add (`reasoning` on OpenRouter and newer
//! vLLM), and the typed `thinking` content chunks of Mistral's reasoning models.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::OneOrMany;
use crate::providers::quick::{quick, required, Cursor, Quick};

/// `POST /v1/chat/completions`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "super::null_as_default"
    )]
    pub tools: Vec<ChatTool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<OneOrMany>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Every other field, for the reader to drop or refuse by name (see
    /// [`super::unknown_members`]).
    #[serde(skip)]
    pub extra: Map<String, Value>,
}

/// `stream_options`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct StreamOptions {
    #[serde(default, deserialize_with = "super::null_as_default")]
    pub include_usage: bool,
}

/// `response_format`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema { json_schema: JsonSchemaFormat },
}

/// `response_format.json_schema`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct JsonSchemaFormat {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// One message of the conversation.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ChatMessage {
    pub role: String,
    #[serde(default)]
    pub content: Option<ChatContent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "super::null_as_default"
    )]
    pub tool_calls: Vec<ToolCall>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// `reasoning_content` as OpenRouter and newer vLLM name it (some send both).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
}

impl ChatMessage {
    /// The reasoning, under whichever name the host gave it.
    pub fn take_reasoning(&mut self) -> Option<String> {
        self.reasoning_content
            .take()
            .filter(|r| !r.is_empty())
            .or_else(|| self.reasoning.take().filter(|r| !r.is_empty()))
    }
}

/// A message's content: a string or typed parts (read by [`super::text_or_seq`]).
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum ChatContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

impl<'de> Deserialize<'de> for ChatContent {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        super::text_or_seq(
            de,
            |t| ChatContent::Text(t.into_owned()),
            ChatContent::Parts,
            "a string or an array of content parts",
        )
    }
}

/// One typed content part.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    Text {
        text: String,
    },
    ImageUrl {
        image_url: ImageUrl,
    },
    InputAudio {
        input_audio: InputAudio,
    },
    File {
        file: FilePart,
    },
    Refusal {
        refusal: String,
    },
    /// Mistral's reasoning models answer their thinking as a chunk of its own, holding
    /// text chunks (and references), interleaved with the text chunks of the answer.
    Thinking {
        thinking: Vec<ContentPart>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        closed: Option<bool>,
    },
    /// Mistral's citation of a tool result by its ids: no counterpart elsewhere.
    Reference {
        #[serde(default)]
        reference_ids: Vec<Value>,
    },
}

impl ContentPart {
    /// A text chunk's text.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            ContentPart::Text { text } => Some(text),
            _ => None,
        }
    }

    /// The text of a `thinking` chunk's own text chunks, in order (one run, as a
    /// `reasoning_content` would hold it).
    pub fn thinking_text(inner: &[ContentPart]) -> String {
        inner.iter().filter_map(ContentPart::as_text).collect()
    }
}

/// `image_url`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ImageUrl {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// `input_audio`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct InputAudio {
    pub data: String,
    pub format: String,
}

/// `file` (inline `file_data` as a data URI, or an uploaded `file_id`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct FilePart {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
}

/// A tool call in an assistant message.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ToolCall {
    /// Left out by some OpenAI-compatible hosts' answers (the reader names the call by
    /// its place then); a request's call without one is refused by its reader.
    #[serde(default, deserialize_with = "super::null_as_default")]
    pub id: String,
    // Absent from a request: read by nothing (writers name it themselves).
    #[serde(rename = "type", default, deserialize_with = "super::null_as_default")]
    pub kind: String,
    pub function: FunctionCall,
}

/// The called function: its name and its arguments as a JSON string (read from an
/// object too: [`super::arguments_string`]).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct FunctionCall {
    pub name: String,
    #[serde(default, deserialize_with = "super::arguments_string")]
    pub arguments: String,
}

/// A tool declaration.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ChatTool {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionDecl>,
}

/// `function` of a tool declaration.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct FunctionDecl {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// The `chat.completion` answer.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ChatCompletion {
    #[serde(default, deserialize_with = "super::null_as_default")]
    pub id: String,
    // Absent from an answer: read by nothing (writers name it themselves).
    #[serde(default, deserialize_with = "super::null_as_default")]
    pub object: String,
    #[serde(default, deserialize_with = "super::null_as_default")]
    pub created: u64,
    #[serde(default, deserialize_with = "super::null_as_default")]
    pub model: String,
    #[serde(default, deserialize_with = "super::null_as_default")]
    pub choices: Vec<Choice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// One choice of an answer.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Choice {
    #[serde(default, deserialize_with = "super::null_as_default")]
    pub index: u32,
    pub message: ChatMessage,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

/// The `usage` object, in its published shape.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: Option<u64>,
    #[serde(default)]
    pub completion_tokens: Option<u64>,
    #[serde(default)]
    pub total_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<CompletionDetails>,
    /// DeepSeek's name for cache hits.
    #[serde(default, skip_serializing)]
    pub prompt_cache_hit_tokens: Option<u64>,
}

/// `prompt_tokens_details`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct PromptDetails {
    #[serde(default)]
    pub cached_tokens: Option<u64>,
}

/// `completion_tokens_details`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct CompletionDetails {
    #[serde(default)]
    pub reasoning_tokens: Option<u64>,
}

/// One `chat.completion.chunk`, borrowed from the event's bytes.
#[derive(Debug, Default, PartialEq, Deserialize)]
pub struct Chunk<'a> {
    #[serde(borrow, deserialize_with = "super::borrowed_str", default)]
    pub id: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "super::borrowed_str", default)]
    pub model: Option<Cow<'a, str>>,
    #[serde(default)]
    pub created: Option<u64>,
    #[serde(borrow, default, deserialize_with = "super::null_as_default")]
    pub choices: Vec<ChunkChoice<'a>>,
    #[serde(default)]
    pub usage: Option<Usage>,
    /// A mid-stream error (`data: {"error":{...}}`).
    #[serde(default)]
    pub error: Option<Value>,
}

/// One choice of a chunk.
#[derive(Debug, Default, PartialEq, Deserialize)]
pub struct ChunkChoice<'a> {
    #[serde(default, deserialize_with = "super::null_as_default")]
    pub index: u32,
    #[serde(borrow, default)]
    pub delta: Option<Delta<'a>>,
    #[serde(borrow, deserialize_with = "super::borrowed_str", default)]
    pub finish_reason: Option<Cow<'a, str>>,
}

/// A chunk's `delta`.
#[derive(Debug, Default, PartialEq, Deserialize)]
pub struct Delta<'a> {
    #[serde(borrow, default)]
    pub content: Option<DeltaContent<'a>>,
    #[serde(borrow, deserialize_with = "super::borrowed_str", default)]
    pub reasoning_content: Option<Cow<'a, str>>,
    /// Some hosts (OpenRouter, newer vLLM) name it `reasoning`.
    #[serde(borrow, deserialize_with = "super::borrowed_str", default)]
    pub reasoning: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "super::borrowed_str", default)]
    pub refusal: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "super::null_as_default")]
    pub tool_calls: Vec<ToolCallDelta<'a>>,
}

/// A delta's `content`: text, or the typed chunks Mistral's reasoning models stream
/// while they think (`thinking` chunks holding text chunks).
#[derive(Debug, PartialEq)]
pub enum DeltaContent<'a> {
    Text(Cow<'a, str>),
    Parts(Vec<ContentPart>),
}

impl<'de: 'a, 'a> Deserialize<'de> for DeltaContent<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        super::text_or_seq(
            de,
            DeltaContent::Text,
            DeltaContent::Parts,
            "a string or an array of content chunks",
        )
    }
}

/// A fragment of a tool call.
#[derive(Debug, Default, PartialEq, Deserialize)]
pub struct ToolCallDelta<'a> {
    /// Absent from some OpenAI-compatible hosts' streams (Gemini's OpenAI-compatible
    /// endpoint sends each call whole, without one): the call is then told by its id.
    #[serde(default)]
    pub index: Option<u32>,
    #[serde(borrow, deserialize_with = "super::borrowed_str", default)]
    pub id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub function: Option<FunctionDelta<'a>>,
}

/// A fragment of a called function.
#[derive(Debug, Default, PartialEq, Deserialize)]
pub struct FunctionDelta<'a> {
    #[serde(borrow, deserialize_with = "super::borrowed_str", default)]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "super::arguments_text", default)]
    pub arguments: Option<Cow<'a, str>>,
}

/// The error envelope `{"error":{"message","type","param","code"}}`; compatible hosts
/// also answer `{"object":"error","message",...}` at the top (vLLM, with a string;
/// Mistral, with its validation's `{"detail":[...]}` object) or FastAPI's bare
/// `{"detail":...}`, kept here for the reader to make a message of.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ErrorEnvelope {
    #[serde(default, deserialize_with = "super::null_as_default")]
    pub error: Option<ErrorBody>,
    #[serde(default)]
    pub message: Option<Value>,
    #[serde(default)]
    pub detail: Option<Value>,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
}

/// The error object.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ErrorBody {
    #[serde(default, deserialize_with = "super::null_as_default")]
    pub message: String,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub code: Option<Value>,
}

/// The top-level fields [`ChatRequest`] reads.
pub const CHAT_REQUEST_FIELDS: &[&str] = &[
    "model",
    "messages",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "temperature",
    "top_p",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logprobs",
    "top_logprobs",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "n",
    "response_format",
    "reasoning_effort",
    "stream",
    "stream_options",
    "user",
];

// The hand-written read of a chunk (`providers::quick`): a translated stream reads one
// per event, and serde's typed parse of one costs several times the hand read.
quick!(Chunk<'q> {
    id: b"id" => text,
    model: b"model" => text,
    created: b"created" => count,
    choices: b"choices" => list,
    usage: b"usage" => optional,
    error: b"error" => null,
});

quick!(ChunkChoice<'q> {
    index: b"index" => index,
    delta: b"delta" => optional,
    finish_reason: b"finish_reason" => text,
});

impl<'q> Quick<'q> for Delta<'q> {
    const KEYS: &'static [&'static [u8]] = &[
        b"content",
        b"reasoning_content",
        b"reasoning",
        b"refusal",
        b"tool_calls",
    ];

    fn set(&mut self, i: usize, c: &mut Cursor<'q>) -> Option<()> {
        match i {
            // Text; typed chunks (an array) are left to the typed parse.
            0 => self.content = c.text()?.map(DeltaContent::Text),
            1 => self.reasoning_content = c.text()?,
            2 => self.reasoning = c.text()?,
            3 => self.refusal = c.text()?,
            4 => self.tool_calls = c.list()?,
            _ => return None,
        }
        Some(())
    }
}

quick!(ToolCallDelta<'q> {
    index: b"index" => some_index,
    id: b"id" => text,
    function: b"function" => optional,
});

quick!(FunctionDelta<'q> {
    name: b"name" => text,
    arguments: b"arguments" => text,
});

quick!(Usage {
    prompt_tokens: b"prompt_tokens" => count,
    completion_tokens: b"completion_tokens" => count,
    total_tokens: b"total_tokens" => count,
    prompt_tokens_details: b"prompt_tokens_details" => optional,
    completion_tokens_details: b"completion_tokens_details" => optional,
    prompt_cache_hit_tokens: b"prompt_cache_hit_tokens" => count,
});

quick!(PromptDetails {
    cached_tokens: b"cached_tokens" => count,
});

quick!(CompletionDetails {
    reasoning_tokens: b"reasoning_tokens" => count,
});

// The hand-written read of a whole answer, for a translated one.
quick!(ChatCompletion {
    id: b"id" => owned,
    object: b"object" => owned,
    created: b"created" => whole,
    model: b"model" => owned,
    choices: b"choices" => list,
    usage: b"usage" => optional,
});

quick!(Choice {
    index: b"index" => index,
    message: b"message" => object,
    finish_reason: b"finish_reason" => owned_or_null,
} required [b"message"]);

quick!(ToolCall {
    id: b"id" => owned,
    kind: b"type" => owned,
    function: b"function" => object,
} required [b"function"]);

quick!(FunctionCall {
    name: b"name" => owned,
    arguments: b"arguments" => owned,
} required [b"name"]);

impl<'q> Quick<'q> for ChatMessage {
    const KEYS: &'static [&'static [u8]] = &[
        b"role",
        b"content",
        b"name",
        b"tool_calls",
        b"tool_call_id",
        b"reasoning_content",
        b"refusal",
        b"reasoning",
    ];
    const REQUIRED: u64 = required(Self::KEYS, &[b"role"]);

    fn set(&mut self, i: usize, c: &mut Cursor<'q>) -> Option<()> {
        match i {
            0 => self.role = c.owned()?,
            // Text; content parts (an array) are left to the typed parse.
            1 => self.content = c.text()?.map(|t| ChatContent::Text(t.into_owned())),
            2 => self.name = c.owned_or_null()?,
            3 => self.tool_calls = c.list()?,
            4 => self.tool_call_id = c.owned_or_null()?,
            5 => self.reasoning_content = c.owned_or_null()?,
            6 => self.refusal = c.owned_or_null()?,
            7 => self.reasoning = c.owned_or_null()?,
            _ => return None,
        }
        Some(())
    }
}
