//! `tollgate user add|list`.

use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
use argon2::Argon2;
use tollgate_filters::{Role, Secret};

use super::{format_rfc3339, table, CommandError};
use crate::store::Store;

/// Creates a user. A password (admin login) is stored as an argon2id hash.
pub fn user_add(
    store: &Store,
    name: &str,
    role: Role,
    password: Option<Secret>,
    now: i64,
) -> Result<String, CommandError> {
    let hash = match password {
        None => None,
        Some(_) if role != Role::Admin => {
            return Err(CommandError::Invalid(
                "a password is only for admin users (--role admin)".into(),
            ))
        }
        Some(p) if p.expose().chars().count() < 8 => {
            return Err(CommandError::Invalid(
                "the password must have at least 8 characters".into(),
            ))
        }
        Some(p) => {
            let salt = SaltString::generate(&mut OsRng);
            let hash = Argon2::default()
                .hash_password(p.expose().as_bytes(), &salt)
                .map_err(|e| CommandError::Invalid(format!("cannot hash the password: {e}")))?;
            Some(hash.to_string())
        }
    };
    let u = store.create_user(name, role, hash.as_deref(), now)?;
    Ok(format!(
        "created user {} ({}, id {})\n",
        u.username,
        u.role.as_str(),
        u.id
    ))
}

pub fn user_list(store: &Store, json: bool) -> Result<String, CommandError> {
    let users = store.list_users()?;
    if json {
        let v: Vec<_> = users
            .iter()
            .map(|u| serde_json::json!({"id": u.id, "username": u.username, "role": u.role.as_str(), "created_at": format_rfc3339(u.created_at)}))
            .collect();
        return Ok(serde_json::Value::Array(v).to_string() + "\n");
    }
    let rows: Vec<Vec<String>> = users
        .iter()
        .map(|u| {
            vec![
                u.id.to_string(),
                u.username.clone(),
                u.role.as_str().into(),
                format_rfc3339(u.created_at),
            ]
        })
        .collect();
    Ok(table(&["ID", "USERNAME", "ROLE", "CREATED"], &rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_and_list() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("t.db")).unwrap();
        assert!(user_add(
            &s,
            "root",
            Role::Admin,
            Some(Secret::new("correct horse")),
            0
        )
        .is_ok());
        assert!(user_add(
            &s,
            "bob",
            Role::Member,
            Some(Secret::new("correct horse")),
            0
        )
        .is_err());
        assert!(user_add(&s, "eve", Role::Admin, Some(Secret::new("short")), 0).is_err());
        let e = user_add(&s, "root", Role::Admin, None, 0)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "user 'root' already exists");
        let out = user_list(&s, false).unwrap();
        assert!(
            out.starts_with(
                "ID  USERNAME  ROLE   CREATED\n1   root      admin  1970-01-01T00:00:00Z"
            ),
            "{out}"
        );
        let hash: Option<String> = s
            .conn()
            .unwrap()
            .query_row("SELECT password_hash FROM users", [], |r| r.get(0))
            .unwrap();
        assert!(hash.unwrap().starts_with("$argon2id$"));
        let v: serde_json::Value = serde_json::from_str(&user_list(&s, true).unwrap()).unwrap();
        assert_eq!(v[0]["role"], "admin");
    }
}
