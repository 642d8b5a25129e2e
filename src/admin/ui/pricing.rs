//! `/ui/pricing` (admins): the price table in force (input, output, cache read and cache
//! write per million tokens, and where each row comes from: the config's `pricing` or an
//! override in the store), the form that sets an override, a delete button on each
//! override, and the models seen in the last 30 days of traffic that no price matches,
//! each with a one-click "Set price" that fills the form. Setting and deleting go
//! through `/admin/prices`' own functions: in force from the next request, audited.

use http::Response;
use maud::{html, Markup};
use tollgate_filters::clock::system_clock;
use tollgate_filters::pattern::ModelPattern;
use tollgate_filters::usage::Price;

use super::http::{encode, html, redirect, Form};
use super::layout::{csrf_field, flash, page, Nav};
use super::viewer::Viewer;
use crate::admin::{blocking, AdminApp, ApiError, Req};
use crate::store::input::Amount;
use crate::store::{DayRange, PriceSet};

/// One row of the effective table.
struct Row {
    pattern: String,
    price: Price,
    source: &'static str,
}

/// Thousandths of a dollar per million tokens (the unit of [`Price`]) as USD.
fn per_million(p: u64) -> String {
    format!("{}.{:03}", p / 1000, p % 1000)
}

fn table(viewer: &Viewer, rows: &[Row]) -> Markup {
    html! {
        table {
            thead { tr {
                th { "Pattern" } th.num { "Input" } th.num { "Output" } th.num { "Cache read" } th.num { "Cache write" } th { "Source" } th { "" }
            } }
            tbody { @for r in rows {
                tr data-testid="price-row" data-pattern=(r.pattern) {
                    td { code { (r.pattern) } }
                    td.num { (per_million(r.price.input)) } td.num { (per_million(r.price.output)) }
                    td.num { (per_million(r.price.cache_read)) } td.num { (per_million(r.price.cache_write)) }
                    td { (r.source) }
                    td { @if r.source == "store" {
                        form.inline method="post" action="/ui/pricing/delete" data-confirm={ "Delete the override of " (r.pattern) "?" } {
                            (csrf_field(viewer)) input type="hidden" name="pattern" value=(r.pattern);
                            button.danger type="submit" { "Delete" }
                        }
                    } }
                }
            } }
        }
        p.muted { "USD per million tokens; the first matching pattern wins. Cache prices default to the input price." }
    }
}

fn edit_form(viewer: &Viewer, pattern: &str) -> Markup {
    html! {
        h2 #set-price { "Set a price" }
        form.stack method="post" action="/ui/pricing" {
            (csrf_field(viewer))
            fieldset {
                label { "Pattern" input name="pattern" required value=(pattern) placeholder="gpt-4o-mini*"; }
                label { "Input" input name="input" required inputmode="decimal"; }
                label { "Output" input name="output" required inputmode="decimal"; }
                label { "Cache read" input name="cache_read" inputmode="decimal" placeholder="input price"; }
                label { "Cache write" input name="cache_write" inputmode="decimal" placeholder="input price"; }
                div { button type="submit" { "Save price" } }
            }
        }
    }
}

fn unpriced(models: &[String]) -> Markup {
    html! {
        h2 { "Models in traffic without a price (last 30 days)" }
        @if models.is_empty() { p.muted { "Every model seen has a price." } } @else {
            table { tbody { @for m in models {
                tr data-testid="unpriced-row" { td { code { (m) } } td {
                    a href={ "/ui/pricing?pattern=" (encode(m)) "#set-price" } { "Set price" }
                } }
            } } }
        }
    }
}

/// The form's prices as a [`PriceSet`] (USD per million tokens, checked by the store as
/// `tollgate price set`'s are); blank cache prices default to the input price.
fn price_set(form: &Form) -> Result<PriceSet, ApiError> {
    let needed = |name: &str, label: &str| {
        form.get(name)
            .map(|v| Amount::Text(v.to_owned()))
            .ok_or_else(|| ApiError::invalid(format!("{label}: a price is needed")))
    };
    Ok(PriceSet {
        input: needed("input", "Input")?,
        output: needed("output", "Output")?,
        cache_read: form.get("cache_read").map(|v| Amount::Text(v.to_owned())),
        cache_write: form.get("cache_write").map(|v| Amount::Text(v.to_owned())),
    })
}

impl AdminApp {
    /// The table in force: the store's overrides and the config's rows, in the order
    /// a model is matched against them.
    fn price_rows(&self) -> Vec<Row> {
        self.live
            .price_rows()
            .iter()
            .map(|r| Row {
                pattern: r.pattern.clone(),
                price: r.price,
                source: r.source.as_str(),
            })
            .collect()
    }

    /// `GET /ui/pricing[?pattern=]`
    pub(crate) async fn pricing_page(
        &self,
        req: &Req,
        viewer: &Viewer,
        message: Option<(&str, String)>,
    ) -> Result<Response<Vec<u8>>, ApiError> {
        let rows = self.price_rows();
        let store = self.store.clone();
        let today = system_clock().div_euclid(86_400);
        let seen = blocking(move || store.models_seen(DayRange::days(today - 29, today))).await?;
        let patterns: Vec<ModelPattern> = rows
            .iter()
            .map(|r| ModelPattern::parse(&r.pattern))
            .collect();
        let missing: Vec<String> = seen
            .into_iter()
            .filter(|m| !patterns.iter().any(|p| p.matches(m)))
            .collect();
        let pattern = req.param("pattern").unwrap_or_default();
        let done = match req.param("done").as_deref() {
            Some("set") => Some("The price is set; the next request costs it."),
            Some("deleted") => Some("The override is deleted."),
            _ => None,
        };
        let body = html! {
            @if let Some((kind, m)) = &message { (flash(kind, m)) }
            @if let Some(d) = done { (flash("ok", d)) }
            (table(viewer, &rows))
            (edit_form(viewer, &pattern))
            (unpriced(&missing))
        };
        let status = if message.is_some() { 422 } else { 200 };
        Ok(html(status, page(viewer, Nav::Pricing, "Pricing", body)))
    }

    /// `POST /ui/pricing`
    pub(crate) async fn ui_set_price(
        &self,
        req: &Req,
        viewer: &Viewer,
        form: &Form,
    ) -> Result<Response<Vec<u8>>, ApiError> {
        let pattern = form.get("pattern").unwrap_or("").to_owned();
        let done = match price_set(form) {
            Ok(set) => self.set_price_as(req, &viewer.caller, &pattern, set).await,
            Err(e) => Err(e),
        };
        match done {
            Ok(_) => Ok(redirect("/ui/pricing?done=set")),
            Err(e) if e.status == 422 => {
                let listing = Req {
                    query: None,
                    ..req.clone()
                };
                self.pricing_page(&listing, viewer, Some(("error", e.message)))
                    .await
            }
            Err(e) => Err(e),
        }
    }

    /// `POST /ui/pricing/delete`
    pub(crate) async fn ui_delete_price(
        &self,
        req: &Req,
        viewer: &Viewer,
        form: &Form,
    ) -> Result<Response<Vec<u8>>, ApiError> {
        let pattern = form
            .get("pattern")
            .ok_or_else(|| ApiError::invalid("which pattern?"))?;
        self.delete_price_as(req, &viewer.caller, pattern).await?;
        Ok(redirect("/ui/pricing?done=deleted"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_per_million() {
        assert_eq!(per_million(150), "0.150");
        assert_eq!(per_million(15_000), "15.000");
        assert_eq!(per_million(0), "0.000");
    }
}
