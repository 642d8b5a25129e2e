//! `tollgate user add|list|update|delete`, by the same rules as the admin API's
//! (the store checks [`UserCreate`] and [`UserUpdate`]).

use super::{audit_cli, format_rfc3339, format_usd, table, CommandError};
use crate::store::{Store, StoreError, UserCreate, UserDeletion, UserRow, UserUpdate, UserUpdated};

/// `user add`: the user created (the store checks it, as it does for
/// `POST /admin/users`), and the line to print.
pub fn user_add(store: &Store, new: &UserCreate, now: i64) -> Result<String, CommandError> {
    let u = store.create_user(new, now)?;
    Ok(format!(
        "created user {} ({}, id {})\n",
        u.username,
        u.role.as_str(),
        u.id
    ))
}

/// What an update changed, as the audit log records it (never the password itself).
pub fn update_detail(
    update: &UserUpdate,
    user: &UserRow,
    sessions_ended: usize,
) -> serde_json::Value {
    let doc = user_json(user);
    let mut detail = serde_json::json!({
        "id": user.id,
        "password": update.password.is_some(),
        "sessions_ended": sessions_ended,
    });
    if update.role.is_some() {
        detail["role"] = doc["role"].clone();
    }
    if update.budget_usd.is_some() || update.budget_period.is_some() {
        detail["budget_usd"] = doc["budget_usd"].clone();
        detail["budget_period"] = doc["budget_period"].clone();
    }
    detail
}

/// `user update NAME ...`: the user changed in place (checked as a new user is, the
/// last admin kept), audited.
pub fn user_update(
    store: &Store,
    name: &str,
    update: &UserUpdate,
    now: i64,
) -> Result<String, CommandError> {
    let unknown = || StoreError::UnknownUser(name.to_owned());
    let user = store.user_by_name(name)?.ok_or_else(unknown)?;
    let (user, ended) = match store.update_user(user.id, update, now)? {
        UserUpdated::Updated {
            user,
            sessions_ended,
        } => (user, sessions_ended),
        UserUpdated::NotFound => return Err(unknown().into()),
        UserUpdated::LastAdmin => {
            return Err(CommandError::Invalid(format!(
            "cannot take the admin role from {name}, the last admin: make another user admin first"
        )))
        }
    };
    audit_cli(
        store,
        "user.update",
        name,
        update_detail(update, &user, ended),
        now,
    );
    Ok(match ended {
        0 => format!("updated user {name}\n"),
        1 => format!("updated user {name} (1 session ended)\n"),
        n => format!("updated user {name} ({n} sessions ended)\n"),
    })
}

/// `user delete NAME`: as `DELETE /admin/users/{id}` does (the user's keys and
/// sessions revoked, the name kept taken), refusing the last admin.
pub fn user_delete(store: &Store, name: &str, now: i64) -> Result<String, CommandError> {
    let user = store
        .user_by_name(name)?
        .ok_or_else(|| StoreError::UnknownUser(name.to_owned()))?;
    // The CLI acts as nobody in particular: no user has id 0.
    match store.delete_user(user.id, 0, now)? {
        UserDeletion::Deleted {
            user,
            keys_revoked,
            sessions_revoked,
        } => {
            let detail = serde_json::json!({
                "id": user.id,
                "keys_revoked": keys_revoked,
                "sessions_revoked": sessions_revoked,
            });
            audit_cli(store, "user.delete", name, detail, now);
            Ok(format!(
                "deleted user {} ({keys_revoked} keys and {sessions_revoked} sessions revoked)\n",
                user.username
            ))
        }
        UserDeletion::NotFound | UserDeletion::Yourself => {
            Err(StoreError::UnknownUser(name.to_owned()).into())
        }
        UserDeletion::LastAdmin => Err(CommandError::Invalid(format!(
            "cannot delete {name}, the last admin: create another admin first"
        ))),
    }
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
    use crate::store::input::Amount;
    use crate::store::testing::temp_store;
    use argon2::{Argon2, PasswordHash, PasswordVerifier};
    use tollgate_filters::{Role, Secret};

    fn store() -> (tempfile::TempDir, Store) {
        let (dir, s) = temp_store();
        (dir, s)
    }

    /// What `user add NAME --role ROLE [--budget-usd USD --budget-period P]` asks for,
    /// with the password read from stdin.
    fn user(
        name: &str,
        role: Role,
        password: Option<Secret>,
        budget: Option<(&str, &str)>,
    ) -> UserCreate {
        UserCreate {
            password,
            budget_usd: budget.map(|(usd, _)| Amount::Text(usd.into())),
            budget_period: budget.map(|(_, period)| period.into()),
            ..UserCreate::new(name, role)
        }
    }

    #[test]
    fn add_and_list() {
        let (_d, s) = store();
        let out = user_add(
            &s,
            &user(
                "root",
                Role::Admin,
                Some(Secret::new("correct horse")),
                None,
            ),
            0,
        );
        assert_eq!(out.unwrap(), "created user root (admin, id 1)\n");
        user_add(
            &s,
            &user("alice", Role::Member, None, Some(("20", "day"))),
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
            &user(
                "root",
                Role::Admin,
                Some(Secret::new("correct horse")),
                None,
            ),
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
    fn delete_revokes_and_keeps_an_admin() {
        let (_d, s) = store();
        user_add(&s, &user("root", Role::Admin, None, None), 0).unwrap();
        user_add(&s, &user("bob", Role::Member, None, None), 0).unwrap();
        assert_eq!(
            user_delete(&s, "bob", 5).unwrap(),
            "deleted user bob (0 keys and 0 sessions revoked)\n"
        );
        assert!(s.user_by_name("bob").unwrap().is_none());
        let err = |n| user_delete(&s, n, 6).unwrap_err().to_string();
        assert_eq!(err("bob"), "unknown user 'bob'");
        assert_eq!(
            err("root"),
            "cannot delete root, the last admin: create another admin first"
        );
    }

    #[test]
    fn refusals_are_one_clear_line() {
        let (_d, s) = store();
        let err = |r: Result<String, CommandError>| r.unwrap_err().to_string();
        let pw = || Some(Secret::new("correct horse"));
        // Members sign in to the dashboard: their passwords follow the same rules.
        assert_eq!(
            err(user_add(
                &s,
                &user("bob", Role::Member, Some(Secret::new("short12")), None),
                0
            )),
            "the password must have at least 8 characters"
        );
        user_add(&s, &user("bob", Role::Member, pw(), None), 0).unwrap();
        assert_eq!(
            err(user_add(
                &s,
                &user("eve", Role::Admin, Some(Secret::new("short12")), None),
                0
            )),
            "the password must have at least 8 characters"
        );
        user_add(&s, &user("root", Role::Admin, None, None), 0).unwrap();
        assert_eq!(
            err(user_add(&s, &user("root", Role::Admin, None, None), 0)),
            "user 'root' already exists"
        );
        assert!(err(user_add(
            &s,
            &user("no spaces", Role::Member, None, None),
            0
        ))
        .starts_with("invalid user name"));
        // Nothing was created by the refused calls.
        assert_eq!(s.list_users().unwrap().len(), 2);
    }
}
