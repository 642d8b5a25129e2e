//! `/ui/keys`: gateway keys. Create (the secret is shown once, in the element with
//! `data-testid="new-key"`, in the answer to the form and nowhere else), revoke, and
//! edit scopes and limits in place (`/ui/keys/{id}`). Creating and
//! revoking go through the admin API's own functions (same checks, same audit entry,
//! refused from the next request). A member sees and manages only their own keys.

use http::Response;
use maud::{html, Markup};
use tollgate_filters::clock::system_clock;

use super::http::{html, query, redirect, Form};
use super::layout::{count, csrf_field, flash, maybe_time, page, time, Nav};
use super::overview::{all_time, budget_meter, Spend};
use super::viewer::Viewer;
use crate::admin::{blocking, AdminApp, ApiError, Req};
use crate::commands::format_usd;
use crate::store::input::{never_or, none_or, Amount, Edit};
use crate::store::{KeyCreate, KeyRow, KeyUpdate, StoreError};

/// Keys on a page.
const PAGE: usize = 100;

/// What the last action on the page came to.
pub enum Outcome {
    None,
    /// A new key: its id and, this once, its secret.
    Created(String, String),
    /// A refused creation: the message and the form as typed.
    Refused(String, Form),
}

/// A whole number field; `None` when blank.
fn number<T: std::str::FromStr>(
    form: &Form,
    name: &str,
    label: &str,
) -> Result<Option<T>, ApiError> {
    form.get(name)
        .map(|v| {
            v.parse()
                .map_err(|_| ApiError::invalid(format!("{label} must be a whole number")))
        })
        .transpose()
}

/// The new key the form asks for; a member's is always their own.
fn key_create(form: &Form, viewer: &Viewer) -> Result<KeyCreate, ApiError> {
    let user = match viewer.is_admin() {
        true => form.get("user").unwrap_or("").to_owned(),
        false => viewer.caller.username.clone(),
    };
    let budget = form.get("budget_usd").map(|b| Amount::Text(b.to_owned()));
    Ok(KeyCreate {
        user,
        name: form.get("name").map(str::to_owned),
        models: form
            .get("models")
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(str::to_owned)
            .collect(),
        // A period alone (the select always sends one) is not a budget.
        budget_period: budget
            .as_ref()
            .and(form.get("budget_period").map(str::to_owned)),
        budget_usd: budget,
        rpm: number(form, "rpm", "RPM")?,
        tpm: number(form, "tpm", "TPM")?,
        expires_in: form.get("expires_in").map(str::to_owned),
    })
}

fn create_form(viewer: &Viewer, typed: &Form, users: &[String]) -> Markup {
    let v = |n: &str| typed.get(n).unwrap_or("").to_owned();
    html! {
        h2 { "Create a key" }
        form.stack method="post" action="/ui/keys" {
            (csrf_field(viewer))
            @if viewer.is_admin() {
                label { "User" input name="user" list="users" required value=(v("user")); }
                datalist #users { @for u in users { option value=(u) {} } }
            }
            label { "Name" input name="name" value=(v("name")); }
            label { "Models" input name="models" placeholder="gpt-*, claude-* (blank: all)" value=(v("models")); }
            label { "Budget (USD)" input name="budget_usd" inputmode="decimal" value=(v("budget_usd")); }
            label { "Budget period" select aria-label="Budget period" name="budget_period" {
                @for p in ["month", "day", "total"] { option value=(p) selected[v("budget_period") == p] { (p) } }
            } }
            label { "RPM" input name="rpm" inputmode="numeric" value=(v("rpm")); }
            label { "TPM" input name="tpm" inputmode="numeric" value=(v("tpm")); }
            label { "Expires in" input name="expires_in" placeholder="30d, 12h (blank: never)" value=(v("expires_in")); }
            div { button type="submit" { "Create key" } }
        }
    }
}

