//! Queries on `api_keys`. The secret itself is never stored: only its HMAC, so a row
//! (or a whole stolen database) cannot be turned back into a usable key.

use rusqlite::types::Type;
use rusqlite::{params, OptionalExtension};
use serde::Deserialize;
use tollgate_filters::{Role, Secret};

use super::input::{
    check_model_pattern, edit, edited_budget, never_or, none_or, parse_budget, parse_duration,
    Amount, Edit,
};
use super::users::role_column;
use super::{Store, StoreError};
use crate::store::secrets::{generate_gateway_key, parse_gateway_key, KeyHasher, KEY_ID_LEN};

/// Characters of the secret kept in `prefix`, so an operator can tell keys apart.
const PREFIX_SECRET_CHARS: usize = 4;

const MAX_LABEL_CHARS: usize = 128;

/// A new gateway key as asked for, in the one shape every way in shares: the options of
/// `tollgate key create`, the body of `POST /admin/keys`, and what
/// [`Store::create_key`] takes. The store checks it ([`KeyCreate::check`]), so no way
/// in can skip a rule or forget a field.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyCreate {
    #[arg(long)]
    pub user: String,
    /// A label for the key
    #[arg(long)]
    pub name: Option<String>,
    /// Model patterns the key may use, comma separated (default: all)
    #[arg(long, value_delimiter = ',')]
    #[serde(default, deserialize_with = "null_as_empty")]
    pub models: Vec<String>,
    #[arg(long, value_name = "USD")]
    pub budget_usd: Option<Amount>,
    // day | month | total; month when a budget is given without one.
    #[arg(long, value_parser = ["day", "month", "total"])]
    pub budget_period: Option<String>,
    #[arg(long)]
    pub rpm: Option<u32>,
    #[arg(long)]
    pub tpm: Option<u64>,
    /// e.g. 30s, 15m, 12h, 30d, 1y
    #[arg(long, value_name = "DURATION")]
    pub expires_in: Option<String>,
}

/// `"models": null` is no list, as when the field is left out.
fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

/// Changes to a key, in the one shape every way in shares: the options of
/// `tollgate key update`, the body of `PATCH /admin/keys/{id}`, and what
/// [`Store::update_key`] takes. A field left out stays as it is; `none`/`never` on the
/// command line and `null` in JSON remove a limit. The key as it would be after the
/// update is checked as a new key is ([`KeyCreate::check`]), so the rules are the same.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyUpdate {
    /// A new label ("" removes it)
    #[arg(long, value_parser = |s: &str| Ok::<_, String>(Edit::Set(s.to_owned())))]
    #[serde(default, deserialize_with = "edit")]
    pub name: Option<Edit<String>>,
    /// Model patterns the key may use, comma separated ("" for all)
    #[arg(long, value_delimiter = ',')]
    #[serde(default, deserialize_with = "null_as_all")]
    pub models: Option<Vec<String>>,
    #[arg(long, value_name = "USD|none", value_parser = none_or::<Amount>)]
    #[serde(default, deserialize_with = "edit")]
    pub budget_usd: Option<Edit<Amount>>,
    // day | month | total; the budget's period so far (month for a new budget) when
    // only the amount changes.
    #[arg(long, value_parser = ["day", "month", "total"])]
    pub budget_period: Option<String>,
    #[arg(long, value_name = "N|none", value_parser = none_or::<u32>)]
    #[serde(default, deserialize_with = "edit")]
    pub rpm: Option<Edit<u32>>,
    #[arg(long, value_name = "N|none", value_parser = none_or::<u64>)]
    #[serde(default, deserialize_with = "edit")]
    pub tpm: Option<Edit<u64>>,
    /// From now, e.g. 30d; never: no expiry
    #[arg(long, value_name = "DURATION|never", value_parser = never_or)]
    #[serde(default, deserialize_with = "edit")]
    pub expires_in: Option<Edit<String>>,
}

/// `"models": null` in an update is every model, as `[]` is.
fn null_as_all<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    Ok(Some(
        Option::<Vec<String>>::deserialize(d)?.unwrap_or_default(),
    ))
}

