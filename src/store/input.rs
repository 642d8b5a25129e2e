//! What people type, read exactly: durations (`30d`), dollar amounts (`12.50`, never
//! through f64), budgets, and the edits of an update (`--rpm none`, `"rpm": null`).
//! Shared by the CLI, the admin API and the store's input types ([`super::KeyCreate`],
//! [`super::UserCreate`] and their updates), so each is parsed one way.

use serde::Deserialize;

/// A dollar amount as given: `"12.50"` or `12.5` in JSON, `12.50` on the command line.
/// Either way it goes through [`parse_usd_to_nanos`], never through f64 arithmetic.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Amount {
    Text(String),
    Number(serde_json::Number),
}

impl Amount {
    /// The amount's text, as typed.
    pub fn text(&self) -> String {
        match self {
            Amount::Text(t) => t.clone(),
            Amount::Number(n) => n.to_string(),
        }
    }
}

impl std::str::FromStr for Amount {
    type Err = std::convert::Infallible;

    /// Any text: it is checked with the rest of the input, so that a bad amount is a
    /// one-line error like every other, not a usage error.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Amount::Text(s.to_owned()))
    }
}

/// A change to one setting of an update: removed (`none`/`never` on the command line,
/// `null` in JSON), or set to a value. An update holds `Option<Edit<T>>`: `None` leaves
/// the setting as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit<T> {
    Remove,
    Set(T),
}

impl<T: Clone> Edit<T> {
    /// The setting after this edit, given what it was.
    pub fn applied(edit: Option<&Edit<T>>, current: Option<T>) -> Option<T> {
        match edit {
            None => current,
            Some(Edit::Remove) => None,
            Some(Edit::Set(v)) => Some(v.clone()),
        }
    }
}

/// Parses a command-line value that is `word` (remove the setting) or a `T`.
fn edit_or<T: std::str::FromStr>(word: &str, s: &str) -> Result<Edit<T>, String>
where
    T::Err: std::fmt::Display,
{
    if s == word {
        return Ok(Edit::Remove);
    }
    s.parse()
        .map(Edit::Set)
        .map_err(|e| format!("{e} (or `{word}` to remove it)"))
}

/// `--rpm N|none` and the like.
pub fn none_or<T: std::str::FromStr>(s: &str) -> Result<Edit<T>, String>
where
    T::Err: std::fmt::Display,
{
    edit_or("none", s)
}

/// `--expires-in D|never`.
pub fn never_or(s: &str) -> Result<Edit<String>, String> {
    edit_or("never", s)
}

/// An update's field in JSON: absent leaves it (serde's `default`), `null` removes
/// it, a value sets it.
pub fn edit<'de, D, T>(d: D) -> Result<Option<Edit<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Some(match Option::<T>::deserialize(d)? {
        None => Edit::Remove,
        Some(v) => Edit::Set(v),
    }))
}

/// Nano-dollars as an [`Amount`], exactly (for checking a setting kept as it was by
/// the same rules as a new one).
pub fn nanos_amount(nanos: i64) -> Amount {
    Amount::Text(format!(
        "{}.{:09}",
        nanos.div_euclid(1_000_000_000),
        nanos.rem_euclid(1_000_000_000)
    ))
}

/// A budget after an update: the amount as edited, and the period given, else the one
/// it had (so that changing only the amount keeps the period).
pub fn edited_budget(
    usd: Option<&Edit<Amount>>,
    period: Option<&str>,
    current: (Option<i64>, Option<&str>),
) -> (Option<Amount>, Option<String>) {
    let amount = Edit::applied(usd, current.0.map(nanos_amount));
    let period = match (period, usd) {
        (Some(p), _) => Some(p.to_owned()),
        (None, Some(Edit::Remove)) => None,
        (None, _) => current.1.map(str::to_owned),
    };
    (amount, period)
}

const BUDGET_PERIODS: [&str; 3] = ["day", "month", "total"];

/// The longest model pattern accepted (key scopes, price overrides).
const MAX_PATTERN_CHARS: usize = 256;

/// A model pattern as a key's scope or a price override's: a name, `prefix*` or a
/// glob. Patterns end up in tables on an operator's terminal: no control characters
/// (escape sequences, newlines) that could forge or hide rows, and no spaces.
pub fn check_model_pattern(m: &str) -> Result<(), String> {
    if m.is_empty()
        || m.chars().count() > MAX_PATTERN_CHARS
        || m.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(format!(
            "invalid model pattern {m:?}: use a model name, prefix* or a glob, without spaces"
        ));
    }
    Ok(())
}

/// A budget as given (`--budget-usd`, `--budget-period`, or the admin API's
/// `budget_usd`, `budget_period`): nano-dollars and period, the period defaulting to
/// month; a period without an amount is refused rather than ignored.
pub fn parse_budget(
    usd: Option<&Amount>,
    period: Option<&str>,
) -> Result<Option<(i64, String)>, String> {
    let nanos = usd.map(|a| parse_usd_to_nanos(&a.text())).transpose()?;
    match (nanos, period) {
        (None, Some(_)) => Err(
            "a budget period needs a budget amount (--budget-usd, or budget_usd in the admin API)"
                .to_owned(),
        ),
        (None, None) => Ok(None),
        (Some(n), None) => Ok(Some((n, "month".to_owned()))),
        (Some(n), Some(p)) if BUDGET_PERIODS.contains(&p) => Ok(Some((n, p.to_owned()))),
        (Some(_), Some(p)) => Err(format!(
            "invalid budget period '{p}': use day, month or total"
        )),
    }
}

