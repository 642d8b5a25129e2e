//! The meter against provider wire shapes, fed at every possible split point.

use super::*;

const OPENAI_STREAM: &str = concat!(
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello there\"},\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":1200,\"completion_tokens\":40,\"total_tokens\":1240,\"prompt_tokens_details\":{\"cached_tokens\":1024,\"audio_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":16,\"audio_tokens\":0}}}\n\n",
    "data: [DONE]\n\n",
);

const ANTHROPIC_STREAM: &str = concat!(
    "event: message_start\r\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":25,\"cache_creation_input_tokens\":300,\"cache_read_input_tokens\":2000,\"output_tokens\":1}}}\r\n\r\n",
    "event: ping\r\ndata: {\"type\": \"ping\"}\r\n\r\n",
    "event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi!\"}}\r\n\r\n",
    "event: message_delta\r\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":57}}\r\n\r\n",
    "event: message_stop\r\ndata: {\"type\":\"message_stop\"}\r\n\r\n",
);

const GEMINI_STREAM: &str = concat!(
    "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hel\"}],\"role\": \"model\"}}],\"usageMetadata\": {\"promptTokenCount\": 10,\"candidatesTokenCount\": 1,\"totalTokenCount\": 11},\"modelVersion\": \"gemini-2.5-flash\"}\r\n\r\n",
    "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"lo\"}],\"role\": \"model\"},\"finishReason\": \"STOP\"}],\"usageMetadata\": {\"promptTokenCount\": 110,\"candidatesTokenCount\": 12,\"totalTokenCount\": 152,\"cachedContentTokenCount\": 100,\"thoughtsTokenCount\": 30},\"modelVersion\": \"gemini-2.5-flash\"}\r\n\r\n",
);

const RESPONSES_STREAM: &str = concat!(
    "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_1\",\"status\":\"in_progress\",\"usage\":null}}\n\n",
    "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hi\"}\n\n",
    "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\",\"status\":\"completed\",\"usage\":{\"input_tokens\":36,\"input_tokens_details\":{\"cached_tokens\":6},\"output_tokens\":87,\"output_tokens_details\":{\"reasoning_tokens\":64},\"total_tokens\":123}}}\n\n",
);

fn run_split(kind: ProviderKind, stream: bool, body: &str, split: usize) -> Option<Usage> {
    let mut m = UsageMeter::new(kind, stream);
    let (a, b) = body.as_bytes().split_at(split);
    m.feed(a);
    m.feed(b);
    m.finish()
}

fn every_split(kind: ProviderKind, stream: bool, body: &str, want: Usage) {
    for split in 0..=body.len() {
        assert_eq!(
            run_split(kind, stream, body, split),
            Some(want),
            "split at {split}"
        );
    }
    let mut m = UsageMeter::new(kind, stream);
    for b in body.as_bytes() {
        m.feed(std::slice::from_ref(b));
    }
    assert_eq!(m.finish(), Some(want), "byte by byte");
}

#[test]
fn openai_stream_final_usage_chunk() {
    let want = Usage {
        input: 176,
        output: 40,
        cache_read: 1024,
        cache_write: 0,
        reasoning: 16,
    };
    every_split(ProviderKind::OpenAi, true, OPENAI_STREAM, want);
}

#[test]
fn openai_responses_api_completed_event() {
    let want = Usage {
        input: 30,
        output: 87,
        cache_read: 6,
        cache_write: 0,
        reasoning: 64,
    };
    every_split(ProviderKind::OpenAi, true, RESPONSES_STREAM, want);
}

#[test]
fn anthropic_start_plus_delta() {
    let want = Usage {
        input: 25,
        output: 57,
        cache_read: 2000,
        cache_write: 300,
        reasoning: 0,
    };
    every_split(ProviderKind::Anthropic, true, ANTHROPIC_STREAM, want);
}

#[test]
fn gemini_last_usage_metadata_wins() {
    let want = Usage {
        input: 10,
        output: 42,
        cache_read: 100,
        cache_write: 0,
        reasoning: 30,
    };
    every_split(ProviderKind::Gemini, true, GEMINI_STREAM, want);
}