impl KeyUpdate {
    fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.models.is_none()
            && self.budget_usd.is_none()
            && self.budget_period.is_none()
            && self.rpm.is_none()
            && self.tpm.is_none()
            && self.expires_in.is_none()
    }

    /// The key `current` becomes, once that passes the checks of a new key.
    fn applied(&self, current: KeyRow, now: i64) -> Result<KeyRow, StoreError> {
        let wanted = self.applied_to(&current);
        let checked = wanted.check(now)?;
        let expires_at = match &self.expires_in {
            None => current.expires_at,
            Some(Edit::Remove) => None,
            Some(Edit::Set(_)) => checked.expires_at,
        };
        let (budget_usd_nanos, budget_period) = checked.budget.unzip();
        Ok(KeyRow {
            name: checked.name,
            models: wanted.models,
            budget_usd_nanos,
            budget_period,
            rpm: wanted.rpm,
            tpm: wanted.tpm,
            expires_at,
            ..current
        })
    }

    /// The key `current` would be after this update, as the request for a new key.
    fn applied_to(&self, current: &KeyRow) -> KeyCreate {
        let (budget_usd, budget_period) = edited_budget(
            self.budget_usd.as_ref(),
            self.budget_period.as_deref(),
            (current.budget_usd_nanos, current.budget_period.as_deref()),
        );
        KeyCreate {
            user: current.user.clone(),
            name: Edit::applied(self.name.as_ref(), current.name.clone()),
            models: self
                .models
                .clone()
                .unwrap_or_else(|| current.models.clone()),
            budget_usd,
            budget_period,
            rpm: Edit::applied(self.rpm.as_ref(), current.rpm),
            tpm: Edit::applied(self.tpm.as_ref(), current.tpm),
            expires_in: match &self.expires_in {
                Some(Edit::Set(d)) => Some(d.clone()),
                _ => None,
            },
        }
    }
}

/// A [`KeyCreate`] that passed its checks, in the units the table holds.
struct CheckedKey {
    name: Option<String>,
    budget: Option<(i64, String)>,
    expires_at: Option<i64>,
}

impl KeyCreate {
    /// A key for `user` with no limits: the starting point of tests and callers that
    /// set a field or two.
    pub fn for_user(user: &str) -> Self {
        KeyCreate {
            user: user.to_owned(),
            ..KeyCreate::default()
        }
    }

    /// The rules every new key follows, whichever way it came in; the message of an
    /// [`StoreError::Invalid`] names the option at fault.
    fn check(&self, now: i64) -> Result<CheckedKey, StoreError> {
        let invalid = |m: String| StoreError::Invalid(m);
        // Labels and patterns end up in tables on an operator's terminal: no control
        // characters (escape sequences, newlines) that could forge or hide rows.
        let name = self.name.clone().filter(|n| !n.trim().is_empty());
        if let Some(n) = &name {
            if n.chars().count() > MAX_LABEL_CHARS || n.chars().any(char::is_control) {
                return Err(invalid(format!(
                    "invalid key name: use at most {MAX_LABEL_CHARS} printable characters"
                )));
            }
        }
        for m in &self.models {
            check_model_pattern(m).map_err(invalid)?;
        }
        let budget = parse_budget(self.budget_usd.as_ref(), self.budget_period.as_deref())
            .map_err(invalid)?;
        if self.rpm == Some(0) || self.tpm == Some(0) {
            return Err(invalid("--rpm and --tpm must be greater than 0".into()));
        }
        let expires_at = match self.expires_in.as_deref() {
            None => None,
            Some(d) => {
                let secs = parse_duration(d).map_err(invalid)?.as_secs();
                let at = i64::try_from(secs).ok().and_then(|s| now.checked_add(s));
                Some(at.ok_or_else(|| invalid(format!("invalid duration '{d}': too long")))?)
            }
        };
        Ok(CheckedKey {
            name,
            budget,
            expires_at,
        })
    }
}

/// A key as listed: everything but its secret, which this type has no field for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    pub id: String,
    pub user: String,
    pub name: Option<String>,
    /// `tg_<id>_` and the first characters of the secret, for display.
    pub prefix: String,
    pub models: Vec<String>,
    pub budget_usd_nanos: Option<i64>,
    pub budget_period: Option<String>,
    pub rpm: Option<u32>,
    pub tpm: Option<u64>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

