//! Queries on `price_overrides`: prices set while the gateway runs, on top of the
//! config file's `pricing` table (how the two combine is [`crate::config::prices`]).

use rusqlite::{params, OptionalExtension};
use serde::Deserialize;
use tollgate_filters::usage::Price;

use super::input::{check_model_pattern, Amount};
use super::{Store, StoreError};
use crate::config::usd_per_million_to_nanos;

/// A price as asked for, in the one shape every way in shares: the options of
/// `tollgate price set`, the body of `PUT /admin/prices/{pattern}`, and what
/// [`Store::set_price`] takes. USD per million tokens with at most 3 decimals, as in
/// the config file; cache reads and writes cost the input price unless given.
#[derive(Debug, Clone, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceSet {
    /// USD per million input tokens
    #[arg(long, value_name = "USD")]
    pub input: Amount,
    /// USD per million output tokens
    #[arg(long, value_name = "USD")]
    pub output: Amount,
    /// USD per million tokens read from a cache (default: the input price)
    #[arg(long, value_name = "USD")]
    pub cache_read: Option<Amount>,
    /// USD per million tokens written to a cache (default: the input price)
    #[arg(long, value_name = "USD")]
    pub cache_write: Option<Amount>,
}

impl PriceSet {
    /// The price in nano-dollars per token, by the rules of the config file's
    /// `pricing`; the message of an error names the field at fault.
    pub fn check(&self) -> Result<Price, StoreError> {
        let field = |name: &str, a: &Amount| {
            usd_per_million_to_nanos(&a.text())
                .map_err(|m| StoreError::Invalid(format!("invalid {name} price: {m}")))
        };
        let input = field("input", &self.input)?;
        let output = field("output", &self.output)?;
        let optional =
            |name: &str, a: &Option<Amount>| a.as_ref().map_or(Ok(input), |a| field(name, a));
        Ok(Price {
            input,
            output,
            cache_read: optional("cache_read", &self.cache_read)?,
            cache_write: optional("cache_write", &self.cache_write)?,
        })
    }
}

/// A price column: nano-dollars per token, never negative.
fn nanos(r: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<u64> {
    let v: i64 = r.get(idx)?;
    u64::try_from(v).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Integer, Box::new(e))
    })
}

/// A price as an SQL integer (prices are far below i64's range).
fn sql(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Store {
    /// Sets the override of `pattern` once it and the price pass their checks; returns
    /// the price and whether an override of that pattern was replaced.
    pub fn set_price(
        &self,
        pattern: &str,
        set: &PriceSet,
        now: i64,
    ) -> Result<(Price, bool), StoreError> {
        check_model_pattern(pattern).map_err(StoreError::Invalid)?;
        let price = set.check()?;
        if let Some(pg) = self.pg() {
            return Ok((price, pg.set_price(pattern, price, now)?));
        }
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let replaced = tx
            .query_row(
                "SELECT 1 FROM price_overrides WHERE pattern = ?1",
                [pattern],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        tx.execute(
            "INSERT INTO price_overrides (pattern, input_nanos, output_nanos, cache_read_nanos, cache_write_nanos, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(pattern) DO UPDATE SET input_nanos = ?2, output_nanos = ?3, \
             cache_read_nanos = ?4, cache_write_nanos = ?5, updated_at = ?6",
            params![
                pattern,
                sql(price.input),
                sql(price.output),
                sql(price.cache_read),
                sql(price.cache_write),
                now
            ],
        )?;
        tx.commit()?;
        Ok((price, replaced))
    }

    /// Deletes the override of `pattern`; `false` when there was none.
    pub fn delete_price(&self, pattern: &str) -> Result<bool, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.delete_price(pattern);
        }
        let n = self
            .conn()?
            .execute("DELETE FROM price_overrides WHERE pattern = ?1", [pattern])?;
        Ok(n > 0)
    }

    /// Every override, by pattern.
    pub fn price_overrides(&self) -> Result<Vec<(String, Price)>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.price_overrides();
        }
        let conn = self.conn()?;
        let mut st = conn.prepare(
            "SELECT pattern, input_nanos, output_nanos, cache_read_nanos, cache_write_nanos \
             FROM price_overrides ORDER BY pattern",
        )?;
        let rows = st
            .query_map([], |r| {
                let price = Price {
                    input: nanos(r, 1)?,
                    output: nanos(r, 2)?,
                    cache_read: nanos(r, 3)?,
                    cache_write: nanos(r, 4)?,
                };
                Ok((r.get(0)?, price))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{on_both_backends, TestBackend};

    on_both_backends!(
        set_replace_list_delete,
        prices_follow_the_rules_of_the_config_file,
    );

    fn set(input: &str, output: &str, cache_read: Option<&str>) -> PriceSet {
        PriceSet {
            input: Amount::Text(input.into()),
            output: Amount::Text(output.into()),
            cache_read: cache_read.map(|c| Amount::Text(c.into())),
            cache_write: None,
        }
    }

    fn set_replace_list_delete(b: &TestBackend) {
        let s = &b.store;
        let (p, replaced) = s
            .set_price("gpt-4o*", &set("2.5", "10", Some("1.25")), 1)
            .unwrap();
        let want = Price {
            input: 2_500,
            output: 10_000,
            cache_read: 1_250,
            cache_write: 2_500,
        };
        assert_eq!((p, replaced), (want, false));
        let (p, replaced) = s.set_price("gpt-4o*", &set("0.075", "1", None), 2).unwrap();
        assert_eq!((p.input, p.cache_read, replaced), (75, 75, true));
        s.set_price("claude-*", &set("3", "15", None), 3).unwrap();
        let all = s.price_overrides().unwrap();
        let patterns: Vec<&str> = all.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(patterns, ["claude-*", "gpt-4o*"]);
        assert_eq!(all[1].1, p);
        assert!(s.delete_price("claude-*").unwrap());
        assert!(!s.delete_price("claude-*").unwrap());
        assert_eq!(s.price_overrides().unwrap().len(), 1);
    }

    fn prices_follow_the_rules_of_the_config_file(b: &TestBackend) {
        let s = &b.store;
        let err = |pattern: &str, p: PriceSet| s.set_price(pattern, &p, 0).unwrap_err().to_string();
        assert_eq!(
            err("gpt-*", set("0.0001", "1", None)),
            "invalid input price: '0.0001' must be a non-negative price with at most 3 decimals"
        );
        assert!(err("gpt-*", set("1", "-1", None)).starts_with("invalid output price"));
        assert!(err("gpt-*", set("1", "1", Some("x"))).starts_with("invalid cache_read price"));
        assert!(err("gpt 4", set("1", "1", None)).starts_with("invalid model pattern"));
        assert!(err("", set("1", "1", None)).starts_with("invalid model pattern"));
        assert!(s.price_overrides().unwrap().is_empty());
        // The admin API's body: numbers or strings, unknown fields refused.
        let body: PriceSet =
            serde_json::from_value(serde_json::json!({"input": 0.15, "output": "0.6"})).unwrap();
        assert_eq!(body.check().unwrap().input, 150);
        assert!(serde_json::from_value::<PriceSet>(serde_json::json!({"input": 1})).is_err());
        assert!(serde_json::from_value::<PriceSet>(
            serde_json::json!({"input": 1, "output": 1, "currency": "EUR"})
        )
        .is_err());
    }
}
