//! The one place every reader of the reloadable config goes to: the proxy's filters,
//! `GET /v1/models`, the admin API, the health checks. A reload (`SIGHUP`, `tollgate
//! reload`) replaces what it holds, and each reader sees the new version from its next
//! read; nothing keeps a copy of the config it started with.

use std::sync::Arc;

use tollgate_filters::live::Live;
use tollgate_filters::router::Router;
use tollgate_filters::usage::PriceTable;

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
}

impl LiveConfig {
    pub fn new(first: Reloadable) -> Self {
        LiveConfig(Arc::new(Swaps {
            router: Arc::new(Live::new(Router::clone(&first.router))),
            prices: Arc::new(Live::new(PriceTable::clone(&first.prices))),
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

    /// Puts a newly loaded config's upstreams, routes and prices in place.
    pub fn replace(&self, new: Reloadable) {
        self.0.router.store(new.router.clone());
        self.0.prices.store(new.prices.clone());
        self.0.current.store(Arc::new(new));
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
}
