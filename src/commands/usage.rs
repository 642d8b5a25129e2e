//! `tollgate usage` and the shared usage document of `GET /admin/usage` (README "Usage
//! and cost").

use tollgate_filters::clock::days_from_civil;

use super::{format_rfc3339, table, CommandError};
use crate::store::input::parse_duration;
use crate::store::{GroupBy, Store, UsageRow};

/// Milliseconds since the epoch from RFC 3339 (`2026-11-01T00:00:00Z`, offsets and
/// fractional seconds accepted) or a plain date (`2026-11-01`, midnight UTC).
pub fn parse_rfc3339_ms(s: &str) -> Result<i64, String> {
    let bad = || format!("invalid time '{s}': use RFC 3339, e.g. 2026-11-01T00:00:00Z");
    let num = |t: &str| t.parse::<i64>().map_err(|_| bad());
    let (date, time) = s.split_once(['T', 't', ' ']).unwrap_or((s, "00:00:00Z"));
    let mut d = date.splitn(3, '-');
    let (y, m, day) = (
        num(d.next().unwrap_or(""))?,
        num(d.next().unwrap_or(""))?,
        num(d.next().unwrap_or(""))?,
    );
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return Err(bad());
    }
    let (clock, offset_s) = if let Some(c) = time.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else if let Some(i) = time.rfind(['+', '-']) {
        let (c, off) = time.split_at(i);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (oh, om) = off[1..].split_once(':').ok_or_else(bad)?;
        (c, sign * (num(oh)? * 3600 + num(om)? * 60))
    } else {
        return Err(bad());
    };
    let mut c = clock.splitn(3, ':');
    let (h, mi) = (num(c.next().unwrap_or(""))?, num(c.next().unwrap_or(""))?);
    let sec_s = c.next().unwrap_or("0");
    let (sec, frac) = sec_s.split_once('.').unwrap_or((sec_s, ""));
    let ms = if frac.is_empty() {
        0
    } else {
        num(&format!("{:0<3}", &frac[..frac.len().min(3)]))?
    };
    let days = days_from_civil(y, m, day);
    Ok((days * 86_400 + h * 3600 + mi * 60 + num(sec)? - offset_s) * 1000 + ms)
}

/// The usage document: `{"by","since","until","rows":[...]}`, cost in USD.
pub fn usage_document(
    by: GroupBy,
    since: Option<&str>,
    until: Option<&str>,
    rows: &[UsageRow],
) -> serde_json::Value {
    let rows: Vec<_> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "group": r.group, "requests": r.requests, "input_tokens": r.input_tokens,
                "output_tokens": r.output_tokens, "cache_read_tokens": r.cache_read_tokens,
                "cache_write_tokens": r.cache_write_tokens, "reasoning_tokens": r.reasoning_tokens,
                "estimated_requests": r.estimated_requests, "cost_usd": r.cost_nanos as f64 / 1e9,
            })
        })
        .collect();
    serde_json::json!({"by": by.as_str(), "since": since, "until": until, "rows": rows})
}

/// Grouped totals for `since..until` (RFC 3339 strings, validated here).
pub fn report(
    store: &Store,
    by: GroupBy,
    since: Option<&str>,
    until: Option<&str>,
) -> Result<Vec<UsageRow>, CommandError> {
    let ms = |s: Option<&str>| {
        s.map(parse_rfc3339_ms)
            .transpose()
            .map_err(CommandError::Invalid)
    };
    Ok(store.usage_report(by, ms(since)?, ms(until)?)?)
}

pub fn usage(
    store: &Store,
    by: GroupBy,
    since: Option<&str>,
    until: Option<&str>,
    json: bool,
) -> Result<String, CommandError> {
    let rows = report(store, by, since, until)?;
    if json {
        return Ok(usage_document(by, since, until, &rows).to_string() + "\n");
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.group.clone(),
                r.requests.to_string(),
                r.input_tokens.to_string(),
                r.output_tokens.to_string(),
                r.cache_read_tokens.to_string(),
                r.cache_write_tokens.to_string(),
                r.reasoning_tokens.to_string(),
                r.estimated_requests.to_string(),
                format!(
                    "{}.{:09}",
                    r.cost_nanos / 1_000_000_000,
                    r.cost_nanos % 1_000_000_000
                ),
            ]
        })
        .collect();
    let header = [
        by.as_str().to_uppercase(),
        "REQUESTS".into(),
        "INPUT".into(),
        "OUTPUT".into(),
        "CACHE_READ".into(),
        "CACHE_WRITE".into(),
        "REASONING".into(),
        "ESTIMATED".into(),
        "COST_USD".into(),
    ];
    Ok(table(
        &header.iter().map(String::as_str).collect::<Vec<_>>(),
        &cells,
    ))
}

/// The cut-off of `usage prune --older-than` (and `POST /admin/usage/prune`) at `now`
/// (unix seconds): unix milliseconds.
pub fn prune_before_ms(older_than: &str, now: i64) -> Result<i64, CommandError> {
    let age = parse_duration(older_than).map_err(CommandError::Invalid)?;
    let age_s = i64::try_from(age.as_secs()).unwrap_or(i64::MAX);
    Ok(now.saturating_sub(age_s).saturating_mul(1000))
}

pub fn prune(store: &Store, older_than: &str, now: i64) -> Result<String, CommandError> {
    let before_ms = prune_before_ms(older_than, now)?;
    let n = store.prune_usage(before_ms)?;
    Ok(format!(
        "deleted {n} usage events older than {}\n",
        format_rfc3339(before_ms / 1000)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(
            parse_rfc3339_ms("2026-11-18T11:06:40Z"),
            Ok(1_795_000_000_000)
        );
        assert_eq!(
            parse_rfc3339_ms("2026-11-18T12:06:40.5+01:00"),
            Ok(1_795_000_000_500)
        );
        assert_eq!(parse_rfc3339_ms("2026-11-18"), Ok(1_794_960_000_000));
        assert!(parse_rfc3339_ms("yesterday").is_err());
        assert!(parse_rfc3339_ms("2026-13-01T00:00:00Z").is_err());
    }
}
