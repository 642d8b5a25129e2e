//! Finish and stop reasons to and from each dialect (TRANSLATION_NOTES 3.2): a closed
//! map with an explicit fallback, so a new upstream value never reaches a client SDK
//! as a string it rejects.

use super::ir::Finish;

/// OpenAI `finish_reason`.
pub fn from_openai(s: &str) -> Finish {
    match s {
        "stop" => Finish::Stop,
        "length" => Finish::Length,
        "tool_calls" | "function_call" => Finish::ToolUse,
        "content_filter" => Finish::ContentFilter,
        other => Finish::Other(other.to_owned()),
    }
}

/// An OpenAI finish reason given the answer's calls: OpenAI says `stop` for calls it was
/// told to make (a named `tool_choice`), and some compatible hosts for any call; the
/// other dialects say the turn ended for its tools (Anthropic's tool runners go on only
/// on `tool_use`).
pub fn of_openai_calls(f: Finish, calls: bool) -> Finish {
    match f {
        Finish::Stop if calls => Finish::ToolUse,
        f => f,
    }
}

/// Anthropic `stop_reason` (with `stop_sequence`).
pub fn from_anthropic(s: &str, sequence: Option<&str>) -> Finish {
    match s {
        "end_turn" => Finish::Stop,
        "max_tokens" | "model_context_window_exceeded" => Finish::Length,
        "tool_use" => Finish::ToolUse,
        "stop_sequence" => Finish::StopSequence(sequence.map(str::to_owned)),
        "refusal" => Finish::Refusal,
        "pause_turn" => Finish::PauseTurn,
        other => Finish::Other(other.to_owned()),
    }
}

/// Gemini `finishReason`; `STOP` means a tool call when the turn held one.
pub fn from_gemini(s: &str, saw_call: bool) -> Finish {
    match s {
        "STOP" if saw_call => Finish::ToolUse,
        "STOP" => Finish::Stop,
        "MAX_TOKENS" => Finish::Length,
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY"
        | "LANGUAGE" => Finish::ContentFilter,
        "MALFORMED_FUNCTION_CALL" | "UNEXPECTED_TOOL_CALL" => Finish::Error,
        other => Finish::Other(other.to_owned()),
    }
}

/// OpenAI `finish_reason`.
pub fn to_openai(f: &Finish) -> &'static str {
    match f {
        Finish::Length => "length",
        Finish::ToolUse => "tool_calls",
        Finish::ContentFilter | Finish::Refusal => "content_filter",
        Finish::Stop
        | Finish::StopSequence(_)
        | Finish::PauseTurn
        | Finish::Error
        | Finish::Other(_) => "stop",
    }
}

/// Anthropic `stop_reason` and `stop_sequence`.
pub fn to_anthropic(f: &Finish) -> (&'static str, Option<&str>) {
    match f {
        Finish::Length => ("max_tokens", None),
        Finish::ToolUse => ("tool_use", None),
        Finish::StopSequence(Some(s)) => ("stop_sequence", Some(s)),
        Finish::ContentFilter | Finish::Refusal => ("refusal", None),
        Finish::PauseTurn => ("pause_turn", None),
        Finish::Stop | Finish::StopSequence(None) | Finish::Error | Finish::Other(_) => {
            ("end_turn", None)
        }
    }
}

/// Gemini `finishReason`.
pub fn to_gemini(f: &Finish) -> &'static str {
    match f {
        Finish::Stop | Finish::StopSequence(_) | Finish::ToolUse | Finish::PauseTurn => "STOP",
        Finish::Length => "MAX_TOKENS",
        Finish::ContentFilter | Finish::Refusal => "SAFETY",
        Finish::Error => "MALFORMED_FUNCTION_CALL",
        Finish::Other(_) => "OTHER",
    }
}

/// Responses `status` and `incomplete_details.reason`.
pub fn to_responses(f: Option<&Finish>) -> (&'static str, Option<&'static str>) {
    match f {
        Some(Finish::Length) => ("incomplete", Some("max_output_tokens")),
        Some(Finish::ContentFilter | Finish::Refusal) => ("incomplete", Some("content_filter")),
        _ => ("completed", None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_values_fall_back_inside_the_closed_set() {
        let f = from_gemini("SOMETHING_NEW", false);
        assert_eq!(to_openai(&f), "stop");
        assert_eq!(to_anthropic(&f), ("end_turn", None));
        assert_eq!(to_gemini(&f), "OTHER");
        assert_eq!(to_openai(&from_gemini("STOP", true)), "tool_calls");
        let seq = from_anthropic("stop_sequence", Some("###"));
        assert_eq!(to_anthropic(&seq), ("stop_sequence", Some("###")));
        assert_eq!(to_openai(&seq), "stop");
        assert_eq!(
            to_responses(Some(&from_openai("length"))),
            ("incomplete", Some("max_output_tokens"))
        );
    }
}
