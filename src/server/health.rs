//! Active health checks of upstreams that configure one (`upstreams[].health_check`):
//! a background service sends `GET {base path}{path}` to each on its interval, with
//! Pingora's `HttpHealthCheck`, and marks the upstream down after
//! [`FAILURES_TO_DOWN`] failures in a row, up again after one success. Routing skips
//! an upstream that is down while its chain has another. The checks follow reloads:
//! each round looks at the upstreams of the routes in force.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::lb::health_check::{HealthCheck, HttpHealthCheck};
use pingora::lb::Backend;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::time::Instant;
use tollgate_filters::live::Live;
use tollgate_filters::router::Router;
use tollgate_filters::upstream::{HealthCheckSpec, UpstreamTarget};

use crate::proxy::dns::Resolver;

/// Consecutive failed checks that mark an upstream down: one lost packet is not an
/// outage.
pub const FAILURES_TO_DOWN: u32 = 2;

/// How often the service looks for checks that are due, while some upstream has one.
const TICK: Duration = Duration::from_millis(250);
/// How often it looks for a check added by a reload, while none is configured.
const IDLE_TICK: Duration = Duration::from_secs(5);

/// The background service.
pub struct HealthChecker {
    pub router: Arc<Live<Router>>,
}

/// What the service remembers about one upstream between checks.
struct Track {
    next_at: Instant,
    failures: u32,
}

#[async_trait]
impl BackgroundService for HealthChecker {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let resolver = Arc::new(Resolver::default());
        let mut tracks: HashMap<String, Track> = HashMap::new();
        let mut pause = Duration::ZERO;
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(pause) => {}
            }
            let now = Instant::now();
            let checked: Vec<Arc<UpstreamTarget>> = self
                .router
                .load()
                .upstreams()
                .into_iter()
                .filter(|u| u.health_check.is_some())
                .collect();
            // Without checks the service stays (nearly) asleep: no wake-ups on the
            // proxy's core for nothing.
            pause = if checked.is_empty() { IDLE_TICK } else { TICK };
            let due: Vec<(Arc<UpstreamTarget>, HealthCheckSpec)> = checked
                .into_iter()
                .filter_map(|u| {
                    let spec = u.health_check.clone()?;
                    let t = tracks.entry(u.name.clone()).or_insert(Track {
                        next_at: now,
                        failures: 0,
                    });
                    (t.next_at <= now).then(|| {
                        t.next_at = now + spec.interval;
                        (u, spec)
                    })
                })
                .collect();
            // Every due upstream is checked at once: a slow one does not delay the rest.
            let mut checks = tokio::task::JoinSet::new();
            for (u, spec) in due {
                let resolver = resolver.clone();
                checks.spawn(async move {
                    let outcome = check(&resolver, &u, &spec).await;
                    (u, outcome)
                });
            }
            while let Some(done) = checks.join_next().await {
                let Ok((u, outcome)) = done else { continue };
                let Some(t) = tracks.get_mut(&u.name) else {
                    continue;
                };
                match outcome {
                    Ok(()) => {
                        t.failures = 0;
                        if u.set_healthy(true) {
                            log::info!(
                                "upstream {}: health check passes; back in rotation",
                                u.name
                            );
                        }
                    }
                    Err(why) => {
                        t.failures = t.failures.saturating_add(1);
                        if t.failures >= FAILURES_TO_DOWN && u.set_healthy(false) {
                            log::warn!(
                                "upstream {}: down after {} failed health checks ({why}); skipped while its routes have another",
                                u.name,
                                t.failures
                            );
                        } else if t.failures < FAILURES_TO_DOWN {
                            log::info!("upstream {}: health check failed ({why})", u.name);
                        }
                    }
                }
                crate::metrics::upstream_healthy(&u.name, u.is_healthy());
            }
        }
    }
}

/// One check: any answer below 500 within the timeout passes. No provider key is sent.
async fn check(
    resolver: &Resolver,
    u: &UpstreamTarget,
    spec: &HealthCheckSpec,
) -> Result<(), String> {
    let addr = resolver
        .resolve(&u.host, u.port, spec.timeout)
        .await
        .map_err(|e| e.to_string())?;
    let backend = Backend::new(&addr.to_string()).map_err(|e| e.to_string())?;
    let mut hc = HttpHealthCheck::new(&u.host_header, u.tls);
    if u.tls {
        hc.peer_template.sni = u.host.clone();
    }
    hc.peer_template.options.connection_timeout = Some(spec.timeout);
    hc.peer_template.options.read_timeout = Some(spec.timeout);
    hc.peer_template.options.write_timeout = Some(spec.timeout);
    let path = format!("{}{}", u.base_path, spec.path);
    hc.req.set_uri(
        path.parse()
            .map_err(|_| format!("invalid health check path {path}"))?,
    );
    hc.validator = Some(Box::new(|resp| {
        if resp.status.as_u16() < 500 {
            Ok(())
        } else {
            pingora::Error::e_explain(
                pingora::ErrorType::CustomCode("health check status", resp.status.as_u16()),
                "5xx answer",
            )
        }
    }));
    match tokio::time::timeout(spec.timeout * 2, hc.check(&backend)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {:?}", spec.timeout)),
    }
}
