//! Prices and cost in integer nano-dollars (CONTRACT §5). Never f64 in a sum.

use crate::pattern::ModelPattern;

use super::Usage;

/// Nano-dollars per token (= thousandths of a dollar per million tokens), exact for
/// prices with up to three decimals per million.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Price {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
}

impl Price {
    /// `input*p.input + cache_read*p.cache_read + cache_write*p.cache_write + output*p.output`,
    /// saturating (a count that overflows u64 nano-dollars is not a real bill).
    pub fn cost(&self, u: &Usage) -> u64 {
        let term = |tokens: u64, price: u64| tokens.saturating_mul(price);
        term(u.input, self.input)
            .saturating_add(term(u.cache_read, self.cache_read))
            .saturating_add(term(u.cache_write, self.cache_write))
            .saturating_add(term(u.output, self.output))
    }
}

/// Model patterns and their prices, first match wins (like routes).
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    entries: Vec<(ModelPattern, Price)>,
}

impl PriceTable {
    pub fn new(entries: Vec<(ModelPattern, Price)>) -> Self {
        PriceTable { entries }
    }

    /// The patterns and prices, in the order they are tried.
    pub fn entries(&self) -> &[(ModelPattern, Price)] {
        &self.entries
    }

    pub fn lookup(&self, model: &str) -> Option<Price> {
        self.entries
            .iter()
            .find(|(p, _)| p.matches(model))
            .map(|(_, price)| *price)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_is_the_plain_sum_of_disjoint_buckets() {
        // claude-sonnet-4: $3 in, $15 out, $0.30 cache read, $3.75 cache write per million.
        let p = Price {
            input: 3_000,
            output: 15_000,
            cache_read: 300,
            cache_write: 3_750,
        };
        let u = Usage {
            input: 25,
            output: 57,
            cache_read: 2000,
            cache_write: 300,
            reasoning: 10,
        };
        assert_eq!(
            p.cost(&u),
            25 * 3_000 + 57 * 15_000 + 2000 * 300 + 300 * 3_750
        );
        let t = PriceTable::new(vec![(ModelPattern::parse("gpt-4o-mini*"), p)]);
        assert_eq!(t.lookup("gpt-4o-mini-2024-07-18"), Some(p));
        assert_eq!(t.lookup("gpt-4o"), None);
    }

    #[test]
    fn the_first_matching_price_wins_and_sums_saturate() {
        let a = Price {
            input: 1,
            output: 2,
            cache_read: 3,
            cache_write: 4,
        };
        let b = Price { input: 9, ..a };
        let t = PriceTable::new(vec![
            (ModelPattern::parse("gpt-4o*"), a),
            (ModelPattern::parse("gpt-*"), b),
        ]);
        assert_eq!(t.lookup("gpt-4o-mini"), Some(a));
        assert_eq!(t.lookup("gpt-5"), Some(b));
        assert_eq!(PriceTable::default().lookup("gpt-5"), None);
        let listed: Vec<(String, Price)> = t
            .entries()
            .iter()
            .map(|(p, price)| (p.to_string(), *price))
            .collect();
        assert_eq!(
            listed,
            [("gpt-4o*".to_owned(), a), ("gpt-*".to_owned(), b)],
            "listed in the order they are tried"
        );
        let one = |f: fn(&mut Usage)| {
            let mut u = Usage::default();
            f(&mut u);
            a.cost(&u)
        };
        assert_eq!(one(|u| u.input = 10), 10);
        assert_eq!(one(|u| u.output = 10), 20);
        assert_eq!(one(|u| u.cache_read = 10), 30);
        assert_eq!(one(|u| u.cache_write = 10), 40);
        assert_eq!(one(|u| u.reasoning = 10), 0, "reasoning is inside output");
        assert_eq!(one(|u| u.output = u64::MAX), u64::MAX);
        let huge = Usage {
            input: u64::MAX / 2,
            output: u64::MAX / 2,
            ..Usage::default()
        };
        assert_eq!(b.cost(&huge), u64::MAX);
    }
}