#[test]
fn whole_json_bodies() {
    let chat = r#"{"id":"chatcmpl-2","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"The word \"usage\": fine"},"finish_reason":"stop"}],"usage":{"prompt_tokens":19,"completion_tokens":10,"total_tokens":29,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}"#;
    every_split(
        ProviderKind::OpenAi,
        false,
        chat,
        Usage {
            input: 19,
            output: 10,
            ..Usage::default()
        },
    );
    let embed = r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,-0.2]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":8,"total_tokens":8}}"#;
    every_split(
        ProviderKind::OpenAi,
        false,
        embed,
        Usage {
            input: 8,
            ..Usage::default()
        },
    );
    let deepseek = r#"{"choices":[],"usage":{"prompt_tokens":100,"completion_tokens":5,"total_tokens":105,"prompt_cache_hit_tokens":64,"prompt_cache_miss_tokens":36}}"#;
    every_split(
        ProviderKind::OpenAi,
        false,
        deepseek,
        Usage {
            input: 36,
            output: 5,
            cache_read: 64,
            ..Usage::default()
        },
    );
    let claude = r#"{"id":"msg_2","type":"message","content":[{"type":"text","text":"Hi"}],"usage":{"input_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":4,"output_tokens":6}}"#;
    every_split(
        ProviderKind::Anthropic,
        false,
        claude,
        Usage {
            input: 12,
            output: 6,
            cache_read: 4,
            ..Usage::default()
        },
    );
    let gem = r#"{"candidates":[{"content":{"parts":[{"text":"Hi"}]}}],"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":2,"totalTokenCount":7}}"#;
    every_split(
        ProviderKind::Gemini,
        false,
        gem,
        Usage {
            input: 5,
            output: 2,
            ..Usage::default()
        },
    );
}

#[test]
fn silent_or_cut_streams_report_nothing_but_count_text() {
    let cut = &OPENAI_STREAM[..OPENAI_STREAM.find("\"choices\":[],").unwrap_or(0)];
    let mut m = UsageMeter::new(ProviderKind::OpenAi, true);
    m.feed(cut.as_bytes());
    assert_eq!(m.finish(), None);
    assert_eq!(m.text_chars(), "Hello there".len() as u64);
}

#[test]
fn huge_lines_do_not_grow_memory() {
    let mut m = UsageMeter::new(ProviderKind::OpenAi, true);
    let big = format!(
        "data: {{\"choices\":[{{\"delta\":{{\"content\":\"{}\"}}}}]}}",
        "x".repeat(MAX_LINE * 2)
    );
    for chunk in big.as_bytes().chunks(4096) {
        m.feed(chunk);
        assert!(m.buf.len() <= MAX_LINE);
    }
    m.feed(b"\n\n");
    m.feed(OPENAI_STREAM.as_bytes());
    assert_eq!(m.finish().map(|u| u.output), Some(40));
}

#[test]
fn openai_compatible_providers() {
    // xAI: OpenAI fields, reasoning in completion_tokens_details, extra fields.
    let xai = r#"{"id":"x","object":"chat.completion","model":"grok-3-mini","choices":[],"usage":{"prompt_tokens":32,"completion_tokens":9,"total_tokens":135,"prompt_tokens_details":{"text_tokens":32,"audio_tokens":0,"image_tokens":0,"cached_tokens":6},"completion_tokens_details":{"reasoning_tokens":94,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0},"num_sources_used":0}}"#;
    every_split(
        ProviderKind::OpenAi,
        false,
        xai,
        Usage {
            input: 26,
            output: 9,
            cache_read: 6,
            cache_write: 0,
            reasoning: 94,
        },
    );
    // Ollama's OpenAI endpoint: plain prompt/completion counts.
    let ollama = r#"{"id":"chatcmpl-1","object":"chat.completion","model":"llama3.2","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":26,"completion_tokens":298,"total_tokens":324}}"#;
    every_split(
        ProviderKind::OpenAi,
        false,
        ollama,
        Usage {
            input: 26,
            output: 298,
            ..Usage::default()
        },
    );
    // OpenRouter: SSE comment keep-alives, usage (with cost) in the last chunk.
    let openrouter = concat!(
        ": OPENROUTER PROCESSING\n\n",
        "data: {\"id\":\"gen-1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n",
        ": OPENROUTER PROCESSING\n\n",
        "data: {\"id\":\"gen-1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":4,\"total_tokens\":14,\"cost\":0.0000195,\"prompt_tokens_details\":{\"cached_tokens\":2},\"completion_tokens_details\":{\"reasoning_tokens\":0}}}\n\n",
        "data: [DONE]\n\n",
    );
    every_split(
        ProviderKind::OpenAi,
        true,
        openrouter,
        Usage {
            input: 8,
            output: 4,
            cache_read: 2,
            ..Usage::default()
        },
    );
    // DeepSeek stream: hit/miss fields in the final chunk.
    let deepseek = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":100,\"completion_tokens\":7,\"total_tokens\":107,\"prompt_cache_hit_tokens\":96,\"prompt_cache_miss_tokens\":4,\"completion_tokens_details\":{\"reasoning_tokens\":3}}}\n\ndata: [DONE]\n\n";
    every_split(
        ProviderKind::OpenAi,
        true,
        deepseek,
        Usage {
            input: 4,
            output: 7,
            cache_read: 96,
            cache_write: 0,
            reasoning: 3,
        },
    );
}

