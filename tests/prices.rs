//! Prices at run time (README "Usage and cost"): `tollgate price list|set|delete` and
//! `GET /admin/prices`, `PUT/DELETE /admin/prices/{pattern}` keep overrides in the store
//! over the config file's `pricing`, in force from the very next request on every
//! gateway running on the store, kept on top across a reload, audited.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::{eventually, messages_body, Gateway, Scenario};
use serde_json::{json, Value};

const CLAUDE_PRICE: &str = "{ input: 3.0, output: 15.0, cache_read: 0.30, cache_write: 3.75 }";
/// claude messages.json at the config's price: 21*3000 + 2048*300 + 1536*3750 + 187*15000.
const AT_CONFIG_PRICE: u64 = 9_242_400;
/// The same at input 1, output 2 (cache reads and writes at the input price):
/// (21 + 2048 + 1536)*1000 + 187*2000.
const AT_OVERRIDE: u64 = 3_979_000;

/// The scenario with a price for claude, an admin `root` (and its key), and a second
/// gateway on the same store.
async fn setup() -> (Scenario, Gateway, String) {
    let s = Scenario::start_with(|config| {
        config
            .price("claude-sonnet-4*", CLAUDE_PRICE)
            .user("root", "admin")
    })
    .await;
    let admin = s.gw.create_key("root", &[]);
    let mut other = s.gw.another();
    other.start();
    (s, other, admin)
}

