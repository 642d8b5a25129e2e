//! `tollgate key create|list|revoke|update`. A new key is checked by the store
//! ([`crate::store::KeyCreate`]), by the same rules as `POST /admin/keys`; an update
//! ([`crate::store::KeyUpdate`]) as `PATCH /admin/keys/{id}` is.

use super::{audit_cli, format_rfc3339, format_usd, table, CommandError};
use crate::store::secrets::KeyHasher;
use crate::store::{KeyCreate, KeyRow, KeyUpdate, Store};

/// Creates a key and returns only the key and a newline: the one time it is shown.
pub fn key_create(
    store: &Store,
    hasher: &KeyHasher,
    new: &KeyCreate,
    now: i64,
) -> Result<String, CommandError> {
    let (_, key) = store.create_key(hasher, new, now)?;
    Ok(format!("{}\n", key.expose()))
}

/// "$5.00/month, 60 rpm, 1000 tpm, expires 2026-01-01T00:00:00Z", or "-".
fn limits(k: &KeyRow) -> String {
    let mut parts = Vec::new();
    if let Some(b) = k.budget_usd_nanos {
        parts.push(format!(
            "${}/{}",
            format_usd(b),
            k.budget_period.as_deref().unwrap_or("month")
        ));
    }
    if let Some(r) = k.rpm {
        parts.push(format!("{r} rpm"));
    }
    if let Some(t) = k.tpm {
        parts.push(format!("{t} tpm"));
    }
    if let Some(e) = k.expires_at {
        parts.push(format!("expires {}", format_rfc3339(e)));
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(", ")
    }
}

/// A key as `--json` lists it (no secret: [`KeyRow`] has none).
pub fn key_json(k: &KeyRow) -> serde_json::Value {
    let t = |v: Option<i64>| v.map(format_rfc3339);
    serde_json::json!({
        "id": k.id,
        "user": k.user,
        "name": k.name,
        "prefix": k.prefix,
        "models": k.models,
        "budget_usd": k.budget_usd_nanos.map(format_usd),
        "budget_period": k.budget_period,
        "rpm": k.rpm,
        "tpm": k.tpm,
        "created_at": format_rfc3339(k.created_at),
        "expires_at": t(k.expires_at),
        "last_used_at": t(k.last_used_at),
        "revoked_at": t(k.revoked_at),
    })
}

/// Every key (or one user's), as a table or a JSON array; never a secret.
pub fn key_list(store: &Store, user: Option<&str>, json: bool) -> Result<String, CommandError> {
    let keys = store.list_keys(user)?;
    if json {
        let v: Vec<_> = keys.iter().map(key_json).collect();
        return Ok(serde_json::Value::Array(v).to_string() + "\n");
    }
    let dash = |v: Option<i64>| v.map_or_else(|| "-".into(), format_rfc3339);
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            vec![
                k.id.clone(),
                k.user.clone(),
                k.name.clone().unwrap_or_else(|| "-".into()),
                format!("{}...", k.prefix),
                if k.models.is_empty() {
                    "*".into()
                } else {
                    k.models.join(",")
                },
                limits(k),
                format_rfc3339(k.created_at),
                dash(k.last_used_at),
                dash(k.revoked_at),
            ]
        })
        .collect();
    Ok(table(
        &[
            "ID",
            "USER",
            "LABEL",
            "PREFIX",
            "SCOPES",
            "LIMITS",
            "CREATED",
            "LAST USED",
            "REVOKED",
        ],
        &rows,
    ))
}

/// What an update changed, as the audit log records it: each field given, as the key
/// now has it (the budget's amount and period together).
pub fn update_detail(update: &KeyUpdate, row: &KeyRow) -> serde_json::Value {
    let doc = key_json(row);
    let budget = update.budget_usd.is_some() || update.budget_period.is_some();
    let given = [
        ("name", update.name.is_some()),
        ("models", update.models.is_some()),
        ("budget_usd", budget),
        ("budget_period", budget),
        ("rpm", update.rpm.is_some()),
        ("tpm", update.tpm.is_some()),
        ("expires_at", update.expires_in.is_some()),
    ];
    let mut detail = serde_json::json!({ "user": row.user });
    for (field, _) in given.iter().filter(|(_, g)| *g) {
        detail[*field] = doc[*field].clone();
    }
    detail
}

/// `key update ID ...`: the key changed in place (checked as a new key is), audited.
pub fn key_update(
    store: &Store,
    id: &str,
    update: &KeyUpdate,
    now: i64,
) -> Result<String, CommandError> {
    let row = store.update_key(id, update, now)?;
    audit_cli(store, "key.update", id, update_detail(update, &row), now);
    Ok(format!("updated key {id}\n"))
}