#[test]
fn a_cut_anthropic_stream_is_partial() {
    let cut = &ANTHROPIC_STREAM[..ANTHROPIC_STREAM.find("event: message_delta").unwrap_or(0)];
    let mut m = UsageMeter::new(ProviderKind::Anthropic, true);
    m.feed(cut.as_bytes());
    assert_eq!(
        m.finish().map(|u| (u.input, u.cache_read)),
        Some((25, 2000))
    );
    assert!(!m.complete());
    let mut m = UsageMeter::new(ProviderKind::Anthropic, true);
    m.feed(ANTHROPIC_STREAM.as_bytes());
    assert!(m.finish().is_some() && m.complete());
}

#[test]
fn json_text_is_counted_alike_with_or_without_usage() {
    // With usage the tail is counted only when asked; the count must not change.
    let with = r#"{"choices":[{"message":{"content":"Hello there"}}],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#;
    let without = r#"{"choices":[{"message":{"content":"Hello there"}}]}"#;
    for (body, reported) in [(with, true), (without, false)] {
        let mut m = UsageMeter::new(ProviderKind::OpenAi, false);
        m.feed(body.as_bytes());
        assert_eq!(m.finish().is_some(), reported);
        assert_eq!(m.text_chars(), "Hello there".len() as u64);
        assert_eq!(m.finish().is_some(), reported);
        assert_eq!(m.text_chars(), "Hello there".len() as u64);
    }
}

/// [`GEMINI_STREAM`] as `:streamGenerateContent` sends it without `alt=sse`: one JSON
/// array, its elements pretty-printed and separated by `,\r\n`.
const GEMINI_ARRAY: &str = concat!(
    "[{\n  \"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hel\"}],\"role\": \"model\"}}],\n",
    "  \"usageMetadata\": {\"promptTokenCount\": 10,\"candidatesTokenCount\": 1,\"totalTokenCount\": 11},\n",
    "  \"modelVersion\": \"gemini-2.5-flash\"\n}\n,\r\n",
    "{\n  \"candidates\": [{\"content\": {\"parts\": [{\"text\": \"lo \\\"}{[\\\\\"}],\"role\": \"model\"},\"finishReason\": \"STOP\"}],\n",
    "  \"usageMetadata\": {\"promptTokenCount\": 110,\"candidatesTokenCount\": 12,\"totalTokenCount\": 152,\"cachedContentTokenCount\": 100,\"thoughtsTokenCount\": 30},\n",
    "  \"modelVersion\": \"gemini-2.5-flash\"\n}\n]",
);

#[test]
fn gemini_json_array_stream_is_metered_like_sse() {
    let want = Usage {
        input: 10,
        output: 42,
        cache_read: 100,
        cache_write: 0,
        reasoning: 30,
    };
    every_split(ProviderKind::Gemini, true, GEMINI_ARRAY, want);
    let mut m = UsageMeter::new(ProviderKind::Gemini, true);
    m.feed(GEMINI_ARRAY.as_bytes());
    assert_eq!(m.finish(), Some(want));
    assert!(m.complete(), "the finishing element arrived");
    assert!(m.is_stream());
    // "Hel" + `lo "}{[\` (escapes count as one character each)
    assert_eq!(m.text_chars(), 3 + 8);
    // Cut before the finishing element: the first element's counts, not complete.
    let cut = &GEMINI_ARRAY[..GEMINI_ARRAY.find(",\r\n").unwrap_or(0)];
    let mut m = UsageMeter::new(ProviderKind::Gemini, true);
    m.feed(cut.as_bytes());
    assert_eq!(m.finish().map(|u| (u.input, u.output)), Some((10, 1)));
    assert!(!m.complete());
}

