//! Tollgate's pluggable filter phases.
//!
//! A [`Filter`] has one method per proxy phase, each a no-op by default, and a
//! [`FilterChain`] runs an ordered list of them. The proxy in the `tollgate` crate drives
//! the chain from Pingora's `ProxyHttp` phases (and from its own large-body transport),
//! so the filter logic exists once whatever the transport. Filters reach the outside
//! world only through traits declared here ([`KeyLookup`]), so this crate tests without a
//! socket or a database.

pub mod attempts;
pub mod auth;
pub mod body;
pub mod circuit;
pub mod clock;
pub mod context;
pub mod endpoint;
pub mod error;
pub mod head;
pub mod headers;
pub mod limits;
pub mod live;
pub mod metering;
pub mod model_name;
pub mod pattern;
pub mod providers;
pub mod router;
pub mod routing;
pub mod secret;
pub mod translate;
pub mod upstream;
pub mod usage;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use pingora_http::{RequestHeader, ResponseHeader};

pub use context::{KeyLookup, Principal, ProviderKeys, RequestCtx, Role};
pub use endpoint::Endpoint;
pub use error::GatewayError;
pub use providers::{Dialect, ProviderKind};
pub use secret::Secret;

/// One pluggable step of request processing.
///
/// Every method has a default that does nothing, so a filter implements only the phases
/// it cares about. Filters see our own [`RequestCtx`] and Pingora's header types, never a
/// `Session`, so they run the same under either transport and in unit tests.
#[async_trait]
pub trait Filter: Send + Sync {
    /// A short name for logs.
    fn name(&self) -> &'static str;

    /// Which of the request phases this filter implements. The chain calls a filter
    /// only in those: each call of an async trait method allocates its future, even a
    /// default that does nothing. Default: all of them (always correct, only slower).
    fn phases(&self) -> Phases {
        Phases::ALL
    }

    /// Fires once the client's request header has been read, before its body is: the place
    /// to refuse a caller cheaply (authentication). `Err` stops the chain and the proxy
    /// answers with that error in the client's dialect. Default: `Ok(())`.
    async fn on_request_header(
        &self,
        _req: &RequestHeader,
        _ctx: &mut RequestCtx,
    ) -> Result<(), GatewayError> {
        Ok(())
    }

    /// Fires once the client's request header and body have been read and the body's
    /// `model` parsed into `ctx`, before anything is sent upstream. `Err` stops the chain
    /// and the proxy answers with that error in the client's dialect. Default: `Ok(())`.
    async fn on_request(
        &self,
        _req: &RequestHeader,
        _ctx: &mut RequestCtx,
    ) -> Result<(), GatewayError> {
        Ok(())
    }

    /// `on_request` for a filter that needs no I/O there (routing, scopes, body edits):
    /// it runs at the filter's place in the chain, between the async ones, without a
    /// future to allocate. Default: `Ok(())`.
    fn on_request_sync(
        &self,
        _req: &RequestHeader,
        _ctx: &mut RequestCtx,
    ) -> Result<(), GatewayError> {
        Ok(())
    }

    /// Fires on the header about to go upstream (a copy of the client's), once per
    /// attempt. Filters edit it in place: credentials, allow-list, Host. `Err` aborts the
    /// attempt. Default: leaves the header unchanged.
    fn on_upstream_request(
        &self,
        _upstream: &mut RequestHeader,
        _ctx: &mut RequestCtx,
    ) -> Result<(), GatewayError> {
        Ok(())
    }

    /// Fires on the upstream's response header before it goes to the client. Default:
    /// leaves it unchanged.
    fn on_response(
        &self,
        _resp: &mut ResponseHeader,
        _ctx: &mut RequestCtx,
    ) -> Result<(), GatewayError> {
        Ok(())
    }

