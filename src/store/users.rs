//! Queries on `users`.

use rusqlite::{params, OptionalExtension};
use tollgate_filters::Role;

use super::{Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub role: Role,
    pub created_at: i64,
}

fn valid_username(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c))
}

/// A role column; anything but the two known roles is corruption, reported as such
/// rather than guessed at.
pub(super) fn role_column(r: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<Role> {
    let text: String = r.get(idx)?;
    Role::parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            idx,
            rusqlite::types::Type::Text,
            format!("unknown role '{text}'").into(),
        )
    })
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        id: r.get(0)?,
        username: r.get(1)?,
        role: role_column(r, 2)?,
        created_at: r.get(3)?,
    })
}

impl Store {
    /// Creates a user; `BadUserName` unless the name is 1-64 characters of
    /// `[A-Za-z0-9._@-]`, `DuplicateUser` if it is taken. `password_hash` is a PHC string
    /// (argon2id), only for admins who log in to the admin API.
    pub fn create_user(
        &self,
        username: &str,
        role: Role,
        password_hash: Option<&str>,
        now: i64,
    ) -> Result<UserRow, StoreError> {
        if !valid_username(username) {
            return Err(StoreError::BadUserName(username.to_owned()));
        }
        let conn = self.conn()?;
        let inserted = conn.execute(
            "INSERT INTO users (username, role, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![username, role.as_str(), password_hash, now],
        );
        match inserted {
            Ok(_) => Ok(UserRow {
                id: conn.last_insert_rowid(),
                username: username.to_owned(),
                role,
                created_at: now,
            }),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
            {
                Err(StoreError::DuplicateUser(username.to_owned()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Every user, in creation order.
    /// Sets (or with `None` clears) a user's budget: nano-dollars and period.
    pub fn set_user_budget(
        &self,
        username: &str,
        budget: Option<(i64, &str)>,
    ) -> Result<(), StoreError> {
        let conn = self.conn()?;
        let (nanos, period) = budget.map_or((None, None), |(n, p)| (Some(n), Some(p)));
        let n = conn.execute(
            "UPDATE users SET budget_usd_nanos = ?2, budget_period = ?3 WHERE username = ?1",
            rusqlite::params![username, nanos, period],
        )?;
        if n == 0 {
            return Err(StoreError::UnknownUser(username.to_owned()));
        }
        Ok(())
    }

    pub fn list_users(&self) -> Result<Vec<UserRow>, StoreError> {
        let conn = self.conn()?;
        let mut st =
            conn.prepare("SELECT id, username, role, created_at FROM users ORDER BY id")?;
        let rows = st.query_map([], row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    pub fn user_by_name(&self, username: &str) -> Result<Option<UserRow>, StoreError> {
        let conn = self.conn()?;
        let r = conn
            .query_row(
                "SELECT id, username, role, created_at FROM users WHERE username = ?1",
                [username],
                row,
            )
            .optional()?;
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_list_and_refuse_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("t.db")).unwrap();
        let a = s
            .create_user("alice", Role::Admin, Some("$argon2id$x"), 10)
            .unwrap();
        assert_eq!(s.user_by_name("alice").unwrap(), Some(a.clone()));
        assert_eq!(s.user_by_name("Alice").unwrap(), None);
        let e = s.create_user("alice", Role::Member, None, 11).unwrap_err();
        assert!(matches!(e, StoreError::DuplicateUser(_)));
        assert_eq!(e.to_string(), "user 'alice' already exists");
        let b = s.create_user("b.o-b_1@x", Role::Member, None, 12).unwrap();
        assert_eq!(s.list_users().unwrap(), vec![a, b]);
    }

    #[test]
    fn user_names_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("t.db")).unwrap();
        assert!(s
            .create_user(&"a".repeat(64), Role::Member, None, 0)
            .is_ok());
        for bad in [
            "",
            "bad name",
            "tab\t",
            "émile",
            "a/b",
            "x\n",
            &"a".repeat(65),
        ] {
            assert!(
                matches!(
                    s.create_user(bad, Role::Member, None, 0),
                    Err(StoreError::BadUserName(_))
                ),
                "{bad:?}"
            );
        }
    }
}