#[test]
fn a_big_json_body_keeps_only_its_tail() {
    let text = "y".repeat(3 * JSON_TAIL);
    let body = format!(
        r#"{{"choices":[{{"message":{{"content":"{text}"}}}}],"usage":{{"prompt_tokens":7,"completion_tokens":3}}}}"#
    );
    let mut m = UsageMeter::new(ProviderKind::OpenAi, false);
    for chunk in body.as_bytes().chunks(10_000) {
        m.feed(chunk);
        assert!(m.buf.len() <= 2 * JSON_TAIL, "{}", m.buf.len());
    }
    assert!(m.buf.len() > JSON_TAIL, "the tail is kept");
    assert_eq!(m.finish().map(|u| (u.input, u.output)), Some((7, 3)));
    assert!(m.complete() && !m.is_stream());
    // Without usage the tail is let go once its text is counted.
    let silent = r#"{"choices":[{"message":{"content":"Hello there"}}]}"#;
    let mut m = UsageMeter::new(ProviderKind::OpenAi, false);
    m.feed(silent.as_bytes());
    assert_eq!(m.finish(), None);
    assert!(!m.complete());
    assert_eq!(m.text_chars(), 11);
    assert!(m.buf.is_empty());
    // The part of a big body let go is counted as it leaves (text of the key whose
    // value it starts in, to the cut).
    let mut m = UsageMeter::new(ProviderKind::OpenAi, false);
    let head = format!(r#"{{"content":"{}"#, "a".repeat(2 * JSON_TAIL));
    m.feed(head.as_bytes());
    assert_eq!(m.text.chars(), JSON_TAIL as u64);
    assert_eq!(m.buf.len(), JSON_TAIL);
}

#[test]
fn finishing_is_once_and_later_bytes_are_not_seen() {
    let mut m = UsageMeter::new(ProviderKind::OpenAi, true);
    m.feed(b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":1}}");
    let first = m.finish();
    assert_eq!(
        first.map(|u| u.input),
        Some(4),
        "a last line without newline counts"
    );
    m.feed(b"\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":9}}\n\n");
    assert_eq!(m.finish(), first);
    // A report of cache tokens alone is no report; an empty chunk changes nothing.
    let mut m = UsageMeter::new(ProviderKind::Anthropic, false);
    m.feed(b"");
    m.feed(br#"{"usage":{"cache_read_input_tokens":5}}"#);
    assert_eq!(m.finish(), None);
}

#[test]
fn later_events_fill_in_only_what_they_carry() {
    let mut r = Reported {
        input: Some(1),
        output: Some(2),
        cache_read: Some(3),
        cache_write: Some(4),
        reasoning: Some(5),
        complete: false,
    };
    r.merge(Reported {
        output: Some(20),
        ..Reported::default()
    });
    assert_eq!(
        r.usage(),
        Usage {
            input: 1,
            output: 20,
            cache_read: 3,
            cache_write: 4,
            reasoning: 5,
        }
    );
    assert!(!r.complete);
    r.merge(Reported {
        input: Some(10),
        cache_read: Some(30),
        cache_write: Some(40),
        reasoning: Some(50),
        complete: true,
        ..Reported::default()
    });
    assert_eq!(
        r.usage(),
        Usage {
            input: 10,
            output: 20,
            cache_read: 30,
            cache_write: 40,
            reasoning: 50,
        }
    );
    assert!(r.complete);
    r.merge(Reported::default());
    assert!(r.complete, "complete stays complete");
    assert!(Reported {
        output: Some(0),
        ..Reported::default()
    }
    .any());
    assert!(Reported {
        input: Some(0),
        ..Reported::default()
    }
    .any());
    assert!(!Reported::default().any());
}

#[test]
fn a_json_array_stream_skips_giant_elements_and_leading_whitespace() {
    let giant = format!(
        r#"{{"candidates":[{{"content":{{"parts":[{{"text":"{}"}}]}}}}]}}"#,
        "z".repeat(MAX_LINE * 2)
    );
    let stream = format!("\n  [{giant},\r\n{}", &GEMINI_ARRAY[1..]);
    let mut m = UsageMeter::new(ProviderKind::Gemini, true);
    m.feed(b"  ");
    m.feed(b"\r\n");
    for chunk in stream.as_bytes().chunks(4096) {
        m.feed(chunk);
        assert!(m.elements.held() <= MAX_LINE);
    }
    assert_eq!(m.finish().map(|u| u.output), Some(42));
    assert_eq!(m.text_chars(), 3 + 8, "the giant element is not counted");
    // A stream cut inside an element: its text still counts for the estimate.
    let mut m = UsageMeter::new(ProviderKind::Gemini, true);
    m.feed(br#"[{"candidates":[{"content":{"parts":[{"text":"abc"#);
    assert_eq!(m.finish(), None);
    assert_eq!(m.text_chars(), 3);
    // An element that is not an object, and bytes between elements, are passed over.
    let mut m = UsageMeter::new(ProviderKind::Gemini, true);
    m.feed(br#"[1, "x", {"usageMetadata":{"promptTokenCount":2}}]"#);
    assert_eq!(m.finish().map(|u| u.input), Some(2));
}

#[test]
fn an_sse_stream_that_starts_with_whitespace_is_still_sse() {
    let mut m = UsageMeter::new(ProviderKind::OpenAi, true);
    m.feed(b"\n");
    m.feed(OPENAI_STREAM.as_bytes());
    assert_eq!(m.finish().map(|u| u.output), Some(40));
}

#[test]
fn a_json_body_of_exactly_twice_the_tail_is_kept_whole() {
    // At exactly 2 * JSON_TAIL nothing is let go yet, so a string crossing the middle is
    // counted whole at the end.
    let filler = "a".repeat(2 * JSON_TAIL - r#"{"content":""}"#.len());
    let body = format!(r#"{{"content":"{filler}"}}"#);
    assert_eq!(body.len(), 2 * JSON_TAIL);
    let mut m = UsageMeter::new(ProviderKind::OpenAi, false);
    m.feed(body.as_bytes());
    assert_eq!(m.buf.len(), 2 * JSON_TAIL);
    assert_eq!(m.finish(), None);
    assert_eq!(m.text_chars(), filler.len() as u64);
}

#[test]
fn an_sse_line_of_exactly_the_bound_is_read_and_one_past_it_is_skipped() {
    let usage = r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2},"pad":""}"#;
    let line = |len: usize| {
        let pad = "p".repeat(len - "data: ".len() - usage.len());
        format!(
            "data: {}",
            usage.replace(r#""pad":"""#, &format!(r#""pad":"{pad}""#))
        )
    };
    for (len, seen) in [(MAX_LINE, true), (MAX_LINE + 1, false)] {
        let l = line(len);
        assert_eq!(l.len(), len);
        let mut m = UsageMeter::new(ProviderKind::OpenAi, true);
        m.feed(l.as_bytes());
        m.feed(b"\n\n");
        assert_eq!(m.finish().is_some(), seen, "a line of {len} bytes");
    }
}

#[test]
fn the_line_after_a_skipped_one_starts_clean() {
    let mut m = UsageMeter::new(ProviderKind::OpenAi, true);
    let big = format!("data: {{\"t\":\"{}", "x".repeat(MAX_LINE));
    m.feed(big.as_bytes());
    m.feed(b"xx\"}");
    m.feed(b"\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1}}\n");
    assert_eq!(m.finish().map(|u| u.input), Some(5));
}

#[test]
fn a_json_array_element_carried_over_is_kept_up_to_the_bound() {
    // One element of `len` bytes carrying usage.
    let element = |len: usize| {
        let head = r#"{"usageMetadata":{"promptTokenCount":4},"pad":""#;
        format!("{head}{}\"}}", "p".repeat(len - head.len() - 2))
    };
    // All of it but its closing brace is carried over to the next chunk: kept while that
    // part is within the bound.
    for (carried, seen) in [(MAX_LINE, true), (MAX_LINE + 1, false)] {
        let e = element(carried + 1);
        let mut m = UsageMeter::new(ProviderKind::Gemini, true);
        m.feed(b"[");
        m.feed(&e.as_bytes()[..carried]);
        m.feed(b"}]");
        assert_eq!(m.finish().is_some(), seen, "{carried} bytes carried over");
    }
    // Carried over in several pieces, the pieces add up.
    let e = element(3000);
    let mut m = UsageMeter::new(ProviderKind::Gemini, true);
    m.feed(b"[");
    for piece in e.as_bytes().chunks(1000) {
        m.feed(piece);
    }
    m.feed(b"]");
    assert_eq!(m.finish().map(|u| u.input), Some(4));
}

/// The stripper holds an incomplete event back up to 64 KiB, so that a long chunk split
/// across reads (a big tool call) still loses its `"usage":null` member; a longer one
/// passes through as it comes.
#[test]
fn the_stripper_holds_an_incomplete_event_up_to_64_kib() {
    use bytes::Bytes;
    let event = |len: usize| {
        format!(
            "data: {{\"choices\":[{{\"delta\":{{\"content\":\"{}\"}}}}],\"usage\":null}}\n\n",
            "x".repeat(len)
        )
    };
    let stripped = |len: usize| {
        format!(
            "data: {{\"choices\":[{{\"delta\":{{\"content\":\"{}\"}}}}]}}\n\n",
            "x".repeat(len)
        )
    };
    for (len, edited) in [(60 * 1024, true), (70 * 1024, false)] {
        let whole = event(len);
        let (a, b) = whole.split_at(whole.len() - 10);
        let mut s = strip::UsageChunkStripper::new();
        let mut out = s.process(Bytes::from(a.to_owned()), false).to_vec();
        assert_eq!(out.is_empty(), edited, "{len}: held back or let go");
        out.extend_from_slice(&s.process(Bytes::from(b.to_owned()), true));
        let want = if edited { stripped(len) } else { whole.clone() };
        assert!(out == want.as_bytes(), "{len}");
    }
}

/// The stripper's bound is exact: an incomplete event of 64 KiB is held, one byte more
/// is let go, whether it follows whole events in its chunk or was held over from one.
#[test]
fn the_stripper_bound_is_exact_in_either_path() {
    use bytes::Bytes;
    const BOUND: usize = 64 * 1024;
    let part = |len: usize| format!("data: {{\"t\":\"{}", "x".repeat(len - 12));
    assert_eq!(part(BOUND).len(), BOUND);
    let run = |chunks: &[String]| {
        let mut s = strip::UsageChunkStripper::new();
        chunks
            .iter()
            .map(|c| s.process(Bytes::from(c.clone()), false).len())
            .collect::<Vec<_>>()
    };
    // A chunk that is all one incomplete event.
    assert_eq!(run(&[part(BOUND)]), [0]);
    assert_eq!(run(&[part(BOUND + 1)]), [BOUND + 1]);
    // Whole events first: they pass, the incomplete one after them is held.
    let whole = "data: {\"a\":1}\n\n".to_owned();
    assert_eq!(run(&[whole.clone() + &part(BOUND)]), [whole.len()]);
    assert_eq!(
        run(&[whole.clone() + &part(BOUND + 1)]),
        [whole.len() + BOUND + 1]
    );
    // Held over from an earlier chunk, grown to the bound, then past it.
    let head = "data: {".to_owned();
    let grow = "x".repeat(BOUND - head.len());
    assert_eq!(run(&[head.clone(), grow.clone()]), [0, 0]);
    assert_eq!(
        run(&[head, grow, "y".into()]),
        [0, 0, BOUND + 1],
        "past the bound everything held goes"
    );
}

/// An SSE event may carry `id:` or `event:` lines before its data: the usage event is
/// still found and removed.
#[test]
fn the_usage_event_is_removed_after_other_fields_of_the_event() {
    use bytes::Bytes;
    let stream = concat!(
        "id: 1\ndata: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n",
        "id: 2\nevent: chunk\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":3}}\n\n",
        "data: [DONE]\n\n",
    );
    let mut s = strip::UsageChunkStripper::new();
    let out = s.process(Bytes::from_static(stream.as_bytes()), true);
    assert_eq!(
        String::from_utf8_lossy(&out),
        "id: 1\ndata: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: [DONE]\n\n"
    );
    assert!(s.removed());
}

/// The meter as it read streams before it cut out only the lines that hold `"usage`:
/// every line split off and read, its text counted; the same bound on a carried line.
fn line_by_line(kind: ProviderKind, chunks: &[&[u8]]) -> (Option<Usage>, bool, u64) {
    let (mut buf, mut skipping) = (Vec::<u8>::new(), false);
    let (mut reported, mut text) = (Reported::default(), PendingText::default());
    let mut line = |l: &[u8], reported: &mut Reported| {
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        if let Some(data) = l.strip_prefix(b"data:") {
            let data = data.trim_ascii_start();
            text.push(data);
            usage_of(kind, data, reported);
        }
    };
    for chunk in chunks {
        let mut rest = *chunk;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            if skipping {
                skipping = false;
            } else {
                buf.extend_from_slice(&rest[..nl]);
                line(&buf, &mut reported);
                buf.clear();
            }
            rest = &rest[nl + 1..];
        }
        if !rest.is_empty() && !skipping {
            if buf.len() + rest.len() > MAX_LINE {
                buf.clear();
                skipping = true;
            } else {
                buf.extend_from_slice(rest);
            }
        }
    }
    if !buf.is_empty() && !skipping {
        line(&buf, &mut reported);
    }
    let usage = reported.any().then(|| reported.usage());
    (usage, reported.complete, text.chars())
}

/// SSE-like lines: usage events of each dialect, content, `"usage"` inside text, other
/// fields, comments, CRLF or LF ends, and now and then no line end at all.
fn sse_stream() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    let line = prop::sample::select(vec![
        r#"data: {"choices":[{"delta":{"content":"Hel lo"}}],"usage":null}"#,
        r#"data: {"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":2}}}"#,
        r#"data: {"choices":[{"delta":{"content":"a \"usage\":{\"prompt_tokens\":9} b"}}]}"#,
        r#"data:{"type":"message_start","message":{"usage":{"input_tokens":5,"cache_read_input_tokens":1,"output_tokens":1}}}"#,
        r#"data: {"type":"message_delta","usage":{"output_tokens":11}}"#,
        r#"data: {"candidates":[{"content":{"parts":[{"text":"hi"}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":2}}"#,
        r#"data: {"type":"response.completed","response":{"usage":{"input_tokens":6,"output_tokens":2}}}"#,
        "event: usage",
        ": \"usage\" in a comment",
        "data: [DONE]",
        "data: {\"usage\":",
        "",
    ]);
    let end = prop::sample::select(vec!["\n", "\n", "\r\n", ""]);
    prop::collection::vec((line, end), 0..12).prop_map(|lines| {
        lines
            .iter()
            .flat_map(|(l, e)| [l.as_bytes(), e.as_bytes()].concat())
            .collect()
    })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
    /// Cutting out only the lines that hold `"usage`, and counting the text from the
    /// kept chunks, meters every stream as reading it line by line did, however cut.
    #[test]
    fn the_usage_lines_and_the_kept_text_meter_as_reading_every_line(
        body in sse_stream(),
        cuts in proptest::collection::vec(proptest::prelude::any::<proptest::sample::Index>(), 0..6),
        kind in proptest::sample::select(vec![ProviderKind::OpenAi, ProviderKind::Anthropic, ProviderKind::Gemini]),
    ) {
        let mut at: Vec<usize> = cuts.iter().map(|i| i.index(body.len() + 1)).collect();
        at.extend([0, body.len()]);
        at.sort_unstable();
        let chunks: Vec<&[u8]> = at.windows(2).map(|w| &body[w[0]..w[1]]).collect();
        let mut m = UsageMeter::new(kind, true);
        for c in &chunks {
            m.feed(c);
        }
        let usage = m.finish();
        proptest::prop_assert_eq!(
            (usage, m.complete(), m.text_chars()),
            line_by_line(kind, &chunks),
            "{}", String::from_utf8_lossy(&body)
        );
    }
}