    /// Fires for every response body chunk on its way to the client (synchronous: no I/O).
    /// Filters observe the bytes; they never change them. `end_of_stream` is true on the
    /// last call. The chunk is the proxy's own (a filter may keep a reference to it
    /// instead of a copy). Default: nothing.
    fn on_response_body(&self, _chunk: &Bytes, _end_of_stream: bool, _ctx: &mut RequestCtx) {}

    /// Fires exactly once when the request is over, whatever the outcome. Default: nothing.
    fn on_done(&self, _ctx: &mut RequestCtx) {}
}

/// The request phases a filter takes part in ([`Filter::phases`]): the two async ones
/// and the synchronous form of `on_request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Phases {
    pub request_header: bool,
    pub request: bool,
    pub request_sync: bool,
}

impl Phases {
    pub const ALL: Phases = Phases {
        request_header: true,
        request: true,
        request_sync: true,
    };
    pub const REQUEST_HEADER: Phases = Phases {
        request_header: true,
        request: false,
        request_sync: false,
    };
    pub const REQUEST: Phases = Phases {
        request_header: false,
        request: true,
        request_sync: false,
    };
    pub const REQUEST_SYNC: Phases = Phases {
        request_header: false,
        request: false,
        request_sync: true,
    };
    pub const NONE: Phases = Phases {
        request_header: false,
        request: false,
        request_sync: false,
    };
}

/// One filter's part in the request phase: its async `on_request`, its synchronous one,
/// or both (in that order).
#[derive(Clone)]
struct RequestStep {
    filter: Arc<dyn Filter>,
    phases: Phases,
}

/// An ordered list of filters, built once at start-up and shared by every request.
#[derive(Clone, Default)]
pub struct FilterChain {
    filters: Vec<Arc<dyn Filter>>,
    /// The filters taking part in `on_request_header` and `on_request`, in order.
    on_request_header: Vec<Arc<dyn Filter>>,
    on_request: Vec<RequestStep>,
}

impl std::fmt::Debug for FilterChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl FilterChain {
    pub fn new(filters: Vec<Arc<dyn Filter>>) -> Self {
        let on_request_header = filters
            .iter()
            .filter(|f| f.phases().request_header)
            .cloned()
            .collect();
        let on_request = filters
            .iter()
            .map(|f| RequestStep {
                filter: f.clone(),
                phases: f.phases(),
            })
            .filter(|s| s.phases.request || s.phases.request_sync)
            .collect();
        Self {
            on_request_header,
            on_request,
            filters,
        }
    }