/// "60 rpm, 1,000 tpm" or "-".
fn rate_limits(k: &KeyRow) -> String {
    let mut parts = Vec::new();
    if let Some(r) = k.rpm {
        parts.push(format!("{} rpm", count(u64::from(r))));
    }
    if let Some(t) = k.tpm {
        parts.push(format!("{} tpm", count(t)));
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(", ")
    }
}

fn key_row(viewer: &Viewer, k: &KeyRow, spend: &Spend) -> Markup {
    let revoked = k.revoked_at.is_some();
    let period = k.budget_period.as_deref().unwrap_or("month");
    html! {
        tr.revoked[revoked] data-testid="key-row" data-key-id=(k.id) {
            td { code { (k.id) } br; span.muted { (k.prefix) "…" } }
            td { (k.user) }
            td { (k.name.as_deref().unwrap_or("-")) }
            td { @if k.models.is_empty() { "all" } @else { (k.models.join(", ")) } }
            td { @if let Some(b) = k.budget_usd_nanos { (budget_meter(spend.key(period, &k.id), b, period)) } @else { "-" } }
            td { (rate_limits(k)) }
            td { (time(k.created_at)) }
            td { (maybe_time(k.expires_at)) }
            td { (maybe_time(k.last_used_at)) }
            td { @if revoked { "revoked " (maybe_time(k.revoked_at)) } @else {
                a href={ "/ui/keys/" (super::http::encode(&k.id)) } { "Edit" } " "
                form.inline method="post" action={ "/ui/keys/" (super::http::encode(&k.id)) "/revoke" }
                    data-confirm={ "Revoke key " (k.id) "? Requests with it are refused from now on." } {
                    (csrf_field(viewer)) button.danger type="submit" { "Revoke" }
                }
            } }
        }
    }
}

fn outcome_banner(outcome: &Outcome, done: Option<&str>) -> Markup {
    html! {
        @match outcome {
            Outcome::Created(id, secret) => div.secret role="status" {
                span { "New key " code { (id) } ": " }
                code #new-key data-testid="new-key" { (secret) }
                button.quiet type="button" hidden data-copy="new-key" { "Copy" }
                span.muted { "Shown once: copy it now; it is stored only as a hash." }
            },
            Outcome::Refused(m, _) => (flash("error", m)),
            Outcome::None => @if let Some(d) = done { (flash("ok", d)) },
        }
    }
}

/// The keys the viewer may see: a member's own, or everyone's (or one user's).
struct Listing {
    keys: Vec<KeyRow>,
    users: Vec<String>,
    spend: Spend,
}

/// The edit form as a [`KeyUpdate`], read as `tollgate key update` reads its options:
/// every field is set from the form (blank budget, RPM, TPM: none), but the expiry,
/// which a blank leaves as it is (`never` removes it).
fn key_update(form: &Form) -> Result<KeyUpdate, ApiError> {
    let bad = |label: &'static str| move |e: String| ApiError::invalid(format!("{label}: {e}"));
    let or_none = |name: &str| form.get(name).unwrap_or("none");
    Ok(KeyUpdate {
        name: Some(Edit::Set(form.get("name").unwrap_or("").to_owned())),
        models: Some(
            form.get("models")
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(str::to_owned)
                .collect(),
        ),
        budget_usd: Some(none_or::<Amount>(or_none("budget_usd")).map_err(bad("Budget (USD)"))?),
        budget_period: form.get("budget_period").map(str::to_owned),
        rpm: Some(none_or::<u32>(or_none("rpm")).map_err(bad("RPM"))?),
        tpm: Some(none_or::<u64>(or_none("tpm")).map_err(bad("TPM"))?),
        expires_in: form
            .get("expires_in")
            .map(never_or)
            .transpose()
            .map_err(bad("Expires in"))?,
    })
}