/// What authentication needs about a key.
#[derive(Clone)]
pub struct AuthKeyRow {
    pub id: String,
    pub secret_hmac: Vec<u8>,
    pub user_id: i64,
    pub username: String,
    pub role: Role,
    pub models: Vec<String>,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// The key's budget (nano-dollars) and period.
    pub budget: Option<(i64, String)>,
    /// The owner's budget (nano-dollars) and period.
    pub user_budget: Option<(i64, String)>,
    pub rpm: Option<u32>,
    pub tpm: Option<u64>,
}

// By hand, to leave the HMAC out of logs: it is not the secret, but it is what an
// offline guess would be checked against.
impl std::fmt::Debug for AuthKeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthKeyRow")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("username", &self.username)
            .field("role", &self.role)
            .field("models", &self.models)
            .field("expires_at", &self.expires_at)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

/// The scopes column. A row that does not decode is an error rather than an empty
/// list: empty means "every model", and corruption must not widen a key's reach.
fn models_column(r: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<Vec<String>> {
    let text: String = r.get(idx)?;
    serde_json::from_str(&text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e)))
}

/// Spend in nano-dollars per key id and per user id.
pub type SpendByOwner = (Vec<(String, u64)>, Vec<(i64, u64)>);

const AUTH_SELECT: &str = "SELECT k.id, k.secret_hmac, k.user_id, u.username, u.role, k.models, k.expires_at, k.revoked_at, \
     k.budget_usd_nanos, k.budget_period, u.budget_usd_nanos, u.budget_period, k.rpm, k.tpm \
     FROM api_keys k JOIN users u ON u.id = k.user_id";

fn auth_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuthKeyRow> {
    Ok(AuthKeyRow {
        id: r.get(0)?,
        secret_hmac: r.get(1)?,
        user_id: r.get(2)?,
        username: r.get(3)?,
        role: role_column(r, 4)?,
        models: models_column(r, 5)?,
        expires_at: r.get(6)?,
        revoked_at: r.get(7)?,
        budget: pair(r.get(8)?, r.get(9)?),
        user_budget: pair(r.get(10)?, r.get(11)?),
        rpm: r
            .get::<_, Option<i64>>(12)?
            .and_then(|v| u32::try_from(v).ok()),
        tpm: r
            .get::<_, Option<i64>>(13)?
            .and_then(|v| u64::try_from(v).ok()),
    })
}

/// A budget: amount and period together, or none.
fn pair(nanos: Option<i64>, period: Option<String>) -> Option<(i64, String)> {
    Some((nanos?, period.unwrap_or_else(|| "month".to_owned())))
}

/// The columns [`key_row`] reads, in its order.
const KEY_SELECT: &str = "SELECT k.id, u.username, k.name, k.prefix, k.models, k.budget_usd_nanos, k.budget_period, k.rpm, k.tpm, \
     k.created_at, k.expires_at, k.revoked_at, k.last_used_at \
     FROM api_keys k JOIN users u ON u.id = k.user_id";

fn key_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<KeyRow> {
    Ok(KeyRow {
        id: r.get(0)?,
        user: r.get(1)?,
        name: r.get(2)?,
        prefix: r.get(3)?,
        models: models_column(r, 4)?,
        budget_usd_nanos: r.get(5)?,
        budget_period: r.get(6)?,
        rpm: r.get(7)?,
        tpm: r
            .get::<_, Option<i64>>(8)?
            .map(|t| {
                u64::try_from(t).map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(8, Type::Integer, Box::new(e))
                })
            })
            .transpose()?,
        created_at: r.get(9)?,
        expires_at: r.get(10)?,
        revoked_at: r.get(11)?,
        last_used_at: r.get(12)?,
    })
}

