//! What the two provider enums answer for each provider: labels, whose paths a path is,
//! the query credential, path rewriting, forwarded request headers and credentials
//! that are not header values.

use super::*;

#[test]
fn each_dialect_and_kind_has_its_label_and_kind_its_dialect() {
    assert_eq!(
        [
            Dialect::OpenAi.as_str(),
            Dialect::Anthropic.as_str(),
            Dialect::Gemini.as_str()
        ],
        ["openai", "anthropic", "gemini"]
    );
    for (kind, dialect) in
        ProviderKind::ALL
            .into_iter()
            .zip([Dialect::OpenAi, Dialect::Anthropic, Dialect::Gemini])
    {
        assert_eq!(kind.dialect(), dialect);
        assert_eq!(Dialect::from(kind), dialect);
        assert_eq!(ProviderKind::parse(kind.as_str()), Some(kind));
    }
    assert_eq!(ProviderKind::parse("OpenAI"), None, "names are exact");
    assert_eq!(ProviderKind::parse(""), None);
}

#[test]
fn a_dialect_serves_only_its_own_paths() {
    let (chat, messages, gemini) = (
        "/v1/chat/completions",
        "/v1/messages",
        "/v1beta/models/m:generateContent",
    );
    assert_eq!(
        Dialect::OpenAi.endpoint(chat),
        Ok((Endpoint::ChatCompletions, Method::Post))
    );
    assert_eq!(
        Dialect::Anthropic.endpoint(messages),
        Ok((Endpoint::Messages, Method::Post))
    );
    assert_eq!(
        Dialect::Gemini.endpoint(gemini),
        Ok((
            Endpoint::Gemini {
                model: "m".into(),
                stream: false
            },
            Method::Post
        ))
    );
    for (dialect, foreign) in [
        (Dialect::OpenAi, messages),
        (Dialect::Anthropic, chat),
        (Dialect::Gemini, chat),
    ] {
        assert_eq!(
            dialect.endpoint(foreign),
            Err(PathRejection::NotFound),
            "{dialect:?} {foreign}"
        );
    }
    assert_eq!(Dialect::of_path(gemini), Dialect::Gemini);
    assert_eq!(Dialect::of_path(messages), Dialect::Anthropic);
    assert_eq!(Dialect::of_path(chat), Dialect::OpenAi);
    assert_eq!(Dialect::of_path("/"), Dialect::OpenAi);
}

#[test]
fn only_gemini_takes_a_query_key_and_rewrites_its_paths() {
    assert_eq!(Dialect::Gemini.query_credential(), Some("key"));
    assert_eq!(Dialect::OpenAi.query_credential(), None);
    assert_eq!(Dialect::Anthropic.query_credential(), None);
    assert!(Dialect::Gemini.rewrites_path());
    assert!(!Dialect::OpenAi.rewrites_path() && !Dialect::Anthropic.rewrites_path());
    let gemini = Endpoint::Gemini {
        model: "alias".into(),
        stream: false,
    };
    for (dialect, endpoint, want) in [
        (
            Dialect::Gemini,
            &gemini,
            "/b/v1beta/models/served:generateContent",
        ),
        (Dialect::Gemini, &Endpoint::Messages, "/b/client"),
        (Dialect::OpenAi, &Endpoint::ChatCompletions, "/b/client"),
        (Dialect::Anthropic, &Endpoint::Messages, "/b/client"),
    ] {
        let mut out = String::from("/b");
        dialect.push_upstream_path(&mut out, endpoint, "served", "/client");
        assert_eq!(out, want, "{dialect:?}");
    }
}

#[test]
fn each_providers_own_request_headers_go_upstream_whatever_the_upstream() {
    for name in [
        "openai-organization",
        "openai-project",
        "openai-beta",
        "anthropic-version",
        "anthropic-beta",
        "x-goog-api-client",
    ] {
        assert!(forwards_request_header(name), "{name}");
    }
    for name in ["authorization", "x-api-key", "x-goog-api-key", "cookie", ""] {
        assert!(!forwards_request_header(name), "{name}");
    }
}

#[test]
fn a_key_that_is_not_a_header_value_has_no_credential_in_any_kind() {
    for kind in ProviderKind::ALL {
        assert!(
            kind.credential_value(&Secret::new("k\r\n")).is_none(),
            "{kind:?}"
        );
        assert!(
            kind.credential_value(&Secret::new("k")).is_some(),
            "{kind:?}"
        );
    }
}

