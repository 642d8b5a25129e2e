use super::*;
use crate::store::pg_usage::raw;
use crate::store::testing::{
    add_user, hasher_in, on_both_backends, sample_events, temp_store, TestBackend,
};
use crate::store::KeyCreate;
use tollgate_filters::Role;

/// Every request matching `f`, by following the cursors page by page.
fn all_pages(s: &Store, f: &RequestFilter, limit: usize) -> (Vec<RequestRow>, usize) {
    let mut f = f.clone();
    let (mut rows, mut pages) = (Vec::new(), 0);
    loop {
        let page = s.request_log(&f, limit).unwrap();
        pages += 1;
        assert!(page.rows.len() <= limit);
        rows.extend(page.rows);
        match page.next {
            Some(c) => f.before = Some(c),
            None => return (rows, pages),
        }
    }
}

/// The request ids of the events matching `keep`, newest first, by a plain scan.
fn expected(s: &Store, keep: &str) -> Vec<String> {
    let order = raw::row_order(s);
    raw::column_text(
        s,
        &format!(
            "SELECT request_id FROM usage_events e WHERE {keep} ORDER BY ts DESC, {order} DESC"
        ),
    )
}

on_both_backends!(
    pages_follow_each_other_newest_first_with_every_filter,
    rare_matches_are_found_window_by_window,
);

fn ids(rows: &[RequestRow]) -> Vec<String> {
    rows.iter().map(|r| r.request_id.clone()).collect()
}

fn pages_follow_each_other_newest_first_with_every_filter(b: &TestBackend) {
    let (dir, s) = (&b.dir, &b.store);
    let alice = add_user(s, "alice", Role::Member, 0);
    add_user(s, "bob", Role::Member, 0);
    let h = hasher_in(dir.path());
    let (key, _) = s.create_key(&h, &KeyCreate::for_user("alice"), 0).unwrap();
    let mut events = sample_events(600, 9, 1_700_000_000_000, 1_000);
    // Ties in time are ordered by rowid, and the real key is used now and then.
    for (i, e) in events.iter_mut().enumerate() {
        if i % 10 == 3 {
            e.ts_ms -= 1_000;
        }
        if i % 7 == 0 {
            e.key_id = Some(key.id.clone());
            e.user_id = Some(alice.id);
        }
    }
    s.insert_usage(&events).unwrap();

    let cases: Vec<(RequestFilter, String)> = vec![
        (RequestFilter::default(), "true".into()),
        (
            RequestFilter {
                user_id: Some(alice.id),
                ..Default::default()
            },
            format!("user_id = {}", alice.id),
        ),
        (
            RequestFilter {
                key_id: Some(key.id.clone()),
                ..Default::default()
            },
            format!("key_id = '{}'", key.id),
        ),
        (
            RequestFilter {
                model: Some("claude-sonnet-4".into()),
                status: StatusFilter::Errors,
                ..Default::default()
            },
            "COALESCE(model_served, model_requested, '-') = 'claude-sonnet-4' AND status >= 400"
                .into(),
        ),
        (
            RequestFilter {
                upstream: Some("-".into()),
                status: StatusFilter::Ok,
                user_id: Some(2),
                ..Default::default()
            },
            "upstream IS NULL AND status < 400 AND user_id = 2".into(),
        ),
    ];
    for (f, keep) in cases {
        let want = expected(s, &keep);
        assert!(!want.is_empty(), "{keep}");
        let (rows, _) = all_pages(s, &f, 25);
        assert_eq!(ids(&rows), want, "{keep}");
        // Every row as written.
        for r in &rows {
            let e = events
                .iter()
                .find(|e| e.request_id == r.request_id)
                .unwrap();
            assert_eq!(
                (
                    r.ts_ms,
                    r.status,
                    r.cost_nanos,
                    r.attempts,
                    r.model_served.as_ref()
                ),
                (
                    e.ts_ms,
                    i64::from(e.status),
                    e.cost_nanos as i64,
                    Some(i64::from(e.attempts)),
                    e.model_served.as_ref()
                )
            );
        }
    }
    // A row carries its joins.
    let page = s
        .request_log(
            &RequestFilter {
                key_id: Some(key.id.clone()),
                ..Default::default()
            },
            1,
        )
        .unwrap();
    assert_eq!(page.rows[0].username.as_deref(), Some("alice"));
    assert_eq!(page.rows[0].key_id.as_deref(), Some(key.id.as_str()));
    assert!(page.next.is_some());
}

fn rare_matches_are_found_window_by_window(b: &TestBackend) {
    let s = &b.store;
    let n = WINDOW * 2 + 500;
    let mut events = sample_events(n, 4, 1_700_000_000_000, 10);
    for (i, e) in events.iter_mut().enumerate() {
        e.model_served = Some(if i == 10 || i == WINDOW + 100 {
            "rare".into()
        } else {
            "common".into()
        });
    }
    for chunk in events.chunks(5_000) {
        s.insert_usage(chunk).unwrap();
    }
    let f = RequestFilter {
        model: Some("rare".into()),
        ..Default::default()
    };
    let first = s.request_log(&f, 50).unwrap();
    // The newest window holds none: the page says so and points further back.
    assert!(first.rows.is_empty() && first.window_exhausted);
    let (rows, pages) = all_pages(s, &f, 50);
    assert_eq!(
        ids(&rows),
        [format!("4-{}", WINDOW + 100), "4-10".to_owned()]
    );
    assert_eq!(pages, 3);
}

#[test]
fn the_queries_use_the_indexes() {
    let (_dir, s) = temp_store();
    let conn = s.conn().unwrap();
    let plan = |f: &RequestFilter| {
        let mut params = Vec::new();
        let sql = format!(
            "EXPLAIN QUERY PLAN SELECT rowid FROM usage_events WHERE {} ORDER BY ts DESC, rowid DESC LIMIT 51",
            indexed_part(f, &mut params)
        );
        let mut st = conn.prepare(&sql).unwrap();
        let rows = st
            .query_map(params_from_iter(params), |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        rows.join("; ")
    };
    let newest = plan(&RequestFilter::default());
    assert!(newest.contains("usage_events_ts"), "{newest}");
    assert!(!newest.contains("TEMP B-TREE"), "{newest}");
    let by_user = plan(&RequestFilter {
        user_id: Some(1),
        before: Some((5, 5)),
        ..Default::default()
    });
    assert!(by_user.contains("usage_events_user_ts"), "{by_user}");
    assert!(!by_user.contains("TEMP B-TREE"), "{by_user}");
    let by_key = plan(&RequestFilter {
        key_id: Some("k".into()),
        ..Default::default()
    });
    assert!(by_key.contains("usage_events_user_ts"), "{by_key}");
}
