//! `/ui/pricing` (admins): the effective price table (input, output, cache read and
//! cache write per million tokens, and where each row comes from), the form that sets
//! an override, and the models seen in the last 30 days of traffic that no price
//! matches, each with a one-click "Set price" that fills the form. Overrides go through
//! [`super::pending`] until the price-overrides branch is merged; until then the table
//! is the YAML `pricing` table (source "config").

use http::Response;
use maud::{html, Markup};
use tollgate_filters::clock::system_clock;
use tollgate_filters::pattern::ModelPattern;
use tollgate_filters::usage::Price;

use super::http::{encode, html, redirect, Form};
use super::layout::{csrf_field, flash, page, Nav};
use super::pending::{Feature, PriceEdit};
use super::viewer::Viewer;
use crate::admin::{blocking, AdminApp, ApiError, Req};
use crate::store::DayRange;

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

fn edit_form(viewer: &Viewer, pattern: &str, available: bool) -> Markup {
    html! {
        h2 #set-price { "Set a price" }
        @if !available { (flash("note", "Price overrides are not in this build yet: prices come from the config's pricing table (edit it, then tollgate reload).")) }
        form.stack method="post" action="/ui/pricing" {
            (csrf_field(viewer))
            fieldset disabled[!available] {
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
            (edit_form(viewer, &pattern, super::pending::available(Feature::Prices)))
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
        let edit = PriceEdit {
            pattern: form.get("pattern").unwrap_or("").to_owned(),
            input: form.get("input").unwrap_or("").to_owned(),
            output: form.get("output").unwrap_or("").to_owned(),
            cache_read: form.get("cache_read").map(str::to_owned),
            cache_write: form.get("cache_write").map(str::to_owned),
        };
        match self
            .set_price_as(req, &viewer.caller, &edit)
            .await
            .map_err(ApiError::from)
        {
            Ok(()) => Ok(redirect("/ui/pricing?done=set")),
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
