//! `/ui/provider-keys`: provider secrets per upstream, global or per user, set or
//! deleted; a stored key is never shown, only whether one is set and when. Setting and
//! deleting go through the admin API's functions (same checks, audit, cache refresh).
//! A member manages only their own keys.

use std::collections::HashMap;

use http::Response;
use maud::{html, Markup};

use super::http::{html, redirect, Form};
use super::layout::{csrf_field, flash, page, time, Nav};
use super::viewer::Viewer;
use crate::admin::{blocking, AdminApp, ApiError, Req};
use crate::commands::provider_keys::parse_provider_key;
use crate::store::{ProviderKeyRow, StoreError};

/// A stored key as listed: upstream, owner name (`None`: every user), set, updated.
struct Listed {
    upstream: String,
    owner: Option<String>,
    created_at: i64,
    updated_at: i64,
}

fn set_form(viewer: &Viewer, upstreams: &[String]) -> Markup {
    html! {
        h2 { "Set a provider key" }
        form.stack method="post" action="/ui/provider-keys" autocomplete="off" {
            (csrf_field(viewer))
            label { "Upstream" select aria-label="Upstream" name="upstream" required {
                @for u in upstreams { option value=(u) { (u) } }
            } }
            @if viewer.is_admin() { label { "User" input name="user" placeholder="blank: every user"; } }
            label { "Key" input name="key" type="password" required autocomplete="off"; }
            div { button type="submit" { "Save key" } }
        }
        p.muted { "Stored encrypted; never shown again. A user's own key is used for their requests to that upstream instead of the configured ones." }
    }
}

fn listed_row(viewer: &Viewer, k: &Listed) -> Markup {
    html! {
        tr data-testid="provider-key-row" {
            td { (k.upstream) }
            td { (k.owner.as_deref().unwrap_or("every user")) }
            td { (time(k.created_at)) }
            td { (time(k.updated_at)) }
            td {
                form.inline method="post" action="/ui/provider-keys/delete"
                    data-confirm={ "Delete the " (k.upstream) " key?" } {
                    (csrf_field(viewer))
                    input type="hidden" name="upstream" value=(k.upstream);
                    @if let Some(o) = &k.owner { input type="hidden" name="user" value=(o); }
                    button.danger type="submit" { "Delete" }
                }
            }
        }
    }
}

/// The owner a form names: a member's own name always, an admin's choice (blank: global).
fn owner(viewer: &Viewer, form: &Form) -> Option<String> {
    match viewer.is_admin() {
        true => form.get("user").map(str::to_owned),
        false => Some(viewer.caller.username.clone()),
    }
}

impl AdminApp {
    /// Stored keys the viewer may see, without their secrets.
    async fn listed_provider_keys(&self, viewer: &Viewer) -> Result<Vec<Listed>, ApiError> {
        let store = self.store.clone();
        let own = viewer.own_user();
        blocking(move || {
            let names: HashMap<i64, String> = store
                .list_users()?
                .into_iter()
                .map(|u| (u.id, u.username))
                .collect();
            let rows: Vec<ProviderKeyRow> = store.all_provider_keys()?;
            Ok::<_, StoreError>(
                rows.into_iter()
                    .filter(|r| own.is_none() || r.user_id == own)
                    .filter(|r| r.user_id.is_none_or(|id| names.contains_key(&id)))
                    .map(|r| Listed {
                        owner: r.user_id.and_then(|id| names.get(&id).cloned()),
                        upstream: r.upstream,
                        created_at: r.created_at,
                        updated_at: r.updated_at,
                    })
                    .collect(),
            )
        })
        .await
    }

    /// `GET /ui/provider-keys`, or the page after a refused change.
    pub(crate) async fn provider_keys_page(
        &self,
        req: &Req,
        viewer: &Viewer,
        refused: Option<String>,
    ) -> Result<Response<Vec<u8>>, ApiError> {
        let listed = self.listed_provider_keys(viewer).await?;
        let upstreams: Vec<String> = self
            .live
            .current()
            .upstream_names()
            .into_iter()
            .map(str::to_owned)
            .collect();
        let done = match req.param("done").as_deref() {
            Some("set") => Some("The key is stored."),
            Some("deleted") => Some("The key is deleted."),
            _ => None,
        };
        let body = html! {
            @if let Some(m) = &refused { (flash("error", m)) }
            @if let Some(d) = done { (flash("ok", d)) }
            table {
                thead { tr { th { "Upstream" } th { "For" } th { "Set" } th { "Updated" } th { "" } } }
                tbody { @for k in &listed { (listed_row(viewer, k)) } }
            }
            @if listed.is_empty() { p.muted { "No provider key is stored: requests use the keys in the config." } }
            (set_form(viewer, &upstreams))
        };
        let status = if refused.is_some() { 422 } else { 200 };
        Ok(html(
            status,
            page(viewer, Nav::ProviderKeys, "Provider keys", body),
        ))
    }

    /// `POST /ui/provider-keys`
    pub(crate) async fn ui_set_provider_key(
        &self,
        req: &Req,
        viewer: &Viewer,
        form: &Form,
    ) -> Result<Response<Vec<u8>>, ApiError> {
        let upstream = form.get("upstream").unwrap_or("").to_owned();
        let set = match parse_provider_key(form.raw("key").unwrap_or("").as_bytes()) {
            Ok(secret) => {
                self.set_provider_key_as(
                    req,
                    &viewer.caller,
                    &upstream,
                    owner(viewer, form),
                    secret,
                )
                .await
            }
            Err(e) => Err(ApiError::from(e)),
        };
        match set {
            Ok(_) => Ok(redirect("/ui/provider-keys?done=set")),
            Err(e) if e.status < 500 => {
                let listing = Req {
                    query: None,
                    ..req.clone()
                };
                self.provider_keys_page(&listing, viewer, Some(e.message))
                    .await
            }
            Err(e) => Err(e),
        }
    }

    /// `POST /ui/provider-keys/delete`
    pub(crate) async fn ui_delete_provider_key(
        &self,
        req: &Req,
        viewer: &Viewer,
        form: &Form,
    ) -> Result<Response<Vec<u8>>, ApiError> {
        let upstream = form.get("upstream").unwrap_or("").to_owned();
        self.delete_provider_key_as(req, &viewer.caller, &upstream, owner(viewer, form))
            .await?;
        Ok(redirect("/ui/provider-keys?done=deleted"))
    }
}