impl Store {
    /// Creates a key for an existing user, once `new` passes its checks; returns its row
    /// and the full key, which is shown once and never stored.
    pub fn create_key(
        &self,
        hasher: &KeyHasher,
        new: &KeyCreate,
        now: i64,
    ) -> Result<(KeyRow, Secret), StoreError> {
        let checked = new.check(now)?;
        let user = self
            .user_by_name(&new.user)?
            .ok_or_else(|| StoreError::UnknownUser(new.user.clone()))?;
        let (id, full) = generate_gateway_key();
        let Some((_, secret)) = parse_gateway_key(full.expose()) else {
            unreachable!("a generated key parses")
        };
        let prefix: String = full
            .expose()
            .chars()
            .take("tg_".len() + KEY_ID_LEN + "_".len() + PREFIX_SECRET_CHARS)
            .collect();
        let (budget_usd_nanos, budget_period) = checked.budget.unzip();
        let row = KeyRow {
            id,
            user: user.username,
            name: checked.name,
            prefix,
            models: new.models.clone(),
            budget_usd_nanos,
            budget_period,
            rpm: new.rpm,
            tpm: new.tpm,
            created_at: now,
            expires_at: checked.expires_at,
            revoked_at: None,
            last_used_at: None,
        };
        if let Some(pg) = self.pg() {
            pg.insert_key(&row, user.id, hasher.hash(secret))?;
            return Ok((row, full));
        }
        self.conn()?.execute(
            "INSERT INTO api_keys (id, user_id, name, secret_hmac, prefix, models, budget_usd_nanos, budget_period, rpm, tpm, created_at, expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                row.id,
                user.id,
                row.name,
                hasher.hash(secret),
                row.prefix,
                serde_json::Value::from(row.models.clone()).to_string(),
                row.budget_usd_nanos,
                row.budget_period,
                row.rpm,
                // SQLite integers are i64; no real limit is anywhere near the top.
                row.tpm.map(|t| i64::try_from(t).unwrap_or(i64::MAX)),
                now,
                row.expires_at
            ],
        )?;
        Ok((row, full))
    }

    /// Every key, or one user's (`UnknownUser` if that user does not exist), oldest first.
    pub fn list_keys(&self, user: Option<&str>) -> Result<Vec<KeyRow>, StoreError> {
        if let Some(u) = user {
            self.user_by_name(u)?
                .ok_or_else(|| StoreError::UnknownUser(u.to_owned()))?;
        }
        if let Some(pg) = self.pg() {
            return pg.list_keys(user);
        }
        let conn = self.conn()?;
        let mut st = conn.prepare(&format!(
            "{KEY_SELECT} WHERE (?1 IS NULL OR u.username = ?1) ORDER BY k.created_at, k.id"
        ))?;
        let rows = st
            .query_map([user], key_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// One key by id (`UnknownKey` if there is none).
    pub fn key(&self, id: &str) -> Result<KeyRow, StoreError> {
        let found = match self.pg() {
            Some(pg) => pg.key(id)?,
            None => self
                .conn()?
                .query_row(&format!("{KEY_SELECT} WHERE k.id = ?1"), [id], key_row)
                .optional()?,
        };
        found.ok_or_else(|| StoreError::UnknownKey(id.to_owned()))
    }

    /// Changes a key in place once the key it would become passes the checks of a new
    /// one; returns it as it now is. `UnknownKey` if there is none; an update that
    /// changes nothing is refused.
    pub fn update_key(&self, id: &str, update: &KeyUpdate, now: i64) -> Result<KeyRow, StoreError> {
        if update.is_empty() {
            return Err(StoreError::Invalid(
                "nothing to change: give a name, models, budget, rpm, tpm or expiry".into(),
            ));
        }
        if let Some(pg) = self.pg() {
            let update = update.clone();
            return pg.update_key(id, move |current| update.applied(current, now));
        }
        let mut conn = self.conn()?;
        // IMMEDIATE: the row read is the row changed, whatever else writes meanwhile.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let current = tx
            .query_row(&format!("{KEY_SELECT} WHERE k.id = ?1"), [id], key_row)
            .optional()?
            .ok_or_else(|| StoreError::UnknownKey(id.to_owned()))?;
        let row = update.applied(current, now)?;
        tx.execute(
            "UPDATE api_keys SET name = ?2, models = ?3, budget_usd_nanos = ?4, budget_period = ?5, rpm = ?6, tpm = ?7, expires_at = ?8 WHERE id = ?1",
            params![
                row.id,
                row.name,
                serde_json::Value::from(row.models.clone()).to_string(),
                row.budget_usd_nanos,
                row.budget_period,
                row.rpm,
                row.tpm.map(|t| i64::try_from(t).unwrap_or(i64::MAX)),
                row.expires_at
            ],
        )?;
        tx.commit()?;
        Ok(row)
    }

    /// Revokes a key (`UnknownKey` if there is none); revoking twice keeps the first time.
    pub fn revoke_key(&self, id: &str, now: i64) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            return match pg.revoke_key(id, now)? {
                true => Ok(()),
                false => Err(StoreError::UnknownKey(id.to_owned())),
            };
        }
        let n = self.conn()?.execute(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
            params![id, now],
        )?;
        if n == 0 {
            return Err(StoreError::UnknownKey(id.to_owned()));
        }
        Ok(())
    }

    /// Every key with what authentication needs, for the in-memory key cache.
    pub fn all_keys_for_auth(&self) -> Result<Vec<AuthKeyRow>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.all_keys_for_auth();
        }
        let conn = self.conn()?;
        let mut st = conn.prepare(AUTH_SELECT)?;
        let rows = st.query_map([], auth_row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Records when keys were last used, in one transaction (batched by the key cache).
    pub fn touch_keys(&self, used: &[(String, i64)]) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            return pg.touch_keys(used);
        }
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        {
            let mut st = tx.prepare_cached("UPDATE api_keys SET last_used_at = MAX(COALESCE(last_used_at, 0), ?2) WHERE id = ?1")?;
            for (id, t) in used {
                st.execute(params![id, t])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Cost (nano-dollars) recorded since `since_ms`, per key and per user, for the
    /// budget tracker at start-up.
    pub fn spend_since(&self, since_ms: i64) -> Result<SpendByOwner, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg_usage::spend_since(pg, since_ms);
        }
        let conn = self.conn()?;
        // Overflow-free sums: stored data must never stop the gateway from starting.
        let cost = super::usage::wide_sum("cost_nanos");
        let mut st = conn.prepare(&format!("SELECT key_id, {cost} FROM usage_events WHERE ts >= ?1 AND key_id IS NOT NULL GROUP BY key_id"))?;
        let keys = st
            .query_map([since_ms], |r| {
                Ok((r.get::<_, String>(0)?, super::usage::wide_value(r, 1)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut st = conn.prepare(&format!("SELECT user_id, {cost} FROM usage_events WHERE ts >= ?1 AND user_id IS NOT NULL GROUP BY user_id"))?;
        let users = st
            .query_map([since_ms], |r| {
                Ok((r.get::<_, i64>(0)?, super::usage::wide_value(r, 1)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok((keys, users))
    }

    /// One key by id, for a key the cache has not seen yet.
    pub fn auth_key(&self, id: &str) -> Result<Option<AuthKeyRow>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.auth_key(id);
        }
        let conn = self.conn()?;
        let r = conn
            .query_row(&format!("{AUTH_SELECT} WHERE k.id = ?1"), [id], auth_row)
            .optional()?;
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::input::Amount;
    use crate::store::testing::{
        add_user, hasher_in, on_both_backends, raw, raw_bytes, TestBackend,
    };

    on_both_backends!(
        create_list_revoke,
        updates_change_in_place_by_the_rules_of_creation,
        unknown_user_gets_no_key,
        corrupt_scopes_fail_closed,
    );

    fn setup(b: &TestBackend) -> (&Store, KeyHasher) {
        add_user(&b.store, "alice", Role::Member, 1);
        add_user(&b.store, "root", Role::Admin, 1);
        (&b.store, hasher_in(b.dir.path()))
    }

    fn create_list_revoke(b: &TestBackend) {
        let (s, h) = setup(b);
        let new = KeyCreate {
            user: "alice".into(),
            name: Some("laptop".into()),
            models: vec!["gpt-*".into(), "claude-3?".into()],
            budget_usd: Some(Amount::Text("5".into())),
            budget_period: Some("month".into()),
            rpm: Some(60),
            tpm: Some(u64::from(u32::MAX) + 1),
            expires_in: Some("990s".into()),
        };
        let (row, full) = s.create_key(&h, &new, 10).unwrap();
        assert_eq!(
            (row.budget_usd_nanos, row.expires_at),
            (Some(5_000_000_000), Some(1000))
        );
        let (id, secret) = parse_gateway_key(full.expose()).unwrap();
        assert_eq!(row.id, id);
        assert_eq!(row.prefix, format!("tg_{id}_{}", &secret[..4]));
        assert_eq!(s.list_keys(None).unwrap(), vec![row.clone()]);
        assert_eq!(s.list_keys(Some("alice")).unwrap(), vec![row.clone()]);
        assert_eq!(s.list_keys(Some("root")).unwrap(), vec![]);
        assert!(matches!(
            s.list_keys(Some("bob")),
            Err(StoreError::UnknownUser(_))
        ));

        let auth = s.auth_key(id).unwrap().unwrap();
        assert!(h.verify(secret, &auth.secret_hmac));
        assert_eq!(
            (auth.username.as_str(), auth.role, auth.models.len()),
            ("alice", Role::Member, 2)
        );
        let shown = format!("{auth:?} {row:?}");
        assert!(
            !shown.contains(secret) && !shown.contains("secret_hmac"),
            "{shown}"
        );
        // The database holds no trace of the secret.
        let stored = raw_bytes(s, "SELECT secret_hmac FROM api_keys");
        assert_ne!(stored, secret.as_bytes());

        s.revoke_key(id, 20).unwrap();
        s.revoke_key(id, 30).unwrap();
        assert_eq!(s.auth_key(id).unwrap().unwrap().revoked_at, Some(20));
        assert_eq!(s.list_keys(None).unwrap()[0].revoked_at, Some(20));
        assert!(matches!(
            s.revoke_key("nope", 40),
            Err(StoreError::UnknownKey(_))
        ));
        assert!(s.auth_key("nope").unwrap().is_none());
        assert_eq!(s.all_keys_for_auth().unwrap().len(), 1);
    }

    fn updates_change_in_place_by_the_rules_of_creation(b: &TestBackend) {
        let (s, h) = setup(b);
        let new = KeyCreate {
            name: Some("laptop".into()),
            budget_usd: Some(Amount::Text("5".into())),
            budget_period: Some("day".into()),
            rpm: Some(60),
            expires_in: Some("100s".into()),
            ..KeyCreate::for_user("alice")
        };
        let (row, _) = s.create_key(&h, &new, 10).unwrap();
        // Only what is given changes; a new amount keeps the budget's period.
        let u = KeyUpdate {
            budget_usd: Some(Edit::Set(Amount::Text("0.5".into()))),
            tpm: Some(Edit::Set(1000)),
            ..KeyUpdate::default()
        };
        let after = s.update_key(&row.id, &u, 20).unwrap();
        let want = KeyRow {
            budget_usd_nanos: Some(500_000_000),
            tpm: Some(1000),
            ..row.clone()
        };
        assert_eq!(
            (&after, after.budget_period.as_deref()),
            (&want, Some("day"))
        );
        assert_eq!(s.key(&row.id).unwrap(), after);
        // Limits removed, scopes and expiry set; the authentication row follows.
        let u = KeyUpdate {
            name: Some(Edit::Remove),
            models: Some(vec!["gpt-*".into()]),
            budget_usd: Some(Edit::Remove),
            rpm: Some(Edit::Remove),
            expires_in: Some(Edit::Set("1h".into())),
            ..KeyUpdate::default()
        };
        let after = s.update_key(&row.id, &u, 30).unwrap();
        assert_eq!(
            after,
            KeyRow {
                name: None,
                models: vec!["gpt-*".into()],
                budget_usd_nanos: None,
                budget_period: None,
                rpm: None,
                expires_at: Some(3630),
                ..want
            }
        );
        let auth = s.auth_key(&row.id).unwrap().unwrap();
        assert_eq!(
            (
                auth.models,
                auth.budget,
                auth.rpm,
                auth.tpm,
                auth.expires_at
            ),
            (vec!["gpt-*".to_owned()], None, None, Some(1000), Some(3630))
        );
        let never = KeyUpdate {
            expires_in: Some(Edit::Remove),
            ..KeyUpdate::default()
        };
        assert_eq!(s.update_key(&row.id, &never, 40).unwrap().expires_at, None);

        // Refused with the messages of creation, changing nothing.
        let before = s.key(&row.id).unwrap();
        let err = |u: KeyUpdate| s.update_key(&row.id, &u, 50).unwrap_err().to_string();
        let rpm0 = KeyUpdate {
            rpm: Some(Edit::Set(0)),
            ..KeyUpdate::default()
        };
        assert_eq!(err(rpm0), "--rpm and --tpm must be greater than 0");
        let bad_models = KeyUpdate {
            models: Some(vec!["gpt 4".into()]),
            ..KeyUpdate::default()
        };
        assert!(err(bad_models).starts_with("invalid model pattern"));
        let period_alone = KeyUpdate {
            budget_period: Some("month".into()),
            ..KeyUpdate::default()
        };
        assert!(err(period_alone).starts_with("a budget period needs a budget amount"));
        let bad_expiry = KeyUpdate {
            expires_in: Some(Edit::Set("soon".into())),
            ..KeyUpdate::default()
        };
        assert!(err(bad_expiry).starts_with("invalid duration 'soon'"));
        assert!(err(KeyUpdate::default()).starts_with("nothing to change"));
        assert_eq!(s.key(&row.id).unwrap(), before);
        assert!(matches!(
            s.update_key("nope", &never, 50),
            Err(StoreError::UnknownKey(_))
        ));
    }

    #[test]
    fn the_admin_api_update_body_is_the_same_type() {
        let u: KeyUpdate = serde_json::from_value(serde_json::json!({
            "name": null, "models": null, "budget_usd": "2", "rpm": null, "tpm": 5, "expires_in": "30d"
        }))
        .unwrap();
        assert_eq!(u.name, Some(Edit::Remove));
        assert_eq!(u.models, Some(vec![]));
        assert_eq!(u.budget_usd, Some(Edit::Set(Amount::Text("2".into()))));
        assert_eq!((u.rpm, u.tpm), (Some(Edit::Remove), Some(Edit::Set(5))));
        assert_eq!(u.expires_in, Some(Edit::Set("30d".into())));
        let absent: KeyUpdate = serde_json::from_value(serde_json::json!({})).unwrap();
        assert!(absent.is_empty());
        assert!(serde_json::from_value::<KeyUpdate>(serde_json::json!({"user": "bob"})).is_err());
    }

    fn unknown_user_gets_no_key(b: &TestBackend) {
        let (s, h) = setup(b);
        let e = s
            .create_key(&h, &KeyCreate::for_user("bob"), 0)
            .unwrap_err();
        assert_eq!(e.to_string(), "unknown user 'bob'");
        assert!(s.all_keys_for_auth().unwrap().is_empty());
    }

    fn corrupt_scopes_fail_closed(b: &TestBackend) {
        let (s, h) = setup(b);
        let new = KeyCreate {
            models: vec!["gpt-4o".into()],
            ..KeyCreate::for_user("alice")
        };
        let (row, _) = s.create_key(&h, &new, 0).unwrap();
        raw(s, "UPDATE api_keys SET models = 'gpt-4o'");
        assert!(s.auth_key(&row.id).is_err());
        assert!(s.all_keys_for_auth().is_err());
    }

    #[test]
    fn budgets_default_to_monthly() {
        let args = |f: fn(&mut KeyCreate)| {
            let mut a = KeyCreate::for_user("alice");
            f(&mut a);
            a
        };
        let new = args(|a| a.budget_usd = Some(Amount::Text("12.50".into())))
            .check(0)
            .unwrap();
        assert_eq!(new.budget, Some((12_500_000_000, "month".to_owned())));
        let new = args(|a| {
            a.budget_usd = Some(Amount::Text("0.5".into()));
            a.budget_period = Some("total".into());
            a.name = Some("  ".into());
            a.expires_in = Some("30d".into());
        })
        .check(10)
        .unwrap();
        assert_eq!(new.budget.map(|b| b.1).as_deref(), Some("total"));
        assert_eq!(new.name, None);
        assert_eq!(new.expires_at, Some(10 + 30 * 86_400));
    }

    #[test]
    fn the_admin_api_body_is_the_same_type() {
        let new: KeyCreate = serde_json::from_value(serde_json::json!({
            "user": "alice", "models": null, "budget_usd": 12.5, "rpm": 3
        }))
        .unwrap();
        assert_eq!(new.models, Vec::<String>::new());
        assert!(matches!(new.budget_usd, Some(Amount::Number(_))));
        assert_eq!(
            new.check(0).unwrap().budget,
            Some((12_500_000_000, "month".to_owned()))
        );
        let unknown =
            serde_json::from_value::<KeyCreate>(serde_json::json!({"user": "a", "colour": 1}));
        assert!(unknown.is_err());
    }
}