/// Lines past the bound, carried over several chunks, are passed over alike, and the
/// text of the lines around them counted alike, with many chunks kept and split.
#[test]
fn over_long_lines_and_many_chunks_meter_as_reading_every_line() {
    let long = format!("data: {{\"t\":\"{}\"}}", "x".repeat(MAX_LINE));
    let usage = r#"data: {"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3}}"#;
    let word = r#"data: {"choices":[{"delta":{"content":"w"}}]}"#;
    let mut body = String::new();
    for _ in 0..200 {
        body.push_str(word);
        body.push_str("\n\n");
    }
    body.push_str(&long);
    body.push('\n');
    body.push_str(usage);
    body.push_str("\n\n");
    body.push_str(&long[..MAX_LINE - 10]);
    body.push('\n');
    body.push_str(usage);
    for piece in [7, 1000, 70_000] {
        let chunks: Vec<&[u8]> = body.as_bytes().chunks(piece).collect();
        let mut m = UsageMeter::new(ProviderKind::OpenAi, true);
        for c in &chunks {
            m.feed(c);
        }
        let usage = m.finish();
        let got = (usage, m.complete(), m.text_chars());
        assert_eq!(
            got,
            line_by_line(ProviderKind::OpenAi, &chunks),
            "pieces of {piece}"
        );
        assert!(got.0.is_some() && got.2 >= 200, "{got:?}");
    }
}

