//! `GET/POST /admin/users`, `PATCH/DELETE /admin/users/{id}`. The body of a new user is
//! a [`UserCreate`], the type `tollgate user add` fills and the store checks, so both
//! accept exactly the same names, roles, passwords and budgets; an update's is a
//! [`UserUpdate`], the type of `tollgate user update`.

use http::Response;
use pingora::protocols::http::ServerSession;
use tollgate_filters::clock::system_clock;

use super::auth::Caller;
use super::{blocking, json_response, parse_secret_json, read_body, AdminApp, ApiError, Req};
use crate::commands::users::{update_detail, user_json};
use crate::store::{UserCreate, UserDeletion, UserRow, UserUpdate, UserUpdated};

impl AdminApp {
    pub(crate) async fn list_users(&self) -> Result<Response<Vec<u8>>, ApiError> {
        let store = self.store.clone();
        let users = blocking(move || store.list_users()).await?;
        Ok(json_response(
            200,
            serde_json::Value::Array(users.iter().map(user_json).collect()),
        ))
    }

    pub(crate) async fn create_user(
        &self,
        session: &mut ServerSession,
        req: &Req,
        caller: &Caller,
    ) -> Result<Response<Vec<u8>>, ApiError> {
        let body = read_body(session).await?;
        let new: UserCreate = parse_secret_json(
            &body,
            "{\"username\": \"...\", \"role\": \"admin\" or \"member\", \"password\"?: \"...\", \"budget_usd\"?: \"20\", \"budget_period\"?: \"day\" | \"month\" | \"total\"}",
        )?;
        let user = self.create_user_as(req, caller, new).await?;
        Ok(json_response(201, user_json(&user)))
    }

    /// Creates a user on behalf of `caller` (the API's and the dashboard's way), audited.
    pub(crate) async fn create_user_as(
        &self,
        req: &Req,
        caller: &Caller,
        new: UserCreate,
    ) -> Result<UserRow, ApiError> {
        let has_password = new.password.is_some();
        let store = self.store.clone();
        // Blocking: hashing a password takes argon2's whole cost.
        let user = blocking(move || store.create_user(&new, system_clock())).await?;
        self.audit(
            req,
            &caller.username,
            "user.create",
            Some(&user.username),
            serde_json::json!({"id": user.id, "role": user.role.as_str(), "password": has_password}),
        )
        .await;
        Ok(user)
    }

    pub(crate) async fn update_user(
        &self,
        session: &mut ServerSession,
        req: &Req,
        caller: &Caller,
        id: &str,
    ) -> Result<Response<Vec<u8>>, ApiError> {
        let not_found = || ApiError::not_found(format!("no user with id '{id}'"));
        let id: i64 = id.parse().map_err(|_| not_found())?;
        let body = read_body(session).await?;
        let update: UserUpdate = parse_secret_json(
            &body,
            "{\"role\"?: \"admin\" or \"member\", \"password\"?: \"...\", \"budget_usd\"?: \"20\" or null, \"budget_period\"?: \"day\" | \"month\" | \"total\"}",
        )?;
        let user = self.update_user_as(req, caller, id, update).await?;
        Ok(json_response(200, user_json(&user)))
    }

    /// Changes user `id` in place for `caller` (the API's and the dashboard's way in):
    /// checked as a new user, in force from the next request, audited.
    pub(crate) async fn update_user_as(
        &self,
        req: &Req,
        caller: &Caller,
        id: i64,
        update: UserUpdate,
    ) -> Result<UserRow, ApiError> {
        let store = self.store.clone();
        let u = update.clone();
        // Blocking: hashing a new password takes argon2's whole cost.
        let done = blocking(move || store.update_user(id, &u, system_clock())).await?;
        let (user, ended) =
            match done {
                UserUpdated::Updated {
                    user,
                    sessions_ended,
                } => (user, sessions_ended),
                UserUpdated::NotFound => {
                    return Err(ApiError::not_found(format!("no user with id '{id}'")))
                }
                UserUpdated::LastAdmin => return Err(ApiError::new(
                    409,
                    "cannot take the admin role from the last admin: make another user admin first",
                )),
            };
        // Its keys carry its role and budget: in force from the very next request.
        self.refresh_keys().await;
        let detail = update_detail(&update, &user, ended);
        self.audit(
            req,
            &caller.username,
            "user.update",
            Some(&user.username),
            detail,
        )
        .await;
        Ok(user)
    }

    pub(crate) async fn delete_user(
        &self,
        req: &Req,
        caller: &Caller,
        id: &str,
    ) -> Result<Response<Vec<u8>>, ApiError> {
        let (user, keys_revoked, sessions_revoked) = self.delete_user_as(req, caller, id).await?;
        Ok(json_response(
            200,
            serde_json::json!({
                "deleted": user_json(&user),
                "keys_revoked": keys_revoked,
                "sessions_revoked": sessions_revoked,
            }),
        ))
    }

    /// Deletes user `id` on behalf of `caller`, its keys refused from the next request,
    /// audited; the user and how many keys and sessions were revoked with it.
    pub(crate) async fn delete_user_as(
        &self,
        req: &Req,
        caller: &Caller,
        id: &str,
    ) -> Result<(UserRow, usize, usize), ApiError> {
        let not_found = || ApiError::not_found(format!("no user with id '{id}'"));
        let id: i64 = id.parse().map_err(|_| not_found())?;
        let store = self.store.clone();
        let actor = caller.user_id;
        let done = blocking(move || store.delete_user(id, actor, system_clock())).await?;
        let (user, keys_revoked, sessions_revoked) = match done {
            UserDeletion::Deleted {
                user,
                keys_revoked,
                sessions_revoked,
            } => (user, keys_revoked, sessions_revoked),
            UserDeletion::NotFound => return Err(not_found()),
            UserDeletion::Yourself => return Err(ApiError::new(409, "you cannot delete yourself")),
            UserDeletion::LastAdmin => {
                return Err(ApiError::new(
                    409,
                    "cannot delete the last admin: create another admin first",
                ))
            }
        };
        // Its keys stop working on the next request, not the next periodic refresh.
        self.refresh_keys().await;
        self.audit(
            req,
            &caller.username,
            "user.delete",
            Some(&user.username),
            serde_json::json!({
                "id": user.id,
                "keys_revoked": keys_revoked,
                "sessions_revoked": sessions_revoked,
            }),
        )
        .await;
        Ok((user, keys_revoked, sessions_revoked))
    }
}
