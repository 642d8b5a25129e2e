//! The price table in force (README "Usage and cost"): the config file's `pricing`
//! with the overrides kept in the store on top. An override of a pattern the file has
//! takes that entry's place; an override of a pattern the file lacks is tried before the
//! file's entries, exact names first, then longer patterns before shorter ones (so that
//! an override set for one model is never hidden by a broader entry of the file). The
//! first row that matches a model prices it, as in the file.

use std::cmp::Reverse;

use tollgate_filters::pattern::ModelPattern;
use tollgate_filters::usage::{Price, PriceTable};

/// Where a row of the price table comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PriceSource {
    /// The config file's `pricing`.
    Config,
    /// An override in the store (`tollgate price set`, `PUT /admin/prices/{pattern}`).
    Store,
}

impl PriceSource {
    pub fn as_str(self) -> &'static str {
        match self {
            PriceSource::Config => "config",
            PriceSource::Store => "store",
        }
    }
}

/// One row of the price table in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceRow {
    pub pattern: String,
    pub price: Price,
    pub source: PriceSource,
}

/// The rows in the order a model is matched against them.
pub fn effective(config: &[(String, Price)], overrides: &[(String, Price)]) -> Vec<PriceRow> {
    let row = |(pattern, price): &(String, Price), source| PriceRow {
        pattern: pattern.clone(),
        price: *price,
        source,
    };
    let mut extra: Vec<&(String, Price)> = overrides
        .iter()
        .filter(|(p, _)| !config.iter().any(|(c, _)| c == p))
        .collect();
    extra.sort_by_key(|(p, _)| {
        let wild = ModelPattern::parse(p).exact().is_none();
        (wild, Reverse(p.chars().count()), p.clone())
    });
    let extra = extra.into_iter().map(|o| row(o, PriceSource::Store));
    let file = config
        .iter()
        .map(|c| match overrides.iter().find(|(p, _)| *p == c.0) {
            Some(o) => row(o, PriceSource::Store),
            None => row(c, PriceSource::Config),
        });
    extra.chain(file).collect()
}

/// The table the metering filter looks prices up in.
pub fn table(rows: &[PriceRow]) -> PriceTable {
    PriceTable::new(
        rows.iter()
            .map(|r| (ModelPattern::parse(&r.pattern), r.price))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price(input: u64) -> Price {
        Price {
            input,
            output: input * 4,
            cache_read: input,
            cache_write: input,
        }
    }

    fn entries(list: &[(&str, u64)]) -> Vec<(String, Price)> {
        list.iter()
            .map(|(p, i)| (p.to_string(), price(*i)))
            .collect()
    }

    #[test]
    fn overrides_replace_their_pattern_and_come_first_otherwise() {
        let config = entries(&[("gpt-4o*", 1), ("claude-*", 2), ("*", 3)]);
        let overrides = entries(&[("claude-*", 20), ("gpt-*", 30), ("gpt-4o", 40), ("o3*", 50)]);
        let rows = effective(&config, &overrides);
        let seen: Vec<(&str, u64, &str)> = rows
            .iter()
            .map(|r| (r.pattern.as_str(), r.price.input, r.source.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                ("gpt-4o", 40, "store"),
                ("gpt-*", 30, "store"),
                ("o3*", 50, "store"),
                ("gpt-4o*", 1, "config"),
                ("claude-*", 20, "store"),
                ("*", 3, "config"),
            ]
        );
        let t = table(&rows);
        assert_eq!(t.lookup("gpt-4o").map(|p| p.input), Some(40));
        assert_eq!(t.lookup("gpt-4o-mini").map(|p| p.input), Some(30));
        assert_eq!(t.lookup("claude-3").map(|p| p.input), Some(20));
        assert_eq!(t.lookup("llama").map(|p| p.input), Some(3));
        // No overrides: the file as it is.
        let plain = effective(&config, &[]);
        assert!(plain.iter().all(|r| r.source == PriceSource::Config));
        assert_eq!(plain.len(), 3);
    }
}
