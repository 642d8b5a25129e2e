//! `tollgate key create|list|revoke`.

use super::{format_rfc3339, parse_duration, parse_usd_to_nanos, table, CommandError};
use crate::secrets::KeyHasher;
use crate::store::{KeyRow, NewKey, Store};

/// The options of `key create`, as typed.
#[derive(Debug, Clone, Default)]
pub struct KeyCreateArgs {
    pub user: String,
    pub name: Option<String>,
    pub models: Vec<String>,
    pub budget_usd: Option<String>,
    pub budget_period: Option<String>,
    pub rpm: Option<u32>,
    pub tpm: Option<u64>,
    pub expires_in: Option<String>,
}

/// Creates a key and returns only the key and a newline: the one time it is shown.
pub fn key_create(
    store: &Store,
    hasher: &KeyHasher,
    a: KeyCreateArgs,
    now: i64,
) -> Result<String, CommandError> {
    let budget = a
        .budget_usd
        .as_deref()
        .map(parse_usd_to_nanos)
        .transpose()
        .map_err(CommandError::Invalid)?;
    if a.budget_period.is_some() && budget.is_none() {
        return Err(CommandError::Invalid(
            "--budget-period needs --budget-usd".into(),
        ));
    }
    if let Some(p) = a
        .budget_period
        .as_deref()
        .filter(|p| !["day", "month", "total"].contains(p))
    {
        return Err(CommandError::Invalid(format!(
            "invalid budget period '{p}': use day, month or total"
        )));
    }
    let expires_at = match a.expires_in.as_deref() {
        Some(d) => Some(now + parse_duration(d).map_err(CommandError::Invalid)?.as_secs() as i64),
        None => None,
    };
    if a.rpm == Some(0) || a.tpm == Some(0) {
        return Err(CommandError::Invalid(
            "--rpm and --tpm must be greater than 0".into(),
        ));
    }
    let new = NewKey {
        user: a.user,
        name: a.name,
        models: a.models,
        budget_period: budget.map(|_| a.budget_period.unwrap_or_else(|| "month".into())),
        budget_usd_nanos: budget,
        rpm: a.rpm,
        tpm: a.tpm,
        expires_at,
    };
    let (_, key) = store.create_key(hasher, new, now)?;
    Ok(format!("{}\n", key.expose()))
}

fn limits(k: &KeyRow) -> String {
    let mut parts = Vec::new();
    if let Some(b) = k.budget_usd_nanos {
        parts.push(format!(
            "${}.{:09}/{}",
            b / 1_000_000_000,
            b % 1_000_000_000,
            k.budget_period.as_deref().unwrap_or("month")
        ));
    }
    if let Some(r) = k.rpm {
        parts.push(format!("{r} rpm"));
    }
    if let Some(t) = k.tpm {
        parts.push(format!("{t} tpm"));
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(", ")
    }
}

pub fn key_list(store: &Store, user: Option<&str>, json: bool) -> Result<String, CommandError> {
    let keys = store.list_keys(user)?;
    let t = |v: Option<i64>| v.map(format_rfc3339);
    if json {
        let v: Vec<_> = keys
            .iter()
            .map(|k| {
                serde_json::json!({
                    "id": k.id, "user": k.user, "name": k.name, "prefix": k.prefix, "models": k.models,
                    "budget_usd_nanos": k.budget_usd_nanos, "budget_period": k.budget_period,
                    "rpm": k.rpm, "tpm": k.tpm, "created_at": format_rfc3339(k.created_at),
                    "expires_at": t(k.expires_at), "last_used_at": t(k.last_used_at), "revoked_at": t(k.revoked_at),
                })
            })
            .collect();
        return Ok(serde_json::Value::Array(v).to_string() + "\n");
    }
    let dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            vec![
                k.id.clone(),
                k.user.clone(),
                dash(k.name.clone()),
                k.prefix.clone() + "...",
                if k.models.is_empty() {
                    "*".into()
                } else {
                    k.models.join(",")
                },
                limits(k),
                format_rfc3339(k.created_at),
                dash(t(k.last_used_at)),
                dash(t(k.revoked_at)),
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

pub fn key_revoke(store: &Store, id: &str, now: i64) -> Result<String, CommandError> {
    store.revoke_key(id, now)?;
    Ok(format!("revoked key {id}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::MasterKey;
    use tollgate_filters::Role;

    #[test]
    fn create_list_revoke_never_show_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("t.db")).unwrap();
        let h = KeyHasher::new(&MasterKey::load_or_create("", dir.path()).unwrap());
        s.create_user("alice", Role::Member, None, 0).unwrap();
        let args = KeyCreateArgs {
            user: "alice".into(),
            models: vec!["gpt-*".into()],
            budget_usd: Some("5".into()),
            rpm: Some(60),
            expires_in: Some("1h".into()),
            ..Default::default()
        };
        let out = key_create(&s, &h, args, 100).unwrap();
        let key = out.trim_end();
        assert!(key.starts_with("tg_") && out.ends_with('\n') && !key.contains('\n'));
        let listed =
            key_list(&s, None, false).unwrap() + &key_list(&s, Some("alice"), true).unwrap();
        assert!(!listed.contains(&key[16..]), "the secret was listed");
        assert!(listed.contains("$5.000000000/month, 60 rpm"), "{listed}");
        let id = key.split('_').nth(1).unwrap();
        assert_eq!(
            key_revoke(&s, id, 200).unwrap(),
            format!("revoked key {id}\n")
        );
        assert!(key_revoke(&s, "nope", 200).is_err());
        let bad = KeyCreateArgs {
            user: "bob".into(),
            ..Default::default()
        };
        assert_eq!(
            key_create(&s, &h, bad, 0).unwrap_err().to_string(),
            "unknown user 'bob'"
        );
        let bad = KeyCreateArgs {
            user: "alice".into(),
            expires_in: Some("soon".into()),
            ..Default::default()
        };
        assert!(key_create(&s, &h, bad, 0).is_err());
    }
}
