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

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserRow> {
    let role: String = r.get(2)?;
    Ok(UserRow {
        id: r.get(0)?,
        username: r.get(1)?,
        role: Role::parse(&role).unwrap_or(Role::Member),
        created_at: r.get(3)?,
    })
}

impl Store {
    /// Creates a user; `DuplicateUser` if the name is taken.
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
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(StoreError::DuplicateUser(username.to_owned()))
            }
            Err(e) => Err(e.into()),
        }
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
        let a = s.create_user("alice", Role::Admin, None, 10).unwrap();
        assert_eq!(s.user_by_name("alice").unwrap(), Some(a.clone()));
        assert!(matches!(
            s.create_user("alice", Role::Member, None, 11),
            Err(StoreError::DuplicateUser(_))
        ));
        assert!(matches!(
            s.create_user("bad name", Role::Member, None, 11),
            Err(StoreError::BadUserName(_))
        ));
        assert_eq!(s.list_users().unwrap(), vec![a]);
    }
}
