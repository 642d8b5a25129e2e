//! Queries on `users`.

use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
use argon2::Argon2;
use rusqlite::{params, OptionalExtension};
use serde::Deserialize;
use tollgate_filters::{Role, Secret};

use super::input::{edit, edited_budget, none_or, parse_budget, Amount, Edit};
use super::{Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub role: Role,
    pub created_at: i64,
    /// The budget for all of the user's keys together: nano-dollars and period.
    pub budget_usd_nanos: Option<i64>,
    pub budget_period: Option<String>,
}

/// The columns [`row`] reads, in its order.
const USER_COLUMNS: &str = "id, username, role, created_at, budget_usd_nanos, budget_period";

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
        budget_usd_nanos: r.get(4)?,
        budget_period: r.get(5)?,
    })
}

/// Shortest admin password accepted.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// A new user as asked for, in the one shape every way in shares: the arguments of
/// `tollgate user add` (whose password comes from stdin), the body of
/// `POST /admin/users`, and what [`Store::create_user`] takes. The store checks it, so
/// the CLI and the API accept exactly the same names, roles, passwords and budgets.
#[derive(Debug, Clone, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserCreate {
    #[serde(rename = "username")]
    pub name: String,
    #[arg(long, default_value = "member", value_parser = ["admin", "member"])]
    pub role: String,
    // For signing in (the admin API's login for admins, the dashboard for anyone).
    // The CLI reads it from stdin (`--password-stdin`), never from an argument.
    #[arg(skip)]
    #[serde(default, deserialize_with = "secret")]
    pub password: Option<Secret>,
    // The display orders keep the CLI's `--password-stdin` (order 2) between the role
    // and the budget in `tollgate user add --help`.
    /// A budget for all of the user's keys together, in USD
    #[arg(long, value_name = "USD", display_order = 3)]
    pub budget_usd: Option<Amount>,
    /// The budget's period (default month)
    #[arg(long, value_parser = ["day", "month", "total"], display_order = 4)]
    pub budget_period: Option<String>,
}

/// Changes to a user, in the one shape every way in shares: the options of
/// `tollgate user update` (the password from stdin), the body of
/// `PATCH /admin/users/{id}`, and what [`Store::update_user`] takes. A field left out
/// stays as it is; `--budget-usd none` (`"budget_usd": null`) removes the budget. The
/// user as it would be after the update is checked as a new user is.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    #[arg(long, value_parser = ["admin", "member"])]
    pub role: Option<String>,
    // From stdin on the command line (`--password-stdin`), never from an argument.
    #[arg(skip)]
    #[serde(default, deserialize_with = "secret")]
    pub password: Option<Secret>,
    /// A budget for all of the user's keys together, in USD (none: no budget)
    #[arg(long, value_name = "USD|none", value_parser = none_or::<Amount>, display_order = 3)]
    #[serde(default, deserialize_with = "edit")]
    pub budget_usd: Option<Edit<Amount>>,
    /// The budget's period (kept when only the amount changes; month for a new one)
    #[arg(long, value_parser = ["day", "month", "total"], display_order = 4)]
    pub budget_period: Option<String>,
}

impl UserUpdate {
    fn is_empty(&self) -> bool {
        self.role.is_none()
            && self.password.is_none()
            && self.budget_usd.is_none()
            && self.budget_period.is_none()
    }

    /// The user `current` would be after this update, as the request for a new user.
    fn applied_to(&self, current: &UserRow) -> UserCreate {
        let (budget_usd, budget_period) = edited_budget(
            self.budget_usd.as_ref(),
            self.budget_period.as_deref(),
            (current.budget_usd_nanos, current.budget_period.as_deref()),
        );
        UserCreate {
            name: current.username.clone(),
            role: self
                .role
                .clone()
                .unwrap_or_else(|| current.role.as_str().to_owned()),
            password: self.password.clone(),
            budget_usd,
            budget_period,
        }
    }
}

/// What [`Store::update_user`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserUpdated {
    /// The user as it now is, and how many of its sessions ended (a new password or
    /// the admin role taken away ends them all).
    Updated {
        user: UserRow,
        sessions_ended: usize,
    },
    /// No such user, or deleted.
    NotFound,
    /// The update would take the admin role from the only admin left.
    LastAdmin,
}

fn secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(Secret::new))
}

/// A [`UserCreate`] that passed its checks, its password hashed.
struct CheckedUser {
    role: Role,
    password_hash: Option<String>,
    budget: Option<(i64, String)>,
}

