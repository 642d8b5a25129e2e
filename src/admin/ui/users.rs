//! `/ui/users` (admins): create a user with role, password and budget; delete one
//! (its keys and sessions are revoked with it); edit one in place (`/ui/users/{id}`).
//! Each goes through the admin API's own function (same checks, same audit entry).

use http::Response;
use maud::{html, Markup};
use tollgate_filters::clock::system_clock;
use tollgate_filters::Secret;

use super::http::{html, redirect, Form};
use super::layout::{csrf_field, flash, page, time, Nav};
use super::overview::{all_time, budget_meter, Spend};
use super::viewer::Viewer;
use crate::admin::{blocking, AdminApp, ApiError, Req};
use crate::commands::format_usd;
use crate::store::input::{none_or, Amount};
use crate::store::{StoreError, UserCreate, UserRow, UserUpdate};

fn create_form(viewer: &Viewer, typed: &Form) -> Markup {
    let v = |n: &str| typed.get(n).unwrap_or("").to_owned();
    html! {
        h2 { "Create a user" }
        form.stack method="post" action="/ui/users" autocomplete="off" {
            (csrf_field(viewer))
            label { "Username" input name="username" required value=(v("username")); }
            label { "Role" select aria-label="Role" name="role" {
                option value="member" selected[v("role") != "admin"] { "member" }
                option value="admin" selected[v("role") == "admin"] { "admin" }
            } }
            label { "Password" input name="password" type="password" autocomplete="new-password" placeholder="blank: no sign-in"; }
            label { "Budget (USD)" input name="budget_usd" inputmode="decimal" value=(v("budget_usd")); }
            label { "Budget period" select aria-label="Budget period" name="budget_period" {
                @for p in ["month", "day", "total"] { option value=(p) selected[v("budget_period") == p] { (p) } }
            } }
            div { button type="submit" { "Create user" } }
        }
    }
}

fn user_row(viewer: &Viewer, u: &UserRow, spend: &Spend) -> Markup {
    let period = u.budget_period.as_deref().unwrap_or("month");
    html! {
        tr data-testid="user-row" data-user=(u.username) {
            td { (u.id) }
            td { (u.username) }
            td { (u.role.as_str()) }
            td { @if let Some(b) = u.budget_usd_nanos { (budget_meter(spend.user(period, &u.username), b, period)) } @else { "-" } }
            td { (time(u.created_at)) }
            td {
                a href={ "/ui/users/" (u.id) } { "Edit" } " "
                a href={ "/ui/keys?user=" (super::http::encode(&u.username)) } { "Keys" } " "
                @if u.id != viewer.caller.user_id {
                    form.inline method="post" action={ "/ui/users/" (u.id) "/delete" }
                        data-confirm={ "Delete user " (u.username) "? Their keys and sessions are revoked." } {
                        (csrf_field(viewer)) button.danger type="submit" { "Delete" }
                    }
                }
            }
        }
    }
}

/// The user the form asks for.
fn user_create(form: &Form) -> UserCreate {
    let budget = form.get("budget_usd").map(|b| Amount::Text(b.to_owned()));
    UserCreate {
        name: form.get("username").unwrap_or("").to_owned(),
        role: form.get("role").unwrap_or("member").to_owned(),
        password: form.raw("password").map(Secret::new),
        budget_period: budget
            .as_ref()
            .and(form.get("budget_period").map(str::to_owned)),
        budget_usd: budget,
    }
}

/// The edit form as a [`UserUpdate`]: role, budget (blank: none) and period as shown; the
/// password only when one is typed.
fn user_update(form: &Form) -> Result<UserUpdate, ApiError> {
    let budget = none_or::<Amount>(form.get("budget_usd").unwrap_or("none"))
        .map_err(|e| ApiError::invalid(format!("Budget (USD): {e}")))?;
    Ok(UserUpdate {
        role: form.get("role").map(str::to_owned),
        password: form.raw("password").map(Secret::new),
        budget_usd: Some(budget),
        budget_period: form.get("budget_period").map(str::to_owned),
    })
}

