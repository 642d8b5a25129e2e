//! Carrying out the retry decision for both transports (the rules are the README's
//! "Resilience" section; the decision itself is `tollgate_filters::attempts::decide`):
//! [`settle`] decides what follows an attempt, and does in one place everything that goes
//! with it: a rate-limited key's rest, the key circuits, the failed-attempt metric and log
//! line, and the cursor's move. The transports only act on the decision it returns.

use std::time::Duration;

use tollgate_filters::attempts::{self, Decision, Outcome};
use tollgate_filters::circuit::CircuitState;
use tollgate_filters::RequestCtx;

/// Decides what follows `outcome` (see [`attempts::decide`]; `can_resend`: the request
/// can go out again) and records it: rest, circuits, metric, log, cursor.
pub fn settle(ctx: &mut RequestCtx, outcome: &Outcome, can_resend: bool) -> Decision {
    let chain = ctx
        .route
        .as_ref()
        .map(|r| r.chain.as_slice())
        .unwrap_or(&[]);
    let decision = attempts::decide(&ctx.attempts, chain, outcome, can_resend);
    if let Outcome::Answered {
        status: 429,
        retry_after: Some(wait),
    } = *outcome
    {
        rest_key(ctx, wait);
    }
    // The failed upstream's name, taken only for a failure (not on every answer).
    let failed_at = decision.metric_reason().map(|reason| {
        let from = ctx.upstream().map(|u| u.name.clone()).unwrap_or_default();
        crate::metrics::upstream_attempt_failed(&from, reason);
        from
    });
    match decision.verdict() {
        Some(true) => record_success(ctx),
        Some(false) => record_failure(ctx),
        None => {}
    }
    ctx.attempts.apply(&decision);
    let from = failed_at.unwrap_or_default();
    match decision {
        Decision::NextUpstream { reason, .. } => log::warn!(
            "request {}: upstream {from} failed ({}); trying {}",
            ctx.request_id,
            reason.as_str(),
            ctx.upstream().map(|u| u.name.as_str()).unwrap_or("-")
        ),
        Decision::GiveUp(reason) => log::warn!(
            "request {}: upstream {from} failed ({}); no upstream left",
            ctx.request_id,
            reason.as_str()
        ),
        _ => {}
    }
    decision
}

/// Counts a failure against the circuit of the key the attempt used; a failure before
/// any key was sent (connect errors, timeouts) or with a stored key is the upstream's
/// own, and counts against every key's circuit. A user's own key has no circuit.
fn record_failure(ctx: &RequestCtx) {
    let Some(up) = ctx.upstream() else {
        return;
    };
    let keys = match ctx.attempts.key_slot() {
        Some(k) => k..k + 1,
        None if ctx.attempts.own_key() => return,
        None => 0..up.slots().len(),
    };
    for k in keys {
        let circuit = &up.slot(k).circuit;
        if circuit.on_failure() {
            log::warn!(
                "upstream {} key #{k}: circuit open for {:?} after repeated failures",
                up.name,
                circuit.cool_down()
            );
            crate::metrics::circuit_open(&up.name, k, true);
        }
    }
}

/// Closes the circuit of the key the attempt used after an answer that is not a failure.
fn record_success(ctx: &RequestCtx) {
    let (Some(up), Some(k)) = (ctx.upstream(), ctx.attempts.key_slot()) else {
        return;
    };
    let circuit = &up.slot(k).circuit;
    if circuit.state() != CircuitState::Closed {
        log::info!("upstream {} key #{k}: circuit closed", up.name);
        crate::metrics::circuit_open(&up.name, k, false);
    }
    circuit.on_success();
}

/// After a 429 that asked to `wait`: the key the attempt used rests that long (capped by
/// the upstream's `max_retry_after_s`), so that requests go to its other keys or the next
/// upstream meanwhile instead of being refused again.
fn rest_key(ctx: &RequestCtx, wait: Duration) {
    let (Some(up), Some(k)) = (ctx.upstream(), ctx.attempts.key_slot()) else {
        return;
    };
    let rest = up.rest_key(k, wait);
    log::info!(
        "request {}: upstream {} key #{k} rate limited; resting it {rest:?} (retry-after {wait:?})",
        ctx.request_id,
        up.name
    );
}
