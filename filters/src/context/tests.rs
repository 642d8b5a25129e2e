//! The request context's own logic: role and budget-period names both ways, which
//! upstream of the chain the context points at, and which body goes upstream.

use super::*;
use crate::upstream::UpstreamSpec;

#[test]
fn roles_and_budget_periods_read_back_their_own_names() {
    for role in [Role::Admin, Role::Member] {
        assert_eq!(Role::parse(role.as_str()), Some(role));
    }
    assert_eq!(Role::Admin.as_str(), "admin");
    assert_eq!(Role::Member.as_str(), "member");
    assert_eq!(Role::parse("Admin"), None, "names are case-sensitive");
    assert_eq!(Role::parse(""), None);
    for period in [BudgetPeriod::Day, BudgetPeriod::Month, BudgetPeriod::Total] {
        assert_eq!(BudgetPeriod::parse(period.as_str()), Some(period));
    }
    assert_eq!(
        [
            BudgetPeriod::Day.as_str(),
            BudgetPeriod::Month.as_str(),
            BudgetPeriod::Total.as_str()
        ],
        ["day", "month", "total"]
    );
    assert_eq!(BudgetPeriod::parse("week"), None);
}

fn up(name: &str) -> Arc<UpstreamTarget> {
    Arc::new(UpstreamTarget::new(UpstreamSpec {
        name: name.into(),
        keys: vec![Secret::new(format!("{name}-key"))],
        ..UpstreamSpec::default()
    }))
}

fn routed(chain: Vec<Arc<UpstreamTarget>>) -> RequestCtx {
    let mut ctx = RequestCtx::new("rid".into());
    ctx.route = Some(RouteDecision {
        served_model: "m".into(),
        chain,
    });
    ctx
}

#[test]
fn the_next_allowed_upstream_skips_those_that_would_not_serve() {
    let chain = vec![up("a"), up("b"), up("c"), up("d")];
    chain[0].set_healthy(false);
    chain[1].set_healthy(false);
    let ctx = routed(chain.clone());
    assert_eq!(ctx.next_allowed(0), Some(2));
    assert_eq!(ctx.next_allowed(3), Some(3));
    chain[3].set_healthy(false);
    assert_eq!(ctx.next_allowed(3), None, "nothing at or after d serves");
    assert_eq!(ctx.next_allowed(4), None, "past the end");
    assert_eq!(
        RequestCtx::new("r".into()).next_allowed(0),
        None,
        "no route"
    );
}

#[test]
fn the_current_upstream_is_the_one_the_attempts_point_at() {
    let mut ctx = routed(vec![up("a"), up("b")]);
    assert_eq!(ctx.upstream().map(|u| u.name.as_str()), Some("a"));
    ctx.attempts.start_at(1);
    assert_eq!(ctx.upstream().map(|u| u.name.as_str()), Some("b"));
    ctx.attempts.start_at(2);
    assert!(ctx.upstream().is_none(), "past the chain's end");
    assert!(RequestCtx::new("r".into()).upstream().is_none(), "no route");
}

#[test]
fn the_rewritten_body_goes_upstream_when_there_is_one() {
    let mut ctx = RequestCtx::new("r".into());
    assert_eq!(ctx.outgoing_body(), Bytes::new());
    ctx.body = Bytes::from_static(b"{\"model\":\"alias\"}");
    assert_eq!(ctx.outgoing_body(), ctx.body);
    ctx.upstream_body = Some(Bytes::from_static(b"{\"model\":\"served\"}"));
    assert_eq!(&ctx.outgoing_body()[..], b"{\"model\":\"served\"}");
}

struct OnlyOwnKeys;

impl ProviderKeys for OnlyOwnKeys {
    fn key_for(&self, user_id: i64, upstream: &str) -> Option<Secret> {
        (user_id == 7).then(|| Secret::new(format!("{upstream}-7")))
    }
}

#[test]
fn a_key_store_without_shared_keys_has_none() {
    let keys = OnlyOwnKeys;
    assert_eq!(keys.shared_key_for("a"), None);
    assert_eq!(
        keys.key_for(7, "a").as_ref().map(Secret::expose),
        Some("a-7")
    );
}
