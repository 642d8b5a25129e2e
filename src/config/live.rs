//! The one place every reader of the reloadable config goes to: the proxy's filters,
//! `GET /v1/models`, the admin API, the health checks. A reload (`SIGHUP`, `tollgate
//! reload`) replaces what it holds, and each reader sees the new version from its next
//! read; nothing keeps a copy of the config it started with. The prices in force are
//! the file's with the store's overrides on top ([`super::prices`]): a reload keeps the
//! overrides, and new overrides keep the file.

use std::sync::{Arc, Mutex, PoisonError};

use tollgate_filters::live::Live;
use tollgate_filters::router::Router;
use tollgate_filters::usage::{Price, PriceTable};

use super::prices::{effective, table, PriceRow};
use super::runtime::Reloadable;

/// A handle to the config in force; clones share it.
#[derive(Clone)]
pub struct LiveConfig(Arc<Swaps>);

struct Swaps {
    /// Upstreams, routes and prices of the last reload, as one version.
    current: Live<Reloadable>,
    /// The same router and prices again, in the cells the filters crate reads
    /// (`RoutingFilter`, `MeteringFilter`): replaced together with `current`.
    router: Arc<Live<Router>>,
    prices: Arc<Live<PriceTable>>,
    /// The store's price overrides, as last read.
    overrides: Live<Vec<(String, Price)>>,
    /// The rows of `prices`, with their sources, for listing.
    price_rows: Live<Vec<PriceRow>>,
    /// Held while the prices are recomputed, so that a reload and new overrides at the
    /// same moment cannot leave a table made of the older of either.
    repricing: Mutex<()>,
}

impl LiveConfig {
    pub fn new(first: Reloadable) -> Self {
        let rows = effective(&first.pricing, &[]);
        LiveConfig(Arc::new(Swaps {
            router: Arc::new(Live::new(Router::clone(&first.router))),
            prices: Arc::new(Live::new(table(&rows))),
            overrides: Live::new(Vec::new()),
            price_rows: Live::new(rows),
            repricing: Mutex::new(()),
            current: Live::new(first),
        }))
    }

    /// The config in force: upstreams, routes and prices of one version.
    pub fn current(&self) -> Arc<Reloadable> {
        self.0.current.load()
    }

    /// The routes in force, as the routing filter, `GET /v1/models` and the health
    /// checks read them.
    pub fn router(&self) -> Arc<Live<Router>> {
        self.0.router.clone()
    }

    /// The prices in force, as the metering filter reads them.
    pub fn prices(&self) -> Arc<Live<PriceTable>> {
        self.0.prices.clone()
    }

    /// The prices in force as rows, each with its source, in the order a model is
    /// matched against them.
    pub fn price_rows(&self) -> Arc<Vec<PriceRow>> {
        self.0.price_rows.load()
    }

    /// Puts a newly loaded config's upstreams, routes and prices in place (the store's
    /// price overrides staying on top).
    pub fn replace(&self, new: Reloadable) {
        let _one = self.reprice_lock();
        self.0.router.store(new.router.clone());
        self.0.current.store(Arc::new(new));
        self.reprice();
    }

    /// Puts the store's price overrides, as just read, in force over the file's prices.
    pub fn set_price_overrides(&self, overrides: Vec<(String, Price)>) {
        let _one = self.reprice_lock();
        self.0.overrides.store(Arc::new(overrides));
        self.reprice();
    }

    fn reprice_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.0
            .repricing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Recomputes the prices from the file's and the overrides in force (called with
    /// `repricing` held).
    fn reprice(&self) {
        let rows = effective(&self.0.current.load().pricing, &self.0.overrides.load());
        self.0.prices.store(Arc::new(table(&rows)));
        self.0.price_rows.store(Arc::new(rows));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use crate::config::validate::validate;

    fn reloadable(yaml: &str) -> Reloadable {
        validate(parse(yaml, &|_| None).unwrap())
            .unwrap()
            .reloadable
    }

    #[test]
    fn every_reader_sees_a_replacement() {
        let one = "upstreams:\n  - { name: a, kind: openai, base_url: \"http://127.0.0.1:1\" }\nroutes:\n  - { models: [\"gpt-*\"], upstreams: [a] }\n";
        let two = "upstreams:\n  - { name: a, kind: openai, base_url: \"http://127.0.0.1:1\" }\n  - { name: b, kind: anthropic, base_url: \"http://127.0.0.1:2\" }\nroutes:\n  - { models: [\"gpt-*\"], upstreams: [a] }\n  - { models: [\"claude-*\"], upstreams: [b] }\npricing:\n  \"claude-*\": { input: 3, output: 15 }\n";
        let live = LiveConfig::new(reloadable(one));
        let (router, prices, copy) = (live.router(), live.prices(), live.clone());
        assert!(!live.current().has_upstream("b"));
        assert!(router.load().resolve("claude-x").is_err());
        assert!(prices.load().lookup("claude-x").is_none());

        live.replace(reloadable(two));
        assert!(copy.current().has_upstream("b"));
        assert_eq!(copy.current().upstream_names(), ["a", "b"]);
        assert!(router.load().resolve("claude-x").is_ok());
        assert!(prices.load().lookup("claude-x").is_some());
    }

    #[test]
    fn overrides_stay_on_top_of_every_reload() {
        let one = "pricing:\n  \"claude-*\": { input: 3, output: 15 }\n  \"gpt-*\": { input: 1, output: 2 }\n";
        let two = "pricing:\n  \"claude-*\": { input: 4, output: 16 }\n  \"gpt-*\": { input: 5, output: 6 }\n";
        let live = LiveConfig::new(reloadable(one));
        let prices = live.prices();
        let input = |m: &str| prices.load().lookup(m).map(|p| p.input);
        assert_eq!(
            (input("claude-x"), input("gpt-x")),
            (Some(3_000), Some(1_000))
        );
        let over = Price {
            input: 9,
            output: 9,
            cache_read: 9,
            cache_write: 9,
        };
        live.set_price_overrides(vec![("claude-*".into(), over)]);
        assert_eq!((input("claude-x"), input("gpt-x")), (Some(9), Some(1_000)));
        live.replace(reloadable(two));
        assert_eq!((input("claude-x"), input("gpt-x")), (Some(9), Some(5_000)));
        let sources: Vec<&str> = live
            .price_rows()
            .iter()
            .map(|r| r.source.as_str())
            .collect();
        assert_eq!(sources, ["store", "config"]);
        live.set_price_overrides(Vec::new());
        assert_eq!(input("claude-x"), Some(4_000));
    }
}