impl AdminApp {
    async fn key_listing(
        &self,
        viewer: &Viewer,
        user: Option<String>,
    ) -> Result<Listing, ApiError> {
        let store = self.store.clone();
        let own = viewer.own_user();
        let filter = if own.is_some() {
            Some(viewer.caller.username.clone())
        } else {
            user
        };
        blocking(move || {
            let keys = match store.list_keys(filter.as_deref()) {
                Err(StoreError::UnknownUser(_)) => Vec::new(),
                other => other?,
            };
            let users = match own {
                Some(_) => Vec::new(),
                None => store
                    .list_users()?
                    .into_iter()
                    .map(|u| u.username)
                    .collect(),
            };
            let all_time = all_time(keys.iter().map(|k| k.budget_period.as_deref()));
            let spend = Spend::load(&store, own, system_clock(), all_time)?;
            Ok::<_, StoreError>(Listing { keys, users, spend })
        })
        .await
    }

    /// `GET /ui/keys[?user=&revoked=1&page=N]`, or the page after an action.
    pub(crate) async fn keys_page(
        &self,
        req: &Req,
        viewer: &Viewer,
        outcome: Outcome,
    ) -> Result<Response<Vec<u8>>, ApiError> {
        let user = req.param("user").filter(|_| viewer.is_admin());
        let show_revoked = req.param("revoked").is_some();
        let page_no: usize = req.param("page").and_then(|p| p.parse().ok()).unwrap_or(0);
        let l = self.key_listing(viewer, user.clone()).await?;
        let shown: Vec<&KeyRow> = l
            .keys
            .iter()
            .rev()
            .filter(|k| show_revoked || k.revoked_at.is_none())
            .collect();
        let more = shown.len() > (page_no + 1) * PAGE;
        let typed = match &outcome {
            Outcome::Refused(_, f) => f.clone(),
            _ => Form::default(),
        };
        let done = match req.param("done").as_deref() {
            Some("revoked") => Some("The key is revoked."),
            Some("updated") => Some("The key is updated."),
            _ => None,
        };
        let status = match &outcome {
            Outcome::Refused(..) => 422,
            _ => 200,
        };
        let here = |p: usize| {
            query(&[
                ("user", user.as_deref().unwrap_or("")),
                ("revoked", if show_revoked { "1" } else { "" }),
                ("page", &p.to_string()),
            ])
        };
        let body = html! {
            (outcome_banner(&outcome, done))
            (create_form(viewer, &typed, &l.users))
            h2 { "Keys" }
            form.filters method="get" action="/ui/keys" {
                @if viewer.is_admin() { label { "Owner" input name="user" value=(user.as_deref().unwrap_or("")); } }
                label.check { input type="checkbox" name="revoked" value="1" checked[show_revoked]; " Show revoked" }
                button type="submit" { "Show" }
            }
            div.table-scroll { table {
                thead { tr { th { "Key" } th { "User" } th { "Name" } th { "Models" } th { "Budget" } th { "Limits" } th { "Created" } th { "Expires" } th { "Last used" } th { "" } } }
                tbody { @for k in shown.iter().skip(page_no * PAGE).take(PAGE) { (key_row(viewer, k, &l.spend)) } }
            } }
            @if shown.is_empty() { p.muted { "No keys." } }
            div.pager {
                @if page_no > 0 { a href={ "/ui/keys?" (here(page_no - 1)) } { "← Newer" } }
                @if more { a href={ "/ui/keys?" (here(page_no + 1)) } { "Older →" } }
            }
        };
        Ok(html(status, page(viewer, Nav::Keys, "Keys", body)))
    }

    /// `POST /ui/keys`
    pub(crate) async fn ui_create_key(
        &self,
        req: &Req,
        viewer: &Viewer,
        form: &Form,
    ) -> Result<Response<Vec<u8>>, ApiError> {
        let created = match key_create(form, viewer) {
            Ok(new) => self.create_key_as(req, &viewer.caller, new).await,
            Err(e) => Err(e),
        };
        let outcome = match created {
            Ok((row, secret)) => Outcome::Created(row.id, secret.expose().to_owned()),
            Err(e) if e.status < 500 => Outcome::Refused(e.message, form.clone()),
            Err(e) => return Err(e),
        };
        let listing = Req {
            query: None,
            ..req.clone()
        };
        self.keys_page(&listing, viewer, outcome).await
    }

