//! Endpoints beyond the contract's path list: each one's dialect, label and whether its
//! body names the model; methods in any case; every way a path can smuggle a dot
//! segment; percent-decoding at every position.

use std::borrow::Cow;

use super::*;

/// Every endpoint with the dialect it answers errors in, its label and whether the
/// model comes from the body.
fn all() -> Vec<(Endpoint, Dialect, &'static str, bool)> {
    let gemini = |stream| Endpoint::Gemini {
        model: "gemini-2.0-flash".into(),
        stream,
    };
    vec![
        (
            Endpoint::ChatCompletions,
            Dialect::OpenAi,
            "chat_completions",
            true,
        ),
        (Endpoint::Completions, Dialect::OpenAi, "completions", true),
        (Endpoint::Embeddings, Dialect::OpenAi, "embeddings", true),
        (Endpoint::Responses, Dialect::OpenAi, "responses", true),
        (Endpoint::Models, Dialect::OpenAi, "models", false),
        (Endpoint::Messages, Dialect::Anthropic, "messages", true),
        (
            Endpoint::CountTokens,
            Dialect::Anthropic,
            "count_tokens",
            true,
        ),
        (gemini(false), Dialect::Gemini, "generate_content", false),
        (
            gemini(true),
            Dialect::Gemini,
            "stream_generate_content",
            false,
        ),
        (Endpoint::Health, Dialect::OpenAi, "healthz", false),
    ]
}

#[test]
fn each_endpoint_has_its_dialect_label_and_model_source() {
    for (endpoint, dialect, label, model_in_body) in all() {
        assert_eq!(endpoint.dialect(), dialect, "{endpoint:?}");
        assert_eq!(endpoint.as_str(), label, "{endpoint:?}");
        assert_eq!(endpoint.model_in_body(), model_in_body, "{endpoint:?}");
    }
}

#[test]
fn methods_match_in_any_case_and_only_their_own() {
    assert!(Method::Get.is("GET") && Method::Get.is("get"));
    assert!(Method::Post.is("POST") && Method::Post.is("pOsT"));
    assert!(!Method::Get.is("POST") && !Method::Post.is("GET"));
    assert!(!Method::Post.is("PUT") && !Method::Get.is(""));
    assert_eq!(
        Endpoint::from_request("post", "/v1/chat/completions"),
        Ok(Endpoint::ChatCompletions)
    );
    assert_eq!(
        Endpoint::from_request("POST", "/healthz"),
        Err(PathRejection::MethodNotAllowed)
    );
    assert_eq!(
        Endpoint::from_request("GET", "/v1/chat/completions"),
        Err(PathRejection::MethodNotAllowed)
    );
    assert_eq!(
        Endpoint::from_request("POST", "/v1/models"),
        Err(PathRejection::MethodNotAllowed)
    );
    assert_eq!(
        Endpoint::from_request("GET", "/healthz/"),
        Err(PathRejection::NotFound)
    );
}

#[test]
fn a_dot_segment_is_refused_however_it_is_spelled() {
    let refused = |p: &str| Endpoint::from_request("POST", p) == Err(PathRejection::Traversal);
    for p in [
        "/v1/.",
        "/v1/..",
        "/./v1/chat/completions",
        // An encoded slash makes a segment a later decoder would split.
        "/v1/chat%2fcompletions",
        "/v1/chat%2Fcompletions",
        // Backslashes some servers read as slashes, around a dot segment.
        "/v1/x%5c..%5cadmin",
        "/v1/x\\..",
        "/v1/.\\x",
        "/v1/a\\.\\b",
        // A malformed or non-UTF-8 escape.
        "/v1/%2",
        "/v1/%ff",
    ] {
        assert!(refused(p), "{p}");
    }
    // Dots and backslashes that make no dot segment are only unknown paths.
    for p in [
        "/v1/chat/completions.",
        "/v1/...",
        "/v1/.x",
        "/v1/x..",
        "/v1/a\\b",
        "/v1/a%5cb",
        "/v1/a\\...\\b",
        "/v1/%41",
    ] {
        assert_eq!(
            Endpoint::from_request("POST", p),
            Err(PathRejection::NotFound),
            "{p}"
        );
    }
}

#[test]
fn percent_decoding_at_every_position() {
    assert!(matches!(
        percent_decode("plain-segment"),
        Some(Cow::Borrowed("plain-segment"))
    ));
    assert_eq!(percent_decode("").as_deref(), Some(""));
    assert_eq!(percent_decode("%41").as_deref(), Some("A"));
    assert_eq!(percent_decode("a%41").as_deref(), Some("aA"));
    assert_eq!(percent_decode("ab%41cd").as_deref(), Some("abAcd"));
    assert_eq!(percent_decode("%41%2fb%2F").as_deref(), Some("A/b/"));
    assert_eq!(percent_decode("%C3%A9t%C3%A9").as_deref(), Some("été"));
    assert_eq!(percent_decode("x%").as_deref(), None, "an escape cut short");
    assert_eq!(percent_decode("x%4").as_deref(), None);
    assert_eq!(percent_decode("%zz").as_deref(), None, "not hex");
    assert_eq!(percent_decode("%C3").as_deref(), None, "not UTF-8");
    assert!(matches!(percent_decode("%41"), Some(Cow::Owned(_))));
}

#[test]
fn the_quick_dot_segment_check_agrees_with_decoding_every_segment() {
    // Every path of up to five characters over the bytes that matter, and some that do not.
    let alphabet = ['/', '.', '%', '2', 'e', 'E', 'f', 'F', '5', 'c', '\\', 'a'];
    let mut paths = vec![String::new()];
    let mut compared = 0;
    for _ in 0..5 {
        let mut next = Vec::with_capacity(paths.len() * alphabet.len());
        for p in &paths {
            for c in alphabet {
                let mut q = p.clone();
                q.push(c);
                assert_eq!(has_dot_segment(&q), any_dot_segment(&q), "{q:?}");
                compared += 1;
                next.push(q);
            }
        }
        paths = next;
    }
    assert!(compared > 200_000);
}
