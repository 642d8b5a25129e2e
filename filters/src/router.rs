//! Model routing: aliases first, then the first route whose pattern matches.

use std::collections::HashMap;
use std::sync::Arc;

use crate::context::RouteDecision;
use crate::error::GatewayError;
use crate::pattern::ModelPattern;
use crate::upstream::UpstreamTarget;

/// One route: model patterns and the upstreams that serve them, in fallback order.
#[derive(Debug, Clone)]
pub struct Route {
    pub models: Vec<ModelPattern>,
    pub chain: Vec<Arc<UpstreamTarget>>,
}

/// Aliases and routes, built from config once.
#[derive(Debug, Clone, Default)]
pub struct Router {
    aliases: HashMap<String, String>,
    routes: Vec<Route>,
}

impl Router {
    pub fn new(aliases: HashMap<String, String>, routes: Vec<Route>) -> Self {
        Router { aliases, routes }
    }

    /// The real model name for a client-facing one.
    pub fn unalias<'a>(&'a self, model: &'a str) -> &'a str {
        self.aliases.get(model).map(String::as_str).unwrap_or(model)
    }

    /// Resolves a requested model to the served name and its upstream chain.
    pub fn resolve(&self, requested: &str) -> Result<RouteDecision, GatewayError> {
        let served = self.unalias(requested);
        self.routes
            .iter()
            .find(|r| r.models.iter().any(|p| p.matches(served)))
            .map(|r| RouteDecision {
                served_model: served.to_owned(),
                chain: r.chain.clone(),
            })
            .ok_or_else(|| GatewayError::UnknownModel(requested.to_owned()))
    }

    /// Every upstream some route uses, once each.
    pub fn upstreams(&self) -> Vec<Arc<UpstreamTarget>> {
        let mut out: Vec<Arc<UpstreamTarget>> = Vec::new();
        for u in self.routes.iter().flat_map(|r| r.chain.iter()) {
            if !out.iter().any(|o| Arc::ptr_eq(o, u)) {
                out.push(u.clone());
            }
        }
        out
    }

    /// How many routes there are.
    pub fn route_count(&self) -> usize {
        self.routes.len()
    }

    /// What `GET /v1/models` lists: the aliases and the wildcard-free route names, sorted
    /// and without duplicates.
    pub fn listed_models(&self) -> Vec<String> {
        let mut out: Vec<String> = self.aliases.keys().cloned().collect();
        for r in &self.routes {
            out.extend(r.models.iter().filter_map(|p| p.exact().map(str::to_owned)));
        }
        out.sort();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::{ProviderKind, UpstreamSpec};

    fn up(name: &str) -> Arc<UpstreamTarget> {
        Arc::new(UpstreamTarget::new(UpstreamSpec {
            name: name.into(),
            kind: ProviderKind::OpenAi,
            host: "h".into(),
            ..UpstreamSpec::default()
        }))
    }

    #[test]
    fn aliases_then_first_matching_route() {
        let r = Router::new(
            HashMap::from([("fast".to_owned(), "gpt-4o-mini".to_owned())]),
            vec![
                Route {
                    models: vec![ModelPattern::parse("gpt-4o-mini")],
                    chain: vec![up("a")],
                },
                Route {
                    models: vec![ModelPattern::parse("gpt-*")],
                    chain: vec![up("b")],
                },
            ],
        );
        let d = r.resolve("fast").map_err(|e| e.to_string());
        let d = d
            .as_ref()
            .map(|d| (d.served_model.as_str(), d.chain[0].name.as_str()));
        assert_eq!(d, Ok(("gpt-4o-mini", "a")));
        let d = r.resolve("gpt-4.1").map(|d| d.chain[0].name.clone());
        assert_eq!(d, Ok("b".to_owned()));
        assert_eq!(
            r.resolve("llama").err(),
            Some(GatewayError::UnknownModel("llama".into()))
        );
        assert_eq!(r.listed_models(), ["fast", "gpt-4o-mini"]);
    }

    #[test]
    fn upstreams_are_listed_once_each_and_routes_counted() {
        let (a, b) = (up("a"), up("b"));
        let r = Router::new(
            HashMap::from([("z-alias".to_owned(), "m1".to_owned())]),
            vec![
                Route {
                    models: vec![ModelPattern::parse("m1"), ModelPattern::parse("x-*")],
                    chain: vec![a.clone(), b.clone()],
                },
                Route {
                    models: vec![ModelPattern::parse("m1"), ModelPattern::parse("a-model")],
                    chain: vec![b.clone(), up("a")],
                },
            ],
        );
        let names: Vec<String> = r.upstreams().iter().map(|u| u.name.clone()).collect();
        assert_eq!(names, ["a", "b", "a"], "the same name twice: two upstreams");
        assert_eq!(r.route_count(), 2);
        assert_eq!(r.listed_models(), ["a-model", "m1", "z-alias"]);
        assert_eq!(r.unalias("z-alias"), "m1");
        assert_eq!(r.unalias("m1"), "m1");
        let d = r
            .resolve("z-alias")
            .map(|d| (d.served_model, d.chain.len()));
        assert_eq!(d, Ok(("m1".to_owned(), 2)));
        assert_eq!(Router::default().route_count(), 0);
        assert!(Router::default().upstreams().is_empty());
    }
}
