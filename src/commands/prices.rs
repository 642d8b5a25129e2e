//! `tollgate price list|set|delete`: price overrides kept in the store, over the
//! config file's `pricing` (README "Usage and cost"). The same documents and rules as
//! `GET/PUT/DELETE /admin/prices`.

use tollgate_filters::usage::Price;

use super::{audit_cli, table, CommandError};
use crate::config::prices::PriceRow;
use crate::store::{PriceSet, Store, StoreError};

/// Nano-dollars per token as USD per million tokens, exactly, with 2 or 3 decimals
/// (`0.075`, `15.00`).
pub fn per_million(nanos: u64) -> String {
    let frac = format!("{:03}", nanos % 1000);
    let frac = frac.trim_end_matches('0');
    format!("{}.{frac:0<2}", nanos / 1000)
}

/// USD per million tokens as a JSON number (exact: at most 3 decimals).
fn number(nanos: u64) -> serde_json::Value {
    serde_json::Number::from_f64(nanos as f64 / 1000.0).map_or(serde_json::Value::Null, Into::into)
}

/// A price as the JSON documents show it (USD per million tokens).
pub fn price_json(pattern: &str, p: &Price) -> serde_json::Value {
    serde_json::json!({
        "pattern": pattern,
        "input": number(p.input),
        "output": number(p.output),
        "cache_read": number(p.cache_read),
        "cache_write": number(p.cache_write),
    })
}

/// A row of the table in force, with its source (`config` or `store`).
pub fn row_json(r: &PriceRow) -> serde_json::Value {
    let mut v = price_json(&r.pattern, &r.price);
    v["source"] = r.source.as_str().into();
    v
}

/// The table in force, in the order a model is matched against it: a text table or
/// the JSON array of `GET /admin/prices`.
pub fn price_list(rows: &[PriceRow], json: bool) -> String {
    if json {
        let v: Vec<_> = rows.iter().map(row_json).collect();
        return serde_json::Value::Array(v).to_string() + "\n";
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.pattern.clone(),
                per_million(r.price.input),
                per_million(r.price.output),
                per_million(r.price.cache_read),
                per_million(r.price.cache_write),
                r.source.as_str().to_owned(),
            ]
        })
        .collect();
    table(
        &[
            "PATTERN",
            "INPUT",
            "OUTPUT",
            "CACHE READ",
            "CACHE WRITE",
            "SOURCE",
        ],
        &cells,
    )
}

/// `price set PATTERN ...`: the override stored (checked as the config file's prices
/// are), audited.
pub fn price_set(
    store: &Store,
    pattern: &str,
    set: &PriceSet,
    now: i64,
) -> Result<String, CommandError> {
    let (price, replaced) = store.set_price(pattern, set, now)?;
    let mut detail = price_json(pattern, &price);
    detail["replaced"] = replaced.into();
    audit_cli(store, "price.set", pattern, detail, now);
    Ok(format!(
        "{pattern}: input {}, output {}, cache read {}, cache write {} USD per million tokens\n",
        per_million(price.input),
        per_million(price.output),
        per_million(price.cache_read),
        per_million(price.cache_write)
    ))
}

/// `price delete PATTERN`: the override removed (the config file's price, if any,
/// applies again), audited; an error when there is none.
pub fn price_delete(store: &Store, pattern: &str, now: i64) -> Result<String, CommandError> {
    if !store.delete_price(pattern)? {
        return Err(StoreError::Invalid(no_override(pattern)).into());
    }
    audit_cli(store, "price.delete", pattern, serde_json::json!({}), now);
    Ok(format!("deleted the price override of {pattern}\n"))
}

/// The refusal of deleting an override that does not exist.
pub fn no_override(pattern: &str) -> String {
    format!("no price override for '{pattern}' (prices from the config file are changed there)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::prices::effective;
    use crate::store::input::Amount;
    use crate::store::testing::temp_store;

    #[test]
    fn set_list_delete() {
        let (_d, s) = temp_store();
        let set = PriceSet {
            input: Amount::Text("0.15".into()),
            output: Amount::Text("0.6".into()),
            cache_read: Some(Amount::Text("0.075".into())),
            cache_write: None,
        };
        assert_eq!(
            price_set(&s, "gpt-4o-mini*", &set, 0).unwrap(),
            "gpt-4o-mini*: input 0.15, output 0.60, cache read 0.075, cache write 0.15 USD per million tokens\n"
        );
        let file = vec![(
            "claude-*".to_owned(),
            Price {
                input: 3_000,
                output: 15_000,
                cache_read: 300,
                cache_write: 3_750,
            },
        )];
        let rows = effective(&file, &s.price_overrides().unwrap());
        assert_eq!(
            price_list(&rows, false),
            "PATTERN       INPUT  OUTPUT  CACHE READ  CACHE WRITE  SOURCE\n\
             gpt-4o-mini*  0.15   0.60    0.075       0.15         store\n\
             claude-*      3.00   15.00   0.30        3.75         config\n"
        );
        let v: serde_json::Value = serde_json::from_str(&price_list(&rows, true)).unwrap();
        assert_eq!(
            v[0],
            serde_json::json!({"pattern": "gpt-4o-mini*", "input": 0.15, "output": 0.6,
                               "cache_read": 0.075, "cache_write": 0.15, "source": "store"})
        );
        assert_eq!(v[1]["source"], "config");
        assert_eq!(
            price_delete(&s, "gpt-4o-mini*", 1).unwrap(),
            "deleted the price override of gpt-4o-mini*\n"
        );
        assert_eq!(
            price_delete(&s, "claude-*", 2).unwrap_err().to_string(),
            "no price override for 'claude-*' (prices from the config file are changed there)"
        );
        let actions: Vec<String> = s
            .list_audit(10)
            .unwrap()
            .into_iter()
            .map(|e| format!("{} {} {}", e.actor, e.action, e.target.unwrap_or_default()))
            .collect();
        assert_eq!(
            actions,
            [
                "cli price.delete gpt-4o-mini*",
                "cli price.set gpt-4o-mini*"
            ]
        );
    }
}