/// `30s`, `15m`, `12h`, `30d`, `1y` (365 days).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let bad =
        || format!("invalid duration '{s}': use a number and one of s, m, h, d, y (e.g. 30d)");
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "y" => 365 * 86_400,
        _ => return Err(bad()),
    };
    if n == 0 {
        return Err(format!("invalid duration '{s}': must be greater than zero"));
    }
    n.checked_mul(secs)
        .map(std::time::Duration::from_secs)
        .ok_or_else(bad)
}

/// "12.50" USD -> nano-dollars, exactly: integer arithmetic, at most 9 decimals, no
/// sign, no exponent.
pub fn parse_usd_to_nanos(s: &str) -> Result<i64, String> {
    let bad = || format!("invalid amount '{s}': use a non-negative number of dollars like 12.50");
    let t = s.trim();
    let (whole, frac) = match t.split_once('.') {
        Some((_, "")) => return Err(bad()),
        Some(parts) => parts,
        None => (t, ""),
    };
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || frac.len() > 9 || !digits(whole) || !digits(frac) {
        return Err(bad());
    }
    let w: i64 = whole.parse().map_err(|_| bad())?;
    let f: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().map_err(|_| bad())?
    };
    w.checked_mul(1_000_000_000)
        .and_then(|w| w.checked_add(f))
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations() {
        let secs = |s| parse_duration(s).map(|d: Duration| d.as_secs());
        assert_eq!(secs("30s"), Ok(30));
        assert_eq!(secs("15m"), Ok(900));
        assert_eq!(secs("12h"), Ok(43_200));
        assert_eq!(secs("30d"), Ok(2_592_000));
        assert_eq!(secs("1y"), Ok(31_536_000));
        for bad in [
            "",
            "5",
            "d",
            "5w",
            "-1d",
            "+1d",
            "0s",
            "1.5h",
            " 1d",
            "1d ",
            "1 d",
            "1D",
            "1dd",
            "99999999999999999999s",
            "999999999999999999y",
        ] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.starts_with(&format!("invalid duration '{bad}'")), "{e}");
        }
    }

    #[test]
    fn edits() {
        assert_eq!(none_or::<u32>("none"), Ok(Edit::Remove));
        assert_eq!(none_or::<u32>("60"), Ok(Edit::Set(60)));
        assert!(none_or::<u32>("lots")
            .unwrap_err()
            .ends_with("(or `none` to remove it)"));
        assert_eq!(never_or("never"), Ok(Edit::Remove));
        assert_eq!(never_or("30d"), Ok(Edit::Set("30d".to_owned())));
        assert_eq!(nanos_amount(12_500_000_001).text(), "12.500000001");
        let t = |a: Option<Amount>| a.map(|a| parse_usd_to_nanos(&a.text()).unwrap());
        // The period stays when only the amount changes, and goes with the budget.
        let set = Edit::Set(Amount::Text("2".into()));
        let (a, p) = edited_budget(Some(&set), None, (Some(1), Some("day")));
        assert_eq!((t(a), p.as_deref()), (Some(2_000_000_000), Some("day")));
        let (a, p) = edited_budget(Some(&Edit::Remove), None, (Some(1), Some("day")));
        assert_eq!((t(a), p), (None, None));
        let (a, p) = edited_budget(None, Some("total"), (Some(7), Some("day")));
        assert_eq!((t(a), p.as_deref()), (Some(7), Some("total")));
        let j: serde_json::Value = serde_json::json!(null);
        assert_eq!(edit::<_, u32>(j).unwrap(), Some(Edit::Remove));
    }

    #[test]
    fn amounts() {
        assert_eq!(parse_usd_to_nanos("12.50"), Ok(12_500_000_000));
        assert_eq!(parse_usd_to_nanos("12"), Ok(12_000_000_000));
        assert_eq!(parse_usd_to_nanos("0"), Ok(0));
        assert_eq!(parse_usd_to_nanos(" 0.1 "), Ok(100_000_000));
        assert_eq!(parse_usd_to_nanos("0.000000001"), Ok(1));
        assert_eq!(parse_usd_to_nanos("007.5"), Ok(7_500_000_000));
        assert_eq!(parse_usd_to_nanos("9223372036.854775807"), Ok(i64::MAX));
        // 0.1 + 0.2 in f64 would not be exact; here it is.
        assert_eq!(
            parse_usd_to_nanos("0.1").unwrap() + parse_usd_to_nanos("0.2").unwrap(),
            parse_usd_to_nanos("0.3").unwrap()
        );
        for bad in [
            "-1",
            "+1",
            "1e3",
            "",
            " ",
            ".",
            ".5",
            "12.",
            "1.2.3",
            "0.0000000001",
            "abc",
            "1,5",
            "1_000",
            "$5",
            "NaN",
            "inf",
            "9223372036.854775808",
            "99999999999999999999",
        ] {
            let e = parse_usd_to_nanos(bad).unwrap_err();
            assert!(e.starts_with("invalid amount"), "{bad:?}: {e}");
        }
    }
}