impl AdminApp {
    /// `GET /ui/users`, or the page after a refused creation.
    pub(crate) async fn users_page(
        &self,
        req: &Req,
        viewer: &Viewer,
        refused: Option<(String, Form)>,
    ) -> Result<Response<Vec<u8>>, ApiError> {
        let store = self.store.clone();
        let (users, spend) = blocking(move || {
            let users = store.list_users()?;
            let all_time = all_time(users.iter().map(|u| u.budget_period.as_deref()));
            let spend = Spend::load(&store, None, system_clock(), all_time)?;
            Ok::<_, StoreError>((users, spend))
        })
        .await?;
        let done = match req.param("done").as_deref() {
            Some("created") => Some("The user is created."),
            Some("deleted") => Some("The user is deleted; their keys and sessions are revoked."),
            Some("updated") => Some("The user is updated."),
            _ => None,
        };
        let typed = refused.as_ref().map(|r| r.1.clone()).unwrap_or_default();
        let body = html! {
            @if let Some((m, _)) = &refused { (flash("error", m)) }
            @if let Some(d) = done { (flash("ok", d)) }
            (create_form(viewer, &typed))
            h2 { "Users" }
            table {
                thead { tr { th { "ID" } th { "Username" } th { "Role" } th { "Budget" } th { "Created" } th { "" } } }
                tbody { @for u in &users { (user_row(viewer, u, &spend)) } }
            }
        };
        let status = if refused.is_some() { 422 } else { 200 };
        Ok(html(status, page(viewer, Nav::Users, "Users", body)))
    }

    /// `POST /ui/users`
    pub(crate) async fn ui_create_user(
        &self,
        req: &Req,
        viewer: &Viewer,
        form: &Form,
    ) -> Result<Response<Vec<u8>>, ApiError> {
        match self
            .create_user_as(req, &viewer.caller, user_create(form))
            .await
        {
            Ok(_) => Ok(redirect("/ui/users?done=created")),
            Err(e) if e.status < 500 => {
                let listing = Req {
                    query: None,
                    ..req.clone()
                };
                self.users_page(&listing, viewer, Some((e.message, form.clone())))
                    .await
            }
            Err(e) => Err(e),
        }
    }

    /// `POST /ui/users/{id}/delete`
    pub(crate) async fn ui_delete_user(
        &self,
        req: &Req,
        viewer: &Viewer,
        id: &str,
    ) -> Result<Response<Vec<u8>>, ApiError> {
        self.delete_user_as(req, &viewer.caller, id).await?;
        Ok(redirect("/ui/users?done=deleted"))
    }

    async fn user_by_id(&self, id: &str) -> Result<UserRow, ApiError> {
        let not_found = || ApiError::not_found(format!("There is no user '{id}'."));
        let uid: i64 = id.parse().map_err(|_| not_found())?;
        let store = self.store.clone();
        blocking(move || {
            store
                .list_users()
                .map(|us| us.into_iter().find(|u| u.id == uid))
        })
        .await?
        .ok_or_else(not_found)
    }

    /// `GET /ui/users/{id}`: the edit form.
    pub(crate) async fn user_edit_page(
        &self,
        viewer: &Viewer,
        id: &str,
        message: Option<String>,
    ) -> Result<Response<Vec<u8>>, ApiError> {
        let u = self.user_by_id(id).await?;
        let body = html! {
            @if let Some(m) = &message { (flash("error", m)) }
            form.stack method="post" action={ "/ui/users/" (u.id) } autocomplete="off" {
                (csrf_field(viewer))
                fieldset {
                    label { "Username" input value=(u.username) disabled; }
                    label { "Role" select aria-label="Role" name="role" {
                        @for r in ["member", "admin"] { option value=(r) selected[u.role.as_str() == r] { (r) } }
                    } }
                    label { "New password" input name="password" type="password" autocomplete="new-password" placeholder="blank: unchanged"; }
                    label { "Budget (USD)" input name="budget_usd" value=(u.budget_usd_nanos.map(format_usd).unwrap_or_default()) placeholder="none"; }
                    label { "Budget period" select aria-label="Budget period" name="budget_period" {
                        @for p in ["month", "day", "total"] { option value=(p) selected[u.budget_period.as_deref() == Some(p)] { (p) } }
                    } }
                    div { button type="submit" { "Save user" } }
                }
            }
        };
        let status = if message.is_some() { 422 } else { 200 };
        Ok(html(
            status,
            page(
                viewer,
                Nav::Users,
                &format!("Edit user {}", u.username),
                body,
            ),
        ))
    }

    /// `POST /ui/users/{id}`: the edit, through [`AdminApp::update_user_as`] (as `PATCH
    /// /admin/users/{id}`); a value refused shows the form again with why.
    pub(crate) async fn ui_update_user(
        &self,
        req: &Req,
        viewer: &Viewer,
        id: &str,
        form: &Form,
    ) -> Result<Response<Vec<u8>>, ApiError> {
        let u = self.user_by_id(id).await?;
        let update = match user_update(form) {
            Ok(update) => update,
            Err(e) => return self.user_edit_page(viewer, id, Some(e.message)).await,
        };
        match self.update_user_as(req, &viewer.caller, u.id, update).await {
            Ok(_) => Ok(redirect("/ui/users?done=updated")),
            Err(e) if e.status == 422 || e.status == 409 => {
                self.user_edit_page(viewer, id, Some(e.message)).await
            }
            Err(e) => Err(e),
        }
    }
}