/// The kept text is counted on copies: asking twice gives the same count, and a line
/// without its line feed counts only once the stream has ended.
#[test]
fn the_kept_text_counts_the_same_however_often_asked() {
    let mut m = UsageMeter::new(ProviderKind::OpenAi, true);
    m.feed(b"data: {\"choices\":[{\"delta\":{\"content\":\"abc\"}}]}\n\n");
    m.feed(b"data: {\"choices\":[{\"delta\":{\"content\":\"de\"}}]}");
    assert_eq!(
        (m.text_chars(), m.text_chars()),
        (3, 3),
        "the last line is open"
    );
    assert_eq!(m.finish(), None);
    assert_eq!((m.text_chars(), m.text_chars()), (5, 5));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
    /// The meter's search of each chunk is the stripper's: what it hands on is where
    /// `"usage` first occurs before the chunk's last line feed, and the stripper told it
    /// sends the client exactly what its own search would have, however the stream is cut.
    #[test]
    fn the_meters_search_serves_the_stripper_unchanged(
        body in sse_stream(),
        cuts in proptest::collection::vec(proptest::prelude::any::<proptest::sample::Index>(), 0..6),
    ) {
        use bytes::Bytes;
        let mut at: Vec<usize> = cuts.iter().map(|i| i.index(body.len() + 1)).collect();
        at.extend([0, body.len()]);
        at.sort_unstable();
        let mut m = UsageMeter::new(ProviderKind::OpenAi, true);
        let (mut told, mut searching) = (strip::UsageChunkStripper::new(), strip::UsageChunkStripper::new());
        let last = at.len() - 2;
        for (n, w) in at.windows(2).enumerate() {
            let chunk = Bytes::copy_from_slice(&body[w[0]..w[1]]);
            let end = n == last;
            let found = m.feed_bytes(&chunk);
            // Searched once the stream shows itself an event stream (a byte other than
            // whitespace), in every chunk with a line feed.
            let framed = body[..w[1]].iter().any(|b| !b.is_ascii_whitespace());
            let want = memchr::memrchr(b'\n', &chunk)
                .filter(|_| framed)
                .map(|nl| crate::providers::read::usage_key_in(&chunk[..nl]));
            proptest::prop_assert_eq!(found.and_then(|f| f.in_chunk(&chunk)), want);
            proptest::prop_assert_eq!(
                told.process_searched(chunk.clone(), end, found),
                searching.process(chunk, end)
            );
        }
        proptest::prop_assert_eq!(told.removed(), searching.removed());
    }
}