/// Total cost (nano-dollars) of the first `n` stored requests, once stored.
async fn total_cost(gw: &Gateway, admin: &str, n: u64) -> u64 {
    let doc = gw.usage_after(admin, "day", n).await;
    let usd: f64 = doc["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["cost_usd"].as_f64().unwrap())
        .sum();
    (usd * 1e9).round() as u64
}

/// `price list --json`, as (pattern, input, source) triples.
fn listed(gw: &Gateway) -> Vec<(String, f64, String)> {
    let v: Value = serde_json::from_str(&gw.cli_ok(&["price", "list", "--json"])).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["pattern"].as_str().unwrap().to_owned(),
                r["input"].as_f64().unwrap(),
                r["source"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn row(pattern: &str, input: f64, source: &str) -> (String, f64, String) {
    (pattern.to_owned(), input, source.to_owned())
}

#[tokio::test]
async fn an_override_prices_the_next_request_on_every_gateway() {
    let (s, other, admin) = setup().await;
    let gw = &s.gw;
    let body = messages_body("claude-sonnet-4-5");
    assert_eq!(gw.messages(&s.key, &body).await.status, 200);
    assert_eq!(total_cost(gw, &admin, 1).await, AT_CONFIG_PRICE);
    assert_eq!(listed(gw), [row("claude-sonnet-4*", 3.0, "config")]);

    let out = gw.cli_ok(&[
        "price",
        "set",
        "claude-sonnet-4*",
        "--input",
        "1",
        "--output",
        "2",
    ]);
    assert_eq!(
        out,
        "claude-sonnet-4*: input 1.00, output 2.00, cache read 1.00, cache write 1.00 USD per million tokens\n"
    );
    assert_eq!(listed(gw), [row("claude-sonnet-4*", 1.0, "store")]);
    for g in [gw, &other] {
        assert_eq!(g.messages(&s.key, &body).await.status, 200);
    }
    assert_eq!(
        total_cost(gw, &admin, 3).await,
        AT_CONFIG_PRICE + 2 * AT_OVERRIDE
    );

    // Deleted: the config's price again, at once.
    let out = gw.cli_ok(&["price", "delete", "claude-sonnet-4*"]);
    assert_eq!(out, "deleted the price override of claude-sonnet-4*\n");
    assert_eq!(other.messages(&s.key, &body).await.status, 200);
    assert_eq!(
        total_cost(gw, &admin, 4).await,
        2 * AT_CONFIG_PRICE + 2 * AT_OVERRIDE
    );

    // The rules of the config file's prices; nothing changes.
    for (args, status, message) in [
        (
            vec!["gpt-*", "--input", "0.0001", "--output", "1"],
            1,
            "at most 3 decimals",
        ),
        (
            vec!["gpt 4", "--input", "1", "--output", "1"],
            1,
            "invalid model pattern",
        ),
        (vec!["gpt-*", "--input", "1"], 2, "--output"),
    ] {
        let mut full = vec!["price", "set"];
        full.extend(args.iter().copied());
        let out = gw.cli(&full);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(status), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    let out = gw.cli(&["price", "delete", "claude-sonnet-4*"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(listed(gw), [row("claude-sonnet-4*", 3.0, "config")]);
    let audit = gw.admin_as(&admin).get("/admin/audit").await.json();
    let prices: Vec<(&str, &str, &str)> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"].as_str().unwrap().starts_with("price."))
        .map(|e| {
            (
                e["actor"].as_str().unwrap(),
                e["action"].as_str().unwrap(),
                e["target"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        prices,
        [
            ("cli", "price.delete", "claude-sonnet-4*"),
            ("cli", "price.set", "claude-sonnet-4*")
        ]
    );
}

#[tokio::test]
async fn prices_through_the_admin_api() {
    let (s, other, admin) = setup().await;
    let gw = &s.gw;
    let api = other.admin_as(&admin);
    // An unpriced model gets a price through the second gateway's API (the pattern's
    // `*` as it is), and the first gateway prices its next request with it.
    let r = api
        .put(
            "/admin/prices/gemini-*",
            json!({"input": 0.5, "output": "1.5"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"pattern": "gemini-*", "input": 0.5, "output": 1.5, "cache_read": 0.5,
               "cache_write": 0.5, "source": "store"})
    );
    assert_eq!(
        gw.generate(&s.key, "gemini-2.5-flash", "{}").await.status,
        200
    );
    let doc = gw.usage_after(&admin, "model", 1).await;
    let r = &doc["rows"][0];
    let tokens = |k: &str| r[k].as_u64().unwrap();
    let want =
        (tokens("input_tokens") + tokens("cache_read_tokens") + tokens("cache_write_tokens")) * 500
            + tokens("output_tokens") * 1500;
    assert!(want > 0);
    assert_eq!((r["cost_usd"].as_f64().unwrap() * 1e9).round() as u64, want);

    // The table in force, overrides first, with sources; the same on both gateways.
    let r = api.get("/admin/prices").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let sources: Vec<(Value, Value)> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["pattern"].clone(), p["source"].clone()))
        .collect();
    assert_eq!(
        sources,
        [
            (json!("gemini-*"), json!("store")),
            (json!("claude-sonnet-4*"), json!("config"))
        ]
    );
    assert_eq!(
        gw.admin_as(&admin).get("/admin/prices").await.json(),
        r.json()
    );

    // Refusals, changing nothing.
    for (path, body) in [
        ("/admin/prices/gpt-*", json!({"input": -1, "output": 1})),
        ("/admin/prices/gpt-*", json!({"input": 1})),
        (
            "/admin/prices/gpt-*",
            json!({"input": 1, "output": 1, "per": "token"}),
        ),
        ("/admin/prices/gpt%204", json!({"input": 1, "output": 1})),
    ] {
        let r = api.put(path, body.clone()).await;
        assert_eq!(r.status, 422, "{path} {body}: {}", r.text());
    }
    // Deleted by its percent-encoded name; a second time there is none.
    let r = api.delete("/admin/prices/gemini-%2A").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"pattern": "gemini-*", "deleted": true}));
    assert_eq!(api.delete("/admin/prices/gemini-*").await.status, 404);
    assert_eq!(
        api.delete("/admin/prices/claude-sonnet-4*").await.status,
        404
    );
    assert_eq!(listed(gw), [row("claude-sonnet-4*", 3.0, "config")]);
    let audit = api.get("/admin/audit?limit=2").await.json();
    assert_eq!(
        (
            &audit[0]["action"],
            &audit[1]["action"],
            &audit[1]["detail"]["replaced"]
        ),
        (&json!("price.delete"), &json!("price.set"), &json!(false))
    );
    assert_eq!(audit[0]["actor"], "root");
}

#[tokio::test]
async fn a_reload_keeps_the_overrides_on_top() {
    let s = Scenario::start_with(|config| {
        config
            .price("claude-sonnet-4*", CLAUDE_PRICE)
            .user("root", "admin")
    })
    .await;
    let mut gw = s.gw;
    let admin = gw.create_key("root", &[]);
    gw.cli_ok(&[
        "price",
        "set",
        "claude-sonnet-4*",
        "--input",
        "1",
        "--output",
        "2",
    ]);
    gw.edit_config(|c| {
        c.replace("input: 3.0", "input: 4.0") + "  \"gpt-*\": { input: 5, output: 6 }\n"
    });
    gw.signal("HUP");
    let api = gw.admin_as(&admin);
    let table = eventually(
        "the reload to add gpt-*",
        Duration::from_secs(5),
        async || {
            let v = api.get("/admin/prices").await.json();
            (v.as_array().unwrap().len() == 2).then_some(v)
        },
    )
    .await;
    let seen: Vec<(Value, Value, Value)> = table
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["pattern"].clone(),
                p["input"].clone(),
                p["source"].clone(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (json!("claude-sonnet-4*"), json!(1.0), json!("store")),
            (json!("gpt-*"), json!(5.0), json!("config"))
        ]
    );
    // Deleting the override now falls back to the reloaded file's price.
    gw.cli_ok(&["price", "delete", "claude-sonnet-4*"]);
    assert_eq!(listed(&gw)[0], row("claude-sonnet-4*", 4.0, "config"));
    assert_eq!(
        api.get("/admin/prices").await.json()[0]["input"],
        json!(4.0)
    );
}