#[test]
fn an_event_is_parsed_only_when_it_carries_a_usage_object() {
    let openai = br#"{"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":2}}"#;
    let r = Dialect::OpenAi.usage_in_event(openai);
    assert_eq!(
        r.map(|r| (r.input, r.output, r.complete)),
        Some((Some(4), Some(2), true))
    );
    assert_eq!(Dialect::OpenAi.usage_in_event(br#"{"choices":[]}"#), None);
    assert_eq!(
        Dialect::OpenAi.usage_in_event(br#"{"usage":{"prompt_tokens":1"#),
        None,
        "a usage object that does not parse"
    );
    let delta = br#"{"type":"message_delta","usage":{"output_tokens":9}}"#;
    let r = Dialect::Anthropic.usage_in_event(delta);
    assert_eq!(r.map(|r| (r.output, r.complete)), Some((Some(9), true)));
    let body = br#"{"usage":{"input_tokens":3,"output_tokens":1}}"#;
    assert_eq!(
        Dialect::Anthropic
            .usage_in_body(body)
            .map(|r| (r.input, r.output)),
        Some((Some(3), Some(1)))
    );
    assert_eq!(
        Dialect::OpenAi
            .usage_in_body(br#"{"usage":{"prompt_tokens":3,"completion_tokens":1}}"#)
            .map(|r| (r.input, r.output)),
        Some((Some(3), Some(1)))
    );
    assert_eq!(
        Dialect::Gemini
            .usage_in_body(br#"{"usageMetadata":{"promptTokenCount":3}}"#)
            .map(|r| (r.input, r.output)),
        Some((Some(3), Some(0)))
    );
    assert_eq!(Dialect::Gemini.usage_in_body(b"{}"), None);
}

/// The model listing, which every dialect's clients call on OpenAI's path, answers in
/// the dialect the client's headers (or Gemini's query key) tell; a Gemini method path
/// under `/v1/models` is Gemini's whatever the headers.
#[test]
fn the_model_listing_is_answered_in_the_callers_dialect() {
    let of = |path: &str, header: Option<&str>| {
        let mut req = RequestHeader::build("GET", path.as_bytes(), None).unwrap();
        if let Some(h) = header {
            req.insert_header(h.to_owned(), "x").unwrap();
        }
        Dialect::of_request(&req)
    };
    for path in ["/v1/models", "/v1/models/claude-sonnet-4-5"] {
        assert_eq!(of(path, None), Dialect::OpenAi, "{path}");
        assert_eq!(of(path, Some("authorization")), Dialect::OpenAi);
        assert_eq!(of(path, Some("x-goog-api-key")), Dialect::Gemini);
        assert_eq!(of(path, Some("x-api-key")), Dialect::Anthropic);
        assert_eq!(of(path, Some("anthropic-version")), Dialect::Anthropic);
        assert_eq!(of(&format!("{path}?key=k"), None), Dialect::Gemini);
    }
    assert_eq!(
        of(
            "/v1/models/gemini-2.5-pro:generateContent",
            Some("x-api-key")
        ),
        Dialect::Gemini
    );
    assert_eq!(of("/v1/modelsx", Some("x-api-key")), Dialect::OpenAi);
    // Each listing in its dialect's shape.
    let ids = ["a".to_owned(), "b".to_owned()];
    let list = Dialect::OpenAi.model_list(&ids, None);
    assert_eq!(list["object"], "list");
    assert_eq!(list["data"][1], Dialect::OpenAi.model_object("b"));
    assert_eq!(
        Dialect::OpenAi.model_object("b"),
        serde_json::json!({"id": "b", "object": "model", "created": 0, "owned_by": "tollgate"})
    );
    let list = Dialect::Anthropic.model_list(&ids, None);
    assert_eq!(list["data"][0], Dialect::Anthropic.model_object("a"));
    assert_eq!(Dialect::Anthropic.model_object("a")["type"], "model");
    let list = Dialect::Gemini.model_list(&ids, None);
    assert_eq!(list["models"][1], Dialect::Gemini.model_object("b"));
    assert_eq!(Dialect::Gemini.model_object("b")["name"], "models/b");
    // Gemini's paths take a strict set of names; the others take any.
    assert!(Dialect::Gemini.check_listed_model("a b").is_err());
    assert!(Dialect::Gemini.check_listed_model("gemini-2.5-pro").is_ok());
    assert!(Dialect::OpenAi.check_listed_model("a b").is_ok());
}

/// Gemini's listing pages by `pageSize` and `pageToken`; the last page has no token.
#[test]
fn gemini_listing_pages_to_the_last_name() {
    let ids: Vec<String> = ["a", "b", "c"].iter().map(|s| (*s).to_owned()).collect();
    let names = |v: &serde_json::Value| -> Vec<String> {
        v["models"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["displayName"].as_str().unwrap().to_owned())
            .collect()
    };
    let first = gemini::model_list(&ids, Some("pageSize=2"));
    assert_eq!(names(&first), ["a", "b"]);
    assert_eq!(first["nextPageToken"], "b");
    let last = gemini::model_list(&ids, Some("pageSize=2&pageToken=b"));
    assert_eq!(names(&last), ["c"]);
    assert!(last.get("nextPageToken").is_none());
    let zero = gemini::model_list(&ids, Some("pageSize=0"));
    assert_eq!(names(&zero), ["a", "b", "c"], "no size: the default page");
    let exact = gemini::model_list(&ids, Some("pageSize=3"));
    assert_eq!(names(&exact), ["a", "b", "c"]);
    assert!(
        exact.get("nextPageToken").is_none(),
        "nothing after the last"
    );
}

/// A field that cannot be translated is OpenAI's `unsupported_parameter`, naming it; a
/// request that is not a valid one of its dialect is `invalid_request`.
#[test]
fn an_untranslatable_field_is_an_unsupported_parameter_in_openais_envelope() {
    let err = |invalid| GatewayError::Untranslatable {
        message: "n > 1".into(),
        param: "n".into(),
        invalid,
    };
    let body = openai::error_body(&err(false));
    assert_eq!(body["error"]["code"], "unsupported_parameter");
    assert_eq!(body["error"]["param"], "n");
    let body = openai::error_body(&err(true));
    assert_eq!(body["error"]["code"], "invalid_request");
    assert_eq!(body["error"]["type"], "invalid_request_error");
}

/// Gemini's `candidates` as an object (not the array it should be) has no finishing
/// candidate, and the typed read passes over it rather than refusing the event.
#[test]
fn candidates_that_are_no_array_finish_nothing() {
    let doc = r#"{"candidates":{"finishReason":"STOP"},"usageMetadata":{"promptTokenCount":3}}"#;
    let typed: gemini::Event = serde_json::from_str(doc).unwrap();
    let r = typed.reported().unwrap();
    assert_eq!((r.input, r.complete), (Some(3), false));
}