    /// The key `id` if the viewer may manage it (403 for another user's, 404 for none).
    async fn manageable_key(&self, viewer: &Viewer, id: &str) -> Result<KeyRow, ApiError> {
        let store = self.store.clone();
        let key_id = id.to_owned();
        let key = blocking(move || {
            store
                .list_keys(None)
                .map(|ks| ks.into_iter().find(|k| k.id == key_id))
        })
        .await?
        .ok_or_else(|| ApiError::not_found(format!("There is no key '{id}'.")))?;
        if !viewer.is_admin() && key.user != viewer.caller.username {
            return Err(ApiError::new(403, "This key is not yours."));
        }
        Ok(key)
    }

    /// `POST /ui/keys/{id}/revoke`
    pub(crate) async fn ui_revoke_key(
        &self,
        req: &Req,
        viewer: &Viewer,
        id: &str,
    ) -> Result<Response<Vec<u8>>, ApiError> {
        self.manageable_key(viewer, id).await?;
        self.revoke_key_as(req, &viewer.caller, id).await?;
        Ok(redirect("/ui/keys?done=revoked"))
    }

    /// `GET /ui/keys/{id}`: the edit form.
    pub(crate) async fn key_edit_page(
        &self,
        viewer: &Viewer,
        id: &str,
        message: Option<String>,
    ) -> Result<Response<Vec<u8>>, ApiError> {
        let k = self.manageable_key(viewer, id).await?;
        let action = format!("/ui/keys/{}", super::http::encode(&k.id));
        let body = html! {
            @if let Some(m) = &message { (flash("error", m)) }
            p { "Key " code { (k.id) } " of " (k.user) "; expires " (maybe_time(k.expires_at)) "." }
            form.stack method="post" action=(action) {
                (csrf_field(viewer))
                fieldset {
                    label { "Name" input name="name" value=(k.name.as_deref().unwrap_or("")); }
                    label { "Models" input name="models" value=(k.models.join(", ")) placeholder="blank: all"; }
                    label { "Budget (USD)" input name="budget_usd" value=(k.budget_usd_nanos.map(format_usd).unwrap_or_default()) placeholder="none"; }
                    label { "Budget period" select aria-label="Budget period" name="budget_period" {
                        @for p in ["month", "day", "total"] { option value=(p) selected[k.budget_period.as_deref() == Some(p)] { (p) } }
                    } }
                    label { "RPM" input name="rpm" value=(k.rpm.map(|r| r.to_string()).unwrap_or_default()) placeholder="none"; }
                    label { "TPM" input name="tpm" value=(k.tpm.map(|t| t.to_string()).unwrap_or_default()) placeholder="none"; }
                    label { "Expires in" input name="expires_in" placeholder="30d, or never (blank: unchanged)"; }
                    div { button type="submit" { "Save key" } }
                }
            }
        };
        Ok(html(
            if message.is_some() { 422 } else { 200 },
            page(viewer, Nav::Keys, "Edit key", body),
        ))
    }

    /// `POST /ui/keys/{id}`: the edit, through [`AdminApp::update_key_as`] (as `PATCH
    /// /admin/keys/{id}`); a value refused shows the form again with why.
    pub(crate) async fn ui_update_key(
        &self,
        req: &Req,
        viewer: &Viewer,
        id: &str,
        form: &Form,
    ) -> Result<Response<Vec<u8>>, ApiError> {
        self.manageable_key(viewer, id).await?;
        let done = match key_update(form) {
            Ok(update) => self.update_key_as(req, &viewer.caller, id, update).await,
            Err(e) => Err(e),
        };
        match done {
            Ok(_) => Ok(redirect("/ui/keys?done=updated")),
            Err(e) if e.status == 422 => self.key_edit_page(viewer, id, Some(e.message)).await,
            Err(e) => Err(e),
        }
    }
}