/// Cut anywhere in two, a stream whose usage key may run across the cut (held back in
/// part by the stripper) is stripped alike with the meter's finding and without.
#[test]
fn the_meters_finding_serves_after_held_bytes_at_every_cut() {
    use bytes::Bytes;
    let stream = concat!(
        "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n",
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\n",
        "data: {\"choices\":[{\"delta\":{\"content\":\"a \\\"usage\\\" b\"}}],\"usage\":null}\n\n",
        "data: [DONE]\n\n",
    );
    let want = concat!(
        "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n",
        "data: {\"choices\":[{\"delta\":{\"content\":\"a \\\"usage\\\" b\"}}]}\n\n",
        "data: [DONE]\n\n",
    );
    for cut in 0..=stream.len() {
        let mut m = UsageMeter::new(ProviderKind::OpenAi, true);
        let mut s = strip::UsageChunkStripper::new();
        let mut out = Vec::new();
        for (chunk, end) in [(&stream[..cut], false), (&stream[cut..], true)] {
            let chunk = Bytes::copy_from_slice(chunk.as_bytes());
            let found = m.feed_bytes(&chunk);
            out.extend_from_slice(&s.process_searched(chunk, end, found));
        }
        assert_eq!(String::from_utf8_lossy(&out), want, "cut at {cut}");
        assert_eq!(m.finish().map(|u| u.input), Some(3), "cut at {cut}");
    }
}

/// A finding is used only for the bytes it was made of: handed another chunk of the
/// same length, the stripper searches that one itself.
#[test]
fn a_finding_of_other_bytes_is_not_used() {
    use bytes::Bytes;
    let usage = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3}}\n\n";
    let content = format!("data: {{\"x\":\"{}\"}}\n\n", "y".repeat(usage.len() - 16));
    assert_eq!(content.len(), usage.len());
    let mut m = UsageMeter::new(ProviderKind::OpenAi, true);
    let stale = m.feed_bytes(&Bytes::from(content));
    assert_eq!(
        stale.map(|f| f.at),
        Some(None),
        "no key in the content event"
    );
    let mut s = strip::UsageChunkStripper::new();
    let out = s.process_searched(Bytes::from_static(usage.as_bytes()), false, stale);
    assert!(out.is_empty() && s.removed(), "the usage event still goes");
}
