//! Which credential a request presents, when several forms or none are there, and the
//! auth filter's place in the chain.

use super::*;

fn request(path: &str, headers: &[(&str, &str)]) -> RequestHeader {
    let mut req = RequestHeader::build("POST", path.as_bytes(), None)
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    for (k, v) in headers {
        req.insert_header(k.to_string(), *v)
            .unwrap_or_else(|e| panic!("{k}: {e}"));
    }
    req
}

fn presented(path: &str, headers: &[(&str, &str)], dialect: Dialect) -> Option<String> {
    client_credential(&request(path, headers), dialect).map(|s| s.expose().to_owned())
}

#[test]
fn a_bearer_token_is_read_in_any_case_and_trimmed() {
    let oa = Dialect::OpenAi;
    let bearer = |v| presented("/v1/x", &[("authorization", v)], oa);
    assert_eq!(bearer("Bearer tg_a").as_deref(), Some("tg_a"));
    assert_eq!(bearer("bearer tg_a").as_deref(), Some("tg_a"));
    assert_eq!(bearer("BEARER   tg_a  ").as_deref(), Some("tg_a"));
    assert_eq!(
        bearer("Bearer").as_deref(),
        None,
        "a scheme without a token"
    );
    assert_eq!(bearer("Bearer    ").as_deref(), None, "a blank token");
    assert_eq!(bearer("Token tg_a").as_deref(), None, "another scheme");
}

#[test]
fn an_authorization_header_decides_even_when_it_holds_no_bearer_token() {
    // A client that sent `Authorization` meant it: a key in another header does not
    // stand in for a broken one.
    let got = presented(
        "/v1/messages",
        &[("authorization", "Basic dXNlcg=="), ("x-api-key", "tg_b")],
        Dialect::Anthropic,
    );
    assert_eq!(got, None);
    // A blank `Authorization` is no header at all.
    let got = presented(
        "/v1/messages",
        &[("authorization", "  "), ("x-api-key", "tg_b")],
        Dialect::Anthropic,
    );
    assert_eq!(got.as_deref(), Some("tg_b"));
}

#[test]
fn the_anthropic_header_goes_before_the_gemini_one_and_both_before_the_query() {
    let g = Dialect::Gemini;
    let path = "/v1beta/models/m:generateContent?key=tg_q";
    assert_eq!(
        presented(
            path,
            &[("x-api-key", "tg_a"), ("x-goog-api-key", "tg_g")],
            g
        )
        .as_deref(),
        Some("tg_a")
    );
    assert_eq!(
        presented(path, &[("x-goog-api-key", " tg_g ")], g).as_deref(),
        Some("tg_g")
    );
    assert_eq!(
        presented(path, &[("x-goog-api-key", "")], g).as_deref(),
        Some("tg_q"),
        "an empty header is none"
    );
    assert_eq!(presented(path, &[], g).as_deref(), Some("tg_q"));
    assert_eq!(presented("/v1beta/x", &[], g), None, "no query at all");
    // Only Gemini's clients may send the key in the query.
    assert_eq!(presented(path, &[], Dialect::Anthropic), None);
}

#[test]
fn a_query_parameter_is_found_by_its_exact_name_with_a_value() {
    assert_eq!(query_param("key=a", "key"), Some("a"));
    assert_eq!(query_param("alt=sse&key=a&key=b", "key"), Some("a"));
    assert_eq!(
        query_param("key=&key=b", "key"),
        Some("b"),
        "empty is absent"
    );
    assert_eq!(query_param("key&key=b", "key"), Some("b"));
    assert_eq!(query_param("apikey=a&keys=b", "key"), None);
    assert_eq!(query_param("alt=sse", "key"), None);
    assert_eq!(query_param("", "key"), None);
    assert_eq!(query_param("key=a=b", "key"), Some("a=b"));
}

#[tokio::test]
async fn a_key_is_refused_from_the_second_it_is_revoked_or_expires() {
    struct At(i64);
    #[async_trait]
    impl KeyLookup for At {
        async fn authenticate(&self, _: &Secret) -> Option<Arc<crate::Principal>> {
            Some(Arc::new(crate::Principal {
                key_id: "k".into(),
                expires_at: (self.0 > 0).then_some(self.0),
                revoked_at: (self.0 < 0).then_some(-self.0),
                ..crate::Principal::default()
            }))
        }
    }
    let req = request("/v1/x", &[("authorization", "Bearer tg_k")]);
    let req = &req;
    let run = |at: i64| async move {
        let f = AuthFilter::new(Arc::new(At(at)), || 1000);
        let mut ctx = RequestCtx::new("r".into());
        f.on_request_header(req, &mut ctx)
            .await
            .map(|()| ctx.principal.as_ref().map(|p| p.key_id.clone()))
    };
    assert_eq!(run(1001).await, Ok(Some("k".into())));
    assert_eq!(run(1000).await, Err(GatewayError::ExpiredKey("k".into())));
    assert_eq!(run(-1001).await, Ok(Some("k".into())));
    assert_eq!(run(-1000).await, Err(GatewayError::RevokedKey("k".into())));
}

#[test]
fn it_runs_only_on_the_request_header() {
    struct NoKeys;
    #[async_trait]
    impl KeyLookup for NoKeys {
        async fn authenticate(&self, _: &Secret) -> Option<Arc<crate::Principal>> {
            None
        }
    }
    let f = AuthFilter::new(Arc::new(NoKeys), || 0);
    assert_eq!(f.name(), "auth");
    assert_eq!(f.phases(), crate::Phases::REQUEST_HEADER);
}
