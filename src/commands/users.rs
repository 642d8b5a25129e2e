//! `tollgate user add|list`.

use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
use argon2::Argon2;
use tollgate_filters::{Role, Secret};

use super::{format_rfc3339, format_usd, table, CommandError};
use crate::store::{Store, UserRow};

/// Shortest admin password accepted.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// An argon2id PHC string (random salt, the crate's default cost: 19 MiB, 2 passes,
/// which is OWASP's recommended minimum) for an admin login password.
pub fn hash_password(password: &Secret) -> Result<String, CommandError> {
    if password.expose().chars().count() < MIN_PASSWORD_CHARS {
        return Err(CommandError::Invalid(format!(
            "the password must have at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    let salt = SaltString::generate(&mut OsRng);
    let hash = Argon2::default()
        .hash_password(password.expose().as_bytes(), &salt)
        .map_err(|e| CommandError::Invalid(format!("cannot hash the password: {e}")))?;
    Ok(hash.to_string())
}

/// Creates a user. Only admins get a password: it is for the admin API's login, and
/// members authenticate with gateway keys alone. Shared by `user add` and
/// `POST /admin/users`, so both apply the same rules.
pub fn create_user(
    store: &Store,
    name: &str,
    role: Role,
    password: Option<Secret>,
    budget: Option<(i64, String)>,
    now: i64,
) -> Result<UserRow, CommandError> {
    let hash = match password {
        None => None,
        Some(_) if role != Role::Admin => {
            return Err(CommandError::Invalid(
                "a password is only for admin users (--role admin)".into(),
            ))
        }
        Some(p) => Some(hash_password(&p)?),
    };
    let budget = budget.as_ref().map(|(n, p)| (*n, p.as_str()));
    Ok(store.create_user_with_budget(name, role, hash.as_deref(), budget, now)?)
}

/// `user add`: [`create_user`], and the line to print.
pub fn user_add(
    store: &Store,
    name: &str,
    role: Role,
    password: Option<Secret>,
    budget: Option<(i64, String)>,
    now: i64,
) -> Result<String, CommandError> {
    let u = create_user(store, name, role, password, budget, now)?;
    Ok(format!(
        "created user {} ({}, id {})\n",
        u.username,
        u.role.as_str(),
        u.id
    ))
}

/// A user as `--json` lists it.
pub fn user_json(u: &UserRow) -> serde_json::Value {
    serde_json::json!({
        "id": u.id,
        "username": u.username,
        "role": u.role.as_str(),
        "budget_usd": u.budget_usd_nanos.map(format_usd),
        "budget_period": u.budget_period,
        "created_at": format_rfc3339(u.created_at),
    })
}

/// Every user, as a table or a JSON array.
pub fn user_list(store: &Store, json: bool) -> Result<String, CommandError> {
    let users = store.list_users()?;
    if json {
        let v: Vec<_> = users.iter().map(user_json).collect();
        return Ok(serde_json::Value::Array(v).to_string() + "\n");
    }
    let rows: Vec<Vec<String>> = users
        .iter()
        .map(|u| {
            vec![
                u.id.to_string(),
                u.username.clone(),
                u.role.as_str().into(),
                match (u.budget_usd_nanos, &u.budget_period) {
                    (Some(n), Some(p)) => format!("{}/{p}", format_usd(n)),
                    _ => "-".into(),
                },
                format_rfc3339(u.created_at),
            ]
        })
        .collect();
    Ok(table(
        &["ID", "USERNAME", "ROLE", "BUDGET", "CREATED"],
        &rows,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::{PasswordHash, PasswordVerifier};

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("t.db")).unwrap();
        (dir, s)
    }

    #[test]
    fn add_and_list() {
        let (_d, s) = store();
        let out = user_add(
            &s,
            "root",
            Role::Admin,
            Some(Secret::new("correct horse")),
            None,
            0,
        );
        assert_eq!(out.unwrap(), "created user root (admin, id 1)\n");
        user_add(
            &s,
            "alice",
            Role::Member,
            None,
            Some((20_000_000_000, "day".into())),
            86_400,
        )
        .unwrap();
        let out = user_list(&s, false).unwrap();
        assert_eq!(
            out,
            "ID  USERNAME  ROLE    BUDGET     CREATED\n\
             1   root      admin   -          1970-01-01T00:00:00Z\n\
             2   alice     member  20.00/day  1970-01-02T00:00:00Z\n"
        );
        let v: serde_json::Value = serde_json::from_str(&user_list(&s, true).unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!([
                {"id": 1, "username": "root", "role": "admin", "budget_usd": null, "budget_period": null,
                 "created_at": "1970-01-01T00:00:00Z"},
                {"id": 2, "username": "alice", "role": "member", "budget_usd": "20.00", "budget_period": "day",
                 "created_at": "1970-01-02T00:00:00Z"},
            ])
        );
        assert!(!user_list(&s, true).unwrap().contains("argon2"));
    }

    #[test]
    fn the_password_is_stored_as_argon2id() {
        let (_d, s) = store();
        user_add(
            &s,
            "root",
            Role::Admin,
            Some(Secret::new("correct horse")),
            None,
            0,
        )
        .unwrap();
        let hash: String = s
            .conn()
            .unwrap()
            .query_row("SELECT password_hash FROM users", [], |r| r.get(0))
            .unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        let parsed = PasswordHash::new(&hash).unwrap();
        assert!(Argon2::default()
            .verify_password(b"correct horse", &parsed)
            .is_ok());
        assert!(Argon2::default()
            .verify_password(b"wrong", &parsed)
            .is_err());
    }

    #[test]
    fn refusals_are_one_clear_line() {
        let (_d, s) = store();
        let err = |r: Result<String, CommandError>| r.unwrap_err().to_string();
        let pw = || Some(Secret::new("correct horse"));
        assert_eq!(
            err(user_add(&s, "bob", Role::Member, pw(), None, 0)),
            "a password is only for admin users (--role admin)"
        );
        assert_eq!(
            err(user_add(
                &s,
                "eve",
                Role::Admin,
                Some(Secret::new("short12")),
                None,
                0
            )),
            "the password must have at least 8 characters"
        );
        user_add(&s, "root", Role::Admin, None, None, 0).unwrap();
        assert_eq!(
            err(user_add(&s, "root", Role::Admin, None, None, 0)),
            "user 'root' already exists"
        );
        assert!(err(user_add(&s, "no spaces", Role::Member, None, None, 0))
            .starts_with("invalid user name"));
        // Nothing was created by the refused calls.
        assert_eq!(s.list_users().unwrap().len(), 1);
    }
}
