//! What the CLI's store subcommands do, returning the text to print, so that `main.rs`
//! stays a dispatcher and the logic is unit-tested.

pub mod keys;
pub mod provider_keys;
pub mod usage;
pub mod users;

use tollgate_filters::clock::civil_from_days;

use crate::store::StoreError;

/// Why a command failed; `Display` is the one line printed on stderr (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{0}")]
    Store(#[from] StoreError),
    /// A bad argument; the message names it.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Keyring(#[from] crate::keys::KeyringError),
    #[error("{0}")]
    Secrets(#[from] crate::store::secrets::SecretsError),
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

/// Nano-dollars as a decimal with at least 2 and at most 9 decimals: `5.00`, `0.000125`.
pub fn format_usd(nanos: i64) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    let frac = format!("{:09}", n % 1_000_000_000);
    let frac = frac.trim_end_matches('0');
    format!("{sign}{}.{frac:0<2}", n / 1_000_000_000)
}

/// RFC 3339 UTC for unix seconds.
pub fn format_rfc3339(unix: i64) -> String {
    let (y, m, d) = civil_from_days(unix.div_euclid(86_400));
    let secs = unix.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Left-aligned text table.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ");
        s.truncate(s.trim_end().len());
        s + "\n"
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    for r in rows {
        out += &line(r.clone());
    }
    out
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
        assert_eq!(format_usd(5_000_000_000), "5.00");
        assert_eq!(format_usd(12_500_000_000), "12.50");
        assert_eq!(format_usd(125_000), "0.000125");
        assert_eq!(format_usd(1), "0.000000001");
        assert_eq!(format_usd(0), "0.00");
        assert_eq!(format_usd(-1_500_000_000), "-1.50");
        assert_eq!(format_usd(i64::MIN), "-9223372036.854775808");
    }

    #[test]
    fn dates() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(format_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_rfc3339(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(format_rfc3339(1_795_000_000), "2026-11-18T11:06:40Z");
        assert_eq!(format_rfc3339(253_402_300_799), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn tables_align() {
        let t = table(
            &["A", "LONG"],
            &[vec!["xyz".into(), "1".into()], vec!["é".into(), "".into()]],
        );
        assert_eq!(t, "A    LONG\nxyz  1\né\n");
    }
}