/// Revokes a key; it is refused from the next request on (the key cache's refresh).
pub fn key_revoke(store: &Store, id: &str, now: i64) -> Result<String, CommandError> {
    store.revoke_key(id, now)?;
    Ok(format!("revoked key {id}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::input::Amount;
    use crate::store::secrets::parse_gateway_key;
    use crate::store::testing::{add_user, hasher_in, temp_store};
    use tollgate_filters::Role;

    fn setup() -> (tempfile::TempDir, Store, KeyHasher) {
        let (dir, s) = temp_store();
        let h = hasher_in(dir.path());
        add_user(&s, "alice", Role::Member, 0);
        (dir, s, h)
    }

    /// The cells of a table line (columns are separated by two or more spaces).
    fn cells(line: &str) -> Vec<String> {
        line.split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(String::from)
            .collect()
    }

    fn args(f: impl FnOnce(&mut KeyCreate)) -> KeyCreate {
        let mut a = KeyCreate::for_user("alice");
        f(&mut a);
        a
    }

    #[test]
    fn create_list_revoke_never_show_the_secret() {
        let (_d, s, h) = setup();
        let a = args(|a| {
            a.name = Some("laptop".into());
            a.models = vec!["gpt-*".into(), "claude-3-5-sonnet".into()];
            a.budget_usd = Some(Amount::Text("5".into()));
            a.rpm = Some(60);
            a.tpm = Some(100_000);
            a.expires_in = Some("1h".into());
        });
        let out = key_create(&s, &h, &a, 100).unwrap();
        let key = out.strip_suffix('\n').unwrap();
        let (id, secret) = parse_gateway_key(key).unwrap();

        let table = key_list(&s, None, false).unwrap();
        let json = key_list(&s, Some("alice"), true).unwrap();
        for listed in [&table, &json] {
            assert!(!listed.contains(secret), "the secret was listed: {listed}");
            assert!(
                !listed.contains(&secret[..8]),
                "too much of the secret: {listed}"
            );
        }
        let mut lines = table.lines();
        assert_eq!(
            cells(lines.next().unwrap()),
            [
                "ID",
                "USER",
                "LABEL",
                "PREFIX",
                "SCOPES",
                "LIMITS",
                "CREATED",
                "LAST USED",
                "REVOKED"
            ]
        );
        assert_eq!(
            cells(lines.next().unwrap()),
            [
                id,
                "alice",
                "laptop",
                &format!("tg_{id}_{}...", &secret[..4]),
                "gpt-*,claude-3-5-sonnet",
                "$5.00/month, 60 rpm, 100000 tpm, expires 1970-01-01T01:01:40Z",
                "1970-01-01T00:01:40Z",
                "-",
                "-"
            ]
        );
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v[0]["id"], id);
        assert_eq!(v[0]["budget_usd"], "5.00");
        assert_eq!(v[0]["budget_period"], "month");
        assert_eq!(v[0]["revoked_at"], serde_json::Value::Null);

        assert_eq!(
            key_revoke(&s, id, 200).unwrap(),
            format!("revoked key {id}\n")
        );
        assert_eq!(
            key_revoke(&s, id, 300).unwrap(),
            format!("revoked key {id}\n")
        );
        let v: serde_json::Value =
            serde_json::from_str(&key_list(&s, None, true).unwrap()).unwrap();
        assert_eq!(v[0]["revoked_at"], "1970-01-01T00:03:20Z");
        assert_eq!(
            key_revoke(&s, "nope", 200).unwrap_err().to_string(),
            "no key with id 'nope'"
        );
    }

    #[test]
    fn a_plain_key_has_no_limits() {
        let (_d, s, h) = setup();
        key_create(&s, &h, &args(|_| {}), 0).unwrap();
        let table = key_list(&s, None, false).unwrap();
        let row = cells(table.lines().nth(1).unwrap());
        assert_eq!(row[2], "-");
        assert_eq!(row[4..], ["*", "-", "1970-01-01T00:00:00Z", "-", "-"]);
        assert_eq!(
            key_list(&s, None, true).unwrap().matches("\"id\"").count(),
            1
        );
        assert_eq!(
            key_list(&s, Some("nobody"), false).unwrap_err().to_string(),
            "unknown user 'nobody'"
        );
    }

    #[test]
    fn bad_options_are_refused_with_one_line() {
        let (_d, s, h) = setup();
        let err = |a: KeyCreate| key_create(&s, &h, &a, 0).unwrap_err().to_string();
        assert_eq!(err(args(|a| a.user = "bob".into())), "unknown user 'bob'");
        assert!(err(args(|a| a.expires_in = Some("soon".into())))
            .starts_with("invalid duration 'soon'"));
        assert!(err(args(|a| a.expires_in = Some("500000000000y".into()))).ends_with("too long"));
        assert!(
            err(args(|a| a.budget_usd = Some(Amount::Text("-5".into()))))
                .starts_with("invalid amount '-5'")
        );
        assert_eq!(
            err(args(|a| a.budget_period = Some("day".into()))),
            "a budget period needs a budget amount (--budget-usd, or budget_usd in the admin API)"
        );
        assert_eq!(
            err(args(|a| {
                a.budget_usd = Some(Amount::Text("1".into()));
                a.budget_period = Some("week".into());
            })),
            "invalid budget period 'week': use day, month or total"
        );
        assert_eq!(
            err(args(|a| a.rpm = Some(0))),
            "--rpm and --tpm must be greater than 0"
        );
        assert_eq!(
            err(args(|a| a.tpm = Some(0))),
            "--rpm and --tpm must be greater than 0"
        );
        for m in ["", "gpt 4", "gpt-\u{1b}[2J"] {
            assert!(
                err(args(|a| a.models = vec![m.into()])).starts_with("invalid model pattern"),
                "{m:?}"
            );
        }
        assert!(err(args(|a| a.name = Some("evil\nrow".into()))).starts_with("invalid key name"));
        assert!(err(args(|a| a.name = Some("x".repeat(129)))).starts_with("invalid key name"));
        assert!(s.list_keys(None).unwrap().is_empty());
    }
}
