//! OpenAI Responses API wire types: the request a client sends and the output items and
//! usage of the `response` object Tollgate writes back when it serves the Responses API
//! from another dialect.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `POST /v1/responses`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ResponsesRequest {
    pub model: String,
    #[serde(default)]
    pub input: Option<Input>,
    #[serde(default)]
    pub instructions: Option<String>,
    #[serde(default, deserialize_with = "super::null_as_default")]
    pub tools: Vec<Value>,
    #[serde(default)]
    pub tool_choice: Option<Value>,
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub top_logprobs: Option<u32>,
    #[serde(default)]
    pub max_output_tokens: Option<u32>,
    #[serde(default)]
    pub reasoning: Option<ReasoningParam>,
    #[serde(default)]
    pub text: Option<TextParam>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub store: Option<bool>,
    #[serde(default, deserialize_with = "super::null_as_default")]
    pub include: Vec<String>,
    #[serde(default)]
    pub previous_response_id: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub metadata: Option<Value>,
    /// Every other field, for the reader to drop or refuse by name (see
    /// [`super::unknown_members`]).
    #[serde(skip)]
    pub extra: Map<String, Value>,
}

/// `input`: a string, or items (read one by one: an "easy" message has no `type`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Input {
    Text(String),
    Items(Vec<Value>),
}

/// `reasoning`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ReasoningParam {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effort: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

/// `text`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct TextParam {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verbosity: Option<String>,
}

/// One input item.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Item {
    Message {
        role: String,
        content: MessageContent,
    },
    FunctionCall {
        call_id: String,
        name: String,
        #[serde(default, deserialize_with = "super::arguments_string")]
        arguments: String,
    },
    FunctionCallOutput {
        call_id: String,
        output: MessageContent,
    },
    /// A call of a freeform (`custom`) tool: its raw text `input`.
    CustomToolCall {
        call_id: String,
        name: String,
        #[serde(default, deserialize_with = "super::null_as_default")]
        input: String,
    },
    CustomToolCallOutput {
        call_id: String,
        output: MessageContent,
    },
    /// A search of the client's deferred tools (Codex's `tool_search`): run by the
    /// client (`execution: "client"`) or by OpenAI.
    ToolSearchCall {
        #[serde(default)]
        call_id: Option<String>,
        #[serde(default, deserialize_with = "super::null_as_default")]
        execution: String,
        #[serde(default)]
        arguments: Value,
    },
    /// Tools a client adds in the conversation (Codex's `additional_tools`), callable
    /// from there on.
    AdditionalTools {
        #[serde(default, deserialize_with = "super::null_as_default")]
        tools: Vec<Value>,
    },
    /// What a tool search found: tools the model may call from now on.
    ToolSearchOutput {
        #[serde(default)]
        call_id: Option<String>,
        #[serde(default, deserialize_with = "super::null_as_default")]
        execution: String,
        #[serde(default, deserialize_with = "super::null_as_default")]
        tools: Vec<Value>,
    },
    Reasoning {
        #[serde(default, deserialize_with = "super::null_as_default")]
        summary: Vec<SummaryText>,
        #[serde(default)]
        encrypted_content: Option<String>,
    },
}

/// A message's content: a string or typed parts.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    Text(String),
    Parts(Vec<InputPart>),
}

/// One typed content part of an input message.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InputPart {
    InputText {
        text: String,
    },
    OutputText {
        text: String,
    },
    InputImage {
        #[serde(default)]
        image_url: Option<String>,
        #[serde(default)]
        file_id: Option<String>,
    },
    InputFile {
        #[serde(default)]
        file_data: Option<String>,
        #[serde(default)]
        file_id: Option<String>,
    },
    Refusal {
        refusal: String,
    },
}

/// A reasoning summary entry.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct SummaryText {
    // Absent from a request: read by nothing (writers name it themselves).
    #[serde(rename = "type", default, deserialize_with = "super::null_as_default")]
    pub kind: String,
    #[serde(default, deserialize_with = "super::null_as_default")]
    pub text: String,
}

/// One output item of a `response`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputItem {
    Message {
        id: String,
        status: &'static str,
        role: &'static str,
        content: Vec<OutputText>,
    },
    FunctionCall {
        id: String,
        call_id: String,
        name: String,
        /// The `namespace` group the client declared the tool in (Codex dispatches a
        /// call of a namespaced tool only with it).
        #[serde(skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
        arguments: String,
        status: &'static str,
    },
    /// A call of a freeform (`custom`) tool, its raw text in `input`.
    CustomToolCall {
        id: String,
        call_id: String,
        name: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
        input: String,
        status: &'static str,
    },
    /// A call of the client's own tool search, its arguments as an object.
    ToolSearchCall {
        id: String,
        call_id: String,
        execution: &'static str,
        arguments: Value,
        status: &'static str,
    },
    Reasoning {
        id: String,
        summary: Vec<SummaryText>,
        #[serde(skip_serializing_if = "Option::is_none")]
        encrypted_content: Option<String>,
    },
}

/// An `output_text` content part.
#[derive(Debug, Clone, Serialize)]
pub struct OutputText {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub text: String,
    pub annotations: [(); 0],
    pub logprobs: [(); 0],
}

impl OutputText {
    /// A part holding `text`.
    pub fn new(text: String) -> OutputText {
        OutputText {
            kind: "output_text",
            text,
            annotations: [],
            logprobs: [],
        }
    }
}

/// `usage` of a `response`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub input_tokens_details: InputDetails,
    pub output_tokens: u64,
    pub output_tokens_details: OutputDetails,
    pub total_tokens: u64,
}

/// `input_tokens_details`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct InputDetails {
    pub cached_tokens: u64,
}

/// `output_tokens_details`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct OutputDetails {
    pub reasoning_tokens: u64,
}

/// The top-level fields [`ResponsesRequest`] reads.
pub const RESPONSES_REQUEST_FIELDS: &[&str] = &[
    "model",
    "input",
    "instructions",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "temperature",
    "top_p",
    "top_logprobs",
    "max_output_tokens",
    "reasoning",
    "text",
    "stream",
    "store",
    "include",
    "previous_response_id",
    "user",
    "metadata",
];
