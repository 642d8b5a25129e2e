//! What the CLI's store subcommands do, returning the text to print, so that `main.rs`
//! stays a dispatcher and the logic is unit-tested.

pub mod check;
pub mod keys;
pub mod prices;
pub mod provider_keys;
pub mod usage;
pub mod users;

use tollgate_filters::clock::civil_from_days;

use crate::store::{AuditRow, Store, StoreError};

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

/// Records a change made from the command line in the audit log, as the admin API
/// records its own (actor `cli`, no source address). Best effort, as there: the change
/// is made already, so a failure to record it is reported, not returned.
pub fn audit_cli(store: &Store, action: &str, target: &str, detail: serde_json::Value, now: i64) {
    let entry = AuditRow {
        id: 0,
        ts: now,
        actor: "cli".to_owned(),
        action: action.to_owned(),
        target: Some(target.to_owned()),
        source: None,
        detail,
    };
    if let Err(e) = store.append_audit(&entry) {
        log::warn!("audit: cannot record {action}: {e}");
    }
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

    #[test]
    fn amounts_are_shown_exactly() {
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