impl UserCreate {
    /// A user without password or budget.
    pub fn new(name: &str, role: Role) -> Self {
        UserCreate {
            name: name.to_owned(),
            role: role.as_str().to_owned(),
            password: None,
            budget_usd: None,
            budget_period: None,
        }
    }

    /// The rules every new user follows, whichever way it came in (the name's own are
    /// checked where it is written). Hashing the password takes argon2's whole cost.
    fn check(&self) -> Result<CheckedUser, StoreError> {
        let invalid = |m: String| StoreError::Invalid(m);
        let role = Role::parse(&self.role)
            .ok_or_else(|| invalid(format!("invalid role '{}': use admin or member", self.role)))?;
        let budget = parse_budget(self.budget_usd.as_ref(), self.budget_period.as_deref())
            .map_err(invalid)?;
        // A password is for signing in: admins to the admin API and the dashboard,
        // members to the dashboard (their own keys and usage).
        let password_hash = self.password.as_ref().map(hash_password).transpose()?;
        Ok(CheckedUser {
            role,
            password_hash,
            budget,
        })
    }
}

/// An argon2id PHC string (random salt, the crate's default cost: 19 MiB, 2 passes,
/// which is OWASP's recommended minimum) for a sign-in password.
pub fn hash_password(password: &Secret) -> Result<String, StoreError> {
    if password.expose().chars().count() < MIN_PASSWORD_CHARS {
        return Err(StoreError::Invalid(format!(
            "the password must have at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    let salt = SaltString::generate(&mut OsRng);
    let hash = Argon2::default()
        .hash_password(password.expose().as_bytes(), &salt)
        .map_err(|e| StoreError::Invalid(format!("cannot hash the password: {e}")))?;
    Ok(hash.to_string())
}

impl Store {
    /// Creates a user once `new` passes its checks; `BadUserName` unless the name is
    /// 1-64 characters of `[A-Za-z0-9._@-]`, `DuplicateUser` if it is taken.
    pub fn create_user(&self, new: &UserCreate, now: i64) -> Result<UserRow, StoreError> {
        let c = new.check()?;
        let budget = c.budget.as_ref().map(|(n, p)| (*n, p.as_str()));
        self.insert_user(&new.name, c.role, c.password_hash.as_deref(), budget, now)
    }

    /// Writes a checked user. `password_hash` is a PHC string (argon2id), only for
    /// admins who log in to the admin API; `budget` (nano-dollars, period) is for all
    /// of the user's keys together.
    pub(super) fn insert_user(
        &self,
        username: &str,
        role: Role,
        password_hash: Option<&str>,
        budget: Option<(i64, &str)>,
        now: i64,
    ) -> Result<UserRow, StoreError> {
        if !valid_username(username) {
            return Err(StoreError::BadUserName(username.to_owned()));
        }
        if let Some(pg) = self.pg() {
            return pg.insert_user(username, role, password_hash, budget, now);
        }
        let (nanos, period) = budget.map_or((None, None), |(n, p)| (Some(n), Some(p)));
        let conn = self.conn()?;
        let inserted = conn.execute(
            "INSERT INTO users (username, role, password_hash, created_at, budget_usd_nanos, budget_period) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![username, role.as_str(), password_hash, now, nanos, period],
        );
        match inserted {
            Ok(_) => Ok(UserRow {
                id: conn.last_insert_rowid(),
                username: username.to_owned(),
                role,
                created_at: now,
                budget_usd_nanos: nanos,
                budget_period: period.map(str::to_owned),
            }),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
            {
                Err(StoreError::DuplicateUser(username.to_owned()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Every user not deleted, in creation order.
    pub fn list_users(&self) -> Result<Vec<UserRow>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.list_users();
        }
        let conn = self.conn()?;
        let mut st = conn.prepare(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE deleted_at IS NULL ORDER BY id"
        ))?;
        let rows = st.query_map([], row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// A user not deleted, by name.
    pub fn user_by_name(&self, username: &str) -> Result<Option<UserRow>, StoreError> {
        if let Some(pg) = self.pg() {
            return Ok(pg.user_for_login(username)?.map(|(user, _)| user));
        }
        let conn = self.conn()?;
        let r = conn
            .query_row(
                &format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE username = ?1 AND deleted_at IS NULL"
                ),
                [username],
                row,
            )
            .optional()?;
        Ok(r)
    }
    /// A user not deleted and its password hash (PHC string), for the admin login.
    pub fn user_for_login(
        &self,
        username: &str,
    ) -> Result<Option<(UserRow, Option<String>)>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.user_for_login(username);
        }
        let conn = self.conn()?;
        let r = conn
            .query_row(
                &format!("SELECT {USER_COLUMNS}, password_hash FROM users WHERE username = ?1 AND deleted_at IS NULL"),
                [username],
                |r| Ok((row(r)?, r.get(6)?)),
            )
            .optional()?;
        Ok(r)
    }

    /// Deletes user `id` on behalf of user `actor`: marks it deleted and revokes its
    /// keys and sessions, in one transaction. Refuses to delete the actor itself or the
    /// last admin, so that the gateway always keeps someone who can administer it.
    pub fn delete_user(&self, id: i64, actor: i64, now: i64) -> Result<UserDeletion, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.delete_user(id, actor, now);
        }
        let mut conn = self.conn()?;
        // IMMEDIATE: two admins deleting each other at once must not both pass the
        // last-admin check.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let Some(user) = tx
            .query_row(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1 AND deleted_at IS NULL"),
                [id],
                row,
            )
            .optional()?
        else {
            return Ok(UserDeletion::NotFound);
        };
        if user.id == actor {
            return Ok(UserDeletion::Yourself);
        }
        if user.role == Role::Admin && admins(&tx)? <= 1 {
            return Ok(UserDeletion::LastAdmin);
        }
        tx.execute(
            "UPDATE users SET deleted_at = ?2 WHERE id = ?1",
            params![id, now],
        )?;
        let keys_revoked = tx.execute(
            "UPDATE api_keys SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL",
            params![id, now],
        )?;
        let sessions_revoked = end_sessions(&tx, id, now)?;
        tx.commit()?;
        Ok(UserDeletion::Deleted {
            user,
            keys_revoked,
            sessions_revoked,
        })
    }
}

impl Store {
    /// Changes user `id` in place once the user it would become passes the checks of a
    /// new one (a password only for an admin, hashed before anything is locked).
    /// Refuses to take the admin role from the last admin; an update that changes
    /// nothing is refused.
    pub fn update_user(
        &self,
        id: i64,
        update: &UserUpdate,
        now: i64,
    ) -> Result<UserUpdated, StoreError> {
        if update.is_empty() {
            return Err(StoreError::Invalid(
                "nothing to change: give a role, a budget or a password".into(),
            ));
        }
        let Some(current) = self.user_by_id(id)? else {
            return Ok(UserUpdated::NotFound);
        };
        let checked = update.applied_to(&current).check()?;
        let budget_given = update.budget_usd.is_some() || update.budget_period.is_some();
        if let Some(pg) = self.pg() {
            let write = super::pg::UserWrite {
                role: checked.role,
                password_hash: checked.password_hash,
                budget_given,
                budget: checked.budget,
            };
            return pg.update_user(id, write, now);
        }
        let mut conn = self.conn()?;
        // IMMEDIATE: two admins demoting each other at once must not both pass the
        // last-admin check.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let Some(current) = tx
            .query_row(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1 AND deleted_at IS NULL"),
                [id],
                row,
            )
            .optional()?
        else {
            return Ok(UserUpdated::NotFound);
        };
        let demoted = current.role == Role::Admin && checked.role != Role::Admin;
        if demoted && admins(&tx)? <= 1 {
            return Ok(UserUpdated::LastAdmin);
        }
        let (nanos, period) = checked.budget.unzip();
        tx.execute(
            "UPDATE users SET role = ?2, \
             password_hash = CASE WHEN ?3 IS NULL THEN password_hash ELSE ?3 END, \
             budget_usd_nanos = CASE WHEN ?4 THEN ?5 ELSE budget_usd_nanos END, \
             budget_period = CASE WHEN ?4 THEN ?6 ELSE budget_period END WHERE id = ?1",
            params![
                id,
                checked.role.as_str(),
                checked.password_hash,
                budget_given,
                nanos,
                period
            ],
        )?;
        let sessions_ended = if demoted || checked.password_hash.is_some() {
            end_sessions(&tx, id, now)?
        } else {
            0
        };
        let user = tx.query_row(
            &format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"),
            [id],
            row,
        )?;
        tx.commit()?;
        Ok(UserUpdated::Updated {
            user,
            sessions_ended,
        })
    }

    /// The id of user `name`, created (a member, no password) when there is none; a
    /// deleted user of that name is reused, as its name stays taken.
    pub fn ensure_user(&self, name: &str, now: i64) -> Result<i64, StoreError> {
        if !valid_username(name) {
            return Err(StoreError::BadUserName(name.to_owned()));
        }
        if let Some(pg) = self.pg() {
            return pg.ensure_user(name, now);
        }
        let conn = self.conn()?;
        conn.execute(
            "INSERT OR IGNORE INTO users (username, role, created_at) VALUES (?1, 'member', ?2)",
            params![name, now],
        )?;
        Ok(
            conn.query_row("SELECT id FROM users WHERE username = ?1", [name], |r| {
                r.get(0)
            })?,
        )
    }

    /// A user not deleted, by id.
    pub fn user_by_id(&self, id: i64) -> Result<Option<UserRow>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.user_by_id(id);
        }
        let conn = self.conn()?;
        let r = conn
            .query_row(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1 AND deleted_at IS NULL"),
                [id],
                row,
            )
            .optional()?;
        Ok(r)
    }
}

/// Admins not deleted.
fn admins(tx: &rusqlite::Transaction<'_>) -> Result<i64, StoreError> {
    Ok(tx.query_row(
        "SELECT COUNT(*) FROM users WHERE role = 'admin' AND deleted_at IS NULL",
        [],
        |r| r.get(0),
    )?)
}

/// Ends every session of user `id` still usable at `now`; how many.
fn end_sessions(tx: &rusqlite::Transaction<'_>, id: i64, now: i64) -> Result<usize, StoreError> {
    Ok(tx.execute(
        "UPDATE sessions SET revoked_at = ?2 WHERE user_id = ?1 AND (revoked_at IS NULL OR revoked_at > ?2)",
        params![id, now],
    )?)
}

/// What [`Store::delete_user`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserDeletion {
    Deleted {
        user: UserRow,
        keys_revoked: usize,
        sessions_revoked: usize,
    },
    /// No such user, or already deleted.
    NotFound,
    /// The actor asked to delete itself.
    Yourself,
    /// The user is the only admin left.
    LastAdmin,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{hasher_in, on_both_backends, raw, TestBackend};
    use crate::store::KeyCreate;

    on_both_backends!(
        create_list_and_refuse_duplicates,
        deletion_revokes_and_keeps_an_admin,
        updates_change_in_place_by_the_rules_of_creation,
        user_names_are_checked,
    );

    fn create_list_and_refuse_duplicates(b: &TestBackend) {
        let s = &b.store;
        let a = s
            .insert_user("alice", Role::Admin, Some("$argon2id$x"), None, 10)
            .unwrap();
        assert_eq!(s.user_by_name("alice").unwrap(), Some(a.clone()));
        assert_eq!(s.user_by_name("Alice").unwrap(), None);
        let e = s
            .insert_user("alice", Role::Member, None, None, 11)
            .unwrap_err();
        assert!(matches!(e, StoreError::DuplicateUser(_)));
        assert_eq!(e.to_string(), "user 'alice' already exists");
        let b = s
            .insert_user("b.o-b_1@x", Role::Member, None, None, 12)
            .unwrap();
        assert_eq!(s.list_users().unwrap(), vec![a, b]);
    }

    fn deletion_revokes_and_keeps_an_admin(b: &TestBackend) {
        let s = &b.store;
        let root = s
            .insert_user("root", Role::Admin, Some("$argon2id$x"), None, 1)
            .unwrap();
        let ops = s.insert_user("ops", Role::Admin, None, None, 1).unwrap();
        let bob = s.insert_user("bob", Role::Member, None, None, 1).unwrap();
        let h = hasher_in(b.dir.path());
        for _ in 0..2 {
            s.create_key(&h, &KeyCreate::for_user("bob"), 0).unwrap();
        }
        raw(
            s,
            &format!(
                "INSERT INTO sessions (id, user_id, created_at, expires_at) VALUES ('s1', {o}, 0, 999);",
                o = ops.id
            ),
        );

        assert_eq!(
            s.delete_user(root.id, root.id, 5).unwrap(),
            UserDeletion::Yourself
        );
        assert_eq!(
            s.delete_user(999, root.id, 5).unwrap(),
            UserDeletion::NotFound
        );
        assert_eq!(
            s.delete_user(bob.id, root.id, 5).unwrap(),
            UserDeletion::Deleted {
                user: bob.clone(),
                keys_revoked: 2,
                sessions_revoked: 0
            }
        );
        assert_eq!(
            s.delete_user(bob.id, root.id, 6).unwrap(),
            UserDeletion::NotFound
        );
        assert!(s.user_by_name("bob").unwrap().is_none());
        assert!(s.user_for_login("bob").unwrap().is_none());
        assert!(s
            .all_keys_for_auth()
            .unwrap()
            .iter()
            .all(|k| k.revoked_at == Some(5)));
        // The name stays taken: usage reports still name the deleted user.
        assert!(matches!(
            s.insert_user("bob", Role::Member, None, None, 7),
            Err(StoreError::DuplicateUser(_))
        ));

        assert!(matches!(
            s.delete_user(ops.id, root.id, 8).unwrap(),
            UserDeletion::Deleted {
                sessions_revoked: 1,
                ..
            }
        ));
        assert_eq!(s.session("s1").unwrap().unwrap().revoked_at, Some(8));
        // ops, already authorized when root deleted it, cannot then remove the last admin.
        assert_eq!(
            s.delete_user(root.id, ops.id, 9).unwrap(),
            UserDeletion::LastAdmin
        );
        assert_eq!(s.list_users().unwrap(), vec![root.clone()]);
        let (u, hash) = s.user_for_login("root").unwrap().unwrap();
        assert_eq!((u, hash.as_deref()), (root, Some("$argon2id$x")));
    }

    fn updates_change_in_place_by_the_rules_of_creation(b: &TestBackend) {
        let s = &b.store;
        let root = s
            .insert_user("root", Role::Admin, Some("$argon2id$x"), None, 1)
            .unwrap();
        let bob = s
            .insert_user("bob", Role::Member, None, Some((5, "day")), 1)
            .unwrap();
        raw(
            s,
            &format!(
                "INSERT INTO sessions (id, user_id, created_at, expires_at) VALUES ('r1', {r}, 0, 999), ('r2', {r}, 0, 999);",
                r = root.id
            ),
        );
        let update = |f: fn(&mut UserUpdate)| {
            let mut u = UserUpdate::default();
            f(&mut u);
            u
        };
        // A new amount keeps the period; the row and the keys' view follow.
        let u = update(|u| u.budget_usd = Some(Edit::Set(Amount::Text("0.25".into()))));
        let want = UserRow {
            budget_usd_nanos: Some(250_000_000),
            ..bob.clone()
        };
        assert_eq!(
            s.update_user(bob.id, &u, 2).unwrap(),
            UserUpdated::Updated {
                user: want.clone(),
                sessions_ended: 0
            }
        );
        assert_eq!(s.user_by_name("bob").unwrap(), Some(want));
        let u = update(|u| u.budget_usd = Some(Edit::Remove));
        let UserUpdated::Updated { user, .. } = s.update_user(bob.id, &u, 3).unwrap() else {
            panic!()
        };
        assert_eq!((user.budget_usd_nanos, user.budget_period), (None, None));
        // The same rules as `user add`: members may have a password too (the dashboard's
        // sign-in), never a short one.
        let pw = update(|u| u.password = Some(Secret::new("correct horse")));
        let short = update(|u| u.password = Some(Secret::new("short")));
        assert!(s.update_user(bob.id, &short, 4).is_err());
        assert!(s.user_for_login("bob").unwrap().unwrap().1.is_none());
        assert!(matches!(
            s.update_user(bob.id, &pw, 4).unwrap(),
            UserUpdated::Updated { .. }
        ));
        assert!(s.user_for_login("bob").unwrap().unwrap().1.is_some());
        assert!(s.update_user(root.id, &short, 4).is_err());
        // A new password ends the user's sessions.
        assert!(matches!(
            s.update_user(root.id, &pw, 5).unwrap(),
            UserUpdated::Updated {
                sessions_ended: 2,
                ..
            }
        ));
        assert_eq!(s.session("r1").unwrap().unwrap().revoked_at, Some(5));
        let (_, hash) = s.user_for_login("root").unwrap().unwrap();
        assert!(hash.unwrap().starts_with("$argon2id$"));
        // The last admin keeps the role; with another admin, the role can go.
        let demote = update(|u| u.role = Some("member".into()));
        assert_eq!(
            s.update_user(root.id, &demote, 6).unwrap(),
            UserUpdated::LastAdmin
        );
        let promote = update(|u| u.role = Some("admin".into()));
        s.update_user(bob.id, &promote, 7).unwrap();
        let UserUpdated::Updated { user, .. } = s.update_user(root.id, &demote, 8).unwrap() else {
            panic!()
        };
        assert_eq!(user.role, Role::Member);
        assert!(s.update_user(root.id, &UserUpdate::default(), 9).is_err());
        assert_eq!(
            s.update_user(999, &demote, 9).unwrap(),
            UserUpdated::NotFound
        );
    }

    fn user_names_are_checked(b: &TestBackend) {
        let s = &b.store;
        assert!(s
            .insert_user(&"a".repeat(64), Role::Member, None, None, 0)
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
                    s.insert_user(bad, Role::Member, None, None, 0),
                    Err(StoreError::BadUserName(_))
                ),
                "{bad:?}"
            );
        }
    }
}