    /// The names of the filters, in order (for the start-up log).
    pub fn names(&self) -> Vec<&'static str> {
        self.filters.iter().map(|f| f.name()).collect()
    }

    /// Runs `on_request_header` in order, stopping at the first error.
    pub async fn on_request_header(
        &self,
        req: &RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<(), GatewayError> {
        for f in &self.on_request_header {
            f.on_request_header(req, ctx).await?;
        }
        Ok(())
    }

    /// Runs `on_request` and `on_request_sync` in order, stopping at the first error.
    pub async fn on_request(
        &self,
        req: &RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<(), GatewayError> {
        for step in &self.on_request {
            if step.phases.request {
                step.filter.on_request(req, ctx).await?;
            }
            if step.phases.request_sync {
                step.filter.on_request_sync(req, ctx)?;
            }
        }
        Ok(())
    }

    /// Runs `on_upstream_request` in order, stopping at the first error.
    pub fn on_upstream_request(
        &self,
        upstream: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<(), GatewayError> {
        for f in &self.filters {
            f.on_upstream_request(upstream, ctx)?;
        }
        Ok(())
    }

    /// Runs `on_response` in order, stopping at the first error.
    pub fn on_response(
        &self,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<(), GatewayError> {
        for f in &self.filters {
            f.on_response(resp, ctx)?;
        }
        Ok(())
    }

    /// Shows a body chunk to every filter.
    pub fn on_response_body(&self, chunk: &Bytes, end_of_stream: bool, ctx: &mut RequestCtx) {
        for f in &self.filters {
            f.on_response_body(chunk, end_of_stream, ctx);
        }
    }

    /// Runs `on_done` on every filter, once per request: later calls do nothing.
    pub fn on_done(&self, ctx: &mut RequestCtx) {
        if ctx.done {
            return;
        }
        ctx.done = true;
        for f in &self.filters {
            f.on_done(ctx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counting {
        calls: Arc<AtomicUsize>,
        fail: bool,
    }

    /// Fails in both async phases but declares that it takes part in neither.
    struct Absent;

    #[async_trait]
    impl Filter for Absent {
        fn name(&self) -> &'static str {
            "absent"
        }
        fn phases(&self) -> Phases {
            Phases::NONE
        }
        async fn on_request_header(
            &self,
            _: &RequestHeader,
            _: &mut RequestCtx,
        ) -> Result<(), GatewayError> {
            Err(GatewayError::MissingKey)
        }
        async fn on_request(
            &self,
            _: &RequestHeader,
            _: &mut RequestCtx,
        ) -> Result<(), GatewayError> {
            Err(GatewayError::MissingModel)
        }
    }

    #[tokio::test]
    async fn chain_calls_a_filter_only_in_the_phases_it_declares() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counting = Arc::new(Counting {
            calls: calls.clone(),
            fail: false,
        });
        let chain = FilterChain::new(vec![Arc::new(Absent), counting]);
        let Ok(req) = RequestHeader::build("POST", b"/v1/chat/completions", None) else {
            panic!("header")
        };
        let mut ctx = RequestCtx::new("rid".into());
        assert!(chain.on_request_header(&req, &mut ctx).await.is_ok());
        assert!(chain.on_request(&req, &mut ctx).await.is_ok());
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "the declared filter still runs"
        );
        let all = FilterChain::new(vec![Arc::new(Counting { calls, fail: true })]);
        assert!(all.on_request_header(&req, &mut ctx).await.is_ok());
        assert!(
            all.on_request(&req, &mut ctx).await.is_err(),
            "default: both phases"
        );
    }

    #[async_trait]
    impl Filter for Counting {
        fn name(&self) -> &'static str {
            "counting"
        }
        async fn on_request(
            &self,
            _: &RequestHeader,
            _: &mut RequestCtx,
        ) -> Result<(), GatewayError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.fail {
                return Err(GatewayError::MissingModel);
            }
            Ok(())
        }
        fn on_done(&self, _: &mut RequestCtx) {
            self.calls.fetch_add(100, Ordering::SeqCst);
        }
    }

    /// The start-up log and a context's debug print name the filters in order.
    #[test]
    fn chain_names_its_filters_in_order() {
        let calls = Arc::new(AtomicUsize::new(0));
        let chain = FilterChain::new(vec![
            Arc::new(Absent),
            Arc::new(Counting { calls, fail: false }),
        ]);
        assert_eq!(chain.names(), ["absent", "counting"]);
        assert_eq!(format!("{chain:?}"), r#"["absent", "counting"]"#);
    }

    #[test]
    fn a_context_dropped_unfinished_runs_on_done_once() {
        let calls = Arc::new(AtomicUsize::new(0));
        let chain = Arc::new(FilterChain::new(vec![Arc::new(Counting {
            calls: calls.clone(),
            fail: false,
        })]));
        let mut ctx = RequestCtx::new("rid".into());
        ctx.finish_on_drop = Some(chain.clone());
        drop(ctx);
        assert_eq!(calls.load(Ordering::SeqCst), 100, "on_done ran on the drop");
        let mut ctx = RequestCtx::new("rid".into());
        ctx.finish_on_drop = Some(chain.clone());
        chain.on_done(&mut ctx);
        drop(ctx);
        assert_eq!(
            calls.load(Ordering::SeqCst),
            200,
            "and not again after it ran"
        );
    }

    #[tokio::test]
    async fn chain_stops_at_first_error_and_done_runs_once() {
        let calls = Arc::new(AtomicUsize::new(0));
        let chain = FilterChain::new(vec![
            Arc::new(Counting {
                calls: calls.clone(),
                fail: true,
            }),
            Arc::new(Counting {
                calls: calls.clone(),
                fail: false,
            }),
        ]);
        let req = RequestHeader::build("POST", b"/v1/chat/completions", None)
            .map_err(|_| ())
            .ok();
        let Some(req) = req else { panic!("header") };
        let mut ctx = RequestCtx::new("rid".into());
        let r = chain.on_request(&req, &mut ctx).await;
        assert!(matches!(r, Err(GatewayError::MissingModel)));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        chain.on_done(&mut ctx);
        chain.on_done(&mut ctx);
        assert_eq!(calls.load(Ordering::SeqCst), 201);
    }

    /// Logs every phase it sees as `name:phase`; fails the phases listed in `fail`.
    struct Logging {
        name: &'static str,
        log: Arc<std::sync::Mutex<Vec<String>>>,
        fail: &'static [&'static str],
    }

    impl Logging {
        fn note(&self, phase: &str) -> Result<(), GatewayError> {
            if let Ok(mut l) = self.log.lock() {
                l.push(format!("{}:{phase}", self.name));
            }
            match self.fail.contains(&phase) {
                true => Err(GatewayError::Internal(format!("{} {phase}", self.name))),
                false => Ok(()),
            }
        }
    }

    #[async_trait]
    impl Filter for Logging {
        fn name(&self) -> &'static str {
            self.name
        }
        async fn on_request_header(
            &self,
            _: &RequestHeader,
            _: &mut RequestCtx,
        ) -> Result<(), GatewayError> {
            self.note("header")
        }
        fn on_upstream_request(
            &self,
            _: &mut RequestHeader,
            _: &mut RequestCtx,
        ) -> Result<(), GatewayError> {
            self.note("upstream")
        }
        fn on_response(
            &self,
            _: &mut ResponseHeader,
            _: &mut RequestCtx,
        ) -> Result<(), GatewayError> {
            self.note("response")
        }
        fn on_response_body(&self, chunk: &Bytes, end: bool, _: &mut RequestCtx) {
            let _ = self.note(&format!("body {} {end}", chunk.len()));
        }
        fn on_done(&self, _: &mut RequestCtx) {
            let _ = self.note("done");
        }
    }

    /// Takes part in the request phase as `phases` says, noting each call in `log`.
    struct Stepping {
        log: Logging,
        phases: Phases,
    }

    #[async_trait]
    impl Filter for Stepping {
        fn name(&self) -> &'static str {
            self.log.name
        }
        fn phases(&self) -> Phases {
            self.phases
        }
        async fn on_request(
            &self,
            _: &RequestHeader,
            _: &mut RequestCtx,
        ) -> Result<(), GatewayError> {
            self.log.note("request")
        }
        fn on_request_sync(
            &self,
            _: &RequestHeader,
            _: &mut RequestCtx,
        ) -> Result<(), GatewayError> {
            self.log.note("sync")
        }
    }

    /// The synchronous steps run at their filters' places between the async ones, only
    /// for the filters that declare them, and an error in one stops the chain there.
    #[tokio::test]
    async fn request_steps_run_in_chain_order_sync_or_async_as_declared() {
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let step = |name, phases, fail| -> Arc<dyn Filter> {
            Arc::new(Stepping {
                log: Logging {
                    name,
                    log: log.clone(),
                    fail,
                },
                phases,
            })
        };
        let Ok(req) = RequestHeader::build("POST", b"/v1/x", None) else {
            panic!("header")
        };
        let mut ctx = RequestCtx::new("rid".into());
        let chain = FilterChain::new(vec![
            step("a", Phases::REQUEST, &[]),
            step("b", Phases::REQUEST_SYNC, &[]),
            step("c", Phases::NONE, &[]),
            step("d", Phases::ALL, &[]),
            step("e", Phases::REQUEST_HEADER, &[]),
        ]);
        assert_eq!(chain.on_request(&req, &mut ctx).await, Ok(()));
        let got = log.lock().map(|l| l.clone()).unwrap_or_default();
        assert_eq!(got, ["a:request", "b:sync", "d:request", "d:sync"]);

        log.lock().map(|mut l| l.clear()).unwrap_or_default();
        let chain = FilterChain::new(vec![
            step("a", Phases::REQUEST_SYNC, &[]),
            step("b", Phases::REQUEST_SYNC, &["sync"]),
            step("c", Phases::REQUEST, &[]),
        ]);
        let e = chain.on_request(&req, &mut ctx).await;
        assert_eq!(e, Err(GatewayError::Internal("b sync".into())));
        let got = log.lock().map(|l| l.clone()).unwrap_or_default();
        assert_eq!(got, ["a:sync", "b:sync"]);
    }

    #[tokio::test]
    async fn every_phase_runs_in_order_and_the_fallible_ones_stop_at_an_error() {
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let chain = FilterChain::new(vec![
            Arc::new(Logging {
                name: "a",
                log: log.clone(),
                fail: &["upstream"],
            }),
            Arc::new(Logging {
                name: "b",
                log: log.clone(),
                fail: &["header", "response"],
            }),
            Arc::new(Logging {
                name: "c",
                log: log.clone(),
                fail: &[],
            }),
        ]);
        assert_eq!(chain.names(), ["a", "b", "c"]);
        let Ok(mut req) = RequestHeader::build("POST", b"/v1/x", None) else {
            panic!("header")
        };
        let Ok(mut resp) = ResponseHeader::build(200, None) else {
            panic!("header")
        };
        let mut ctx = RequestCtx::new("rid".into());
        let e = chain.on_request_header(&req, &mut ctx).await;
        assert_eq!(e, Err(GatewayError::Internal("b header".into())));
        let e = chain.on_upstream_request(&mut req, &mut ctx);
        assert_eq!(e, Err(GatewayError::Internal("a upstream".into())));
        let e = chain.on_response(&mut resp, &mut ctx);
        assert_eq!(e, Err(GatewayError::Internal("b response".into())));
        chain.on_response_body(&Bytes::from_static(b"xyz"), true, &mut ctx);
        chain.on_done(&mut ctx);
        chain.on_done(&mut ctx);
        let got = log.lock().map(|l| l.clone()).unwrap_or_default();
        assert_eq!(
            got,
            [
                "a:header",
                "b:header",
                "a:upstream",
                "a:response",
                "b:response",
                "a:body 3 true",
                "b:body 3 true",
                "c:body 3 true",
                "a:done",
                "b:done",
                "c:done",
            ]
        );
        let empty = FilterChain::default();
        assert!(empty.names().is_empty());
        assert_eq!(empty.on_upstream_request(&mut req, &mut ctx), Ok(()));
        assert_eq!(empty.on_response(&mut resp, &mut ctx), Ok(()));
        // A chain that passes runs every filter's phase.
        let log2 = Arc::new(std::sync::Mutex::new(Vec::new()));
        let ok = FilterChain::new(vec![
            Arc::new(Logging {
                name: "x",
                log: log2.clone(),
                fail: &[],
            }),
            Arc::new(Logging {
                name: "y",
                log: log2.clone(),
                fail: &[],
            }),
        ]);
        assert_eq!(ok.on_request_header(&req, &mut ctx).await, Ok(()));
        assert_eq!(ok.on_upstream_request(&mut req, &mut ctx), Ok(()));
        assert_eq!(ok.on_response(&mut resp, &mut ctx), Ok(()));
        let got = log2.lock().map(|l| l.len()).unwrap_or_default();
        assert_eq!(got, 6);
    }
}
