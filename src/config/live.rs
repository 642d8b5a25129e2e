//! The parts of the config that a reload (`SIGHUP`, `tollgate reload`) replaces while
//! serving, behind their swap points.

use std::sync::Arc;

use tollgate_filters::live::Live;
use tollgate_filters::router::Router;
use tollgate_filters::usage::PriceTable;

use super::Runtime;

/// The parts of the config that `SIGHUP` / `tollgate reload` replace while serving.
#[derive(Clone)]
pub struct LiveConfig {
    pub router: Arc<Live<Router>>,
    pub prices: Arc<Live<PriceTable>>,
}

impl LiveConfig {
    pub fn new(rt: &Runtime) -> Self {
        LiveConfig {
            router: Arc::new(Live::new(Router::clone(&rt.router))),
            prices: Arc::new(Live::new(PriceTable::clone(&rt.prices))),
        }
    }

    /// Puts a newly loaded config's routes, upstreams and prices in place.
    pub fn replace(&self, rt: &Runtime) {
        self.router.store(rt.router.clone());
        self.prices.store(rt.prices.clone());
    }
}
