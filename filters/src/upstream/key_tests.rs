//! An upstream's `Host`, its keys by rotation position, and which of its keys can serve:
//! rests after a 429 (against the wall clock), open circuits, the health check.

use super::*;
use crate::circuit::FAILURES_TO_OPEN;

fn target(host: &str, port: u16, tls: bool, keys: &[&str]) -> UpstreamTarget {
    UpstreamTarget::new(UpstreamSpec {
        name: "up".into(),
        host: host.into(),
        port,
        tls,
        keys: keys.iter().map(|k| Secret::new(*k)).collect(),
        ..UpstreamSpec::default()
    })
}

#[test]
fn the_host_header_names_the_port_only_when_it_is_not_the_schemes() {
    let host = |h: &str, port, tls| {
        let u = target(h, port, tls, &[]);
        let value = u
            .host_value()
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        assert_eq!(value.as_deref(), Some(u.host_header.as_str()));
        u.host_header
    };
    assert_eq!(host("api.example.com", 443, true), "api.example.com");
    assert_eq!(host("api.example.com", 80, false), "api.example.com");
    assert_eq!(host("api.example.com", 80, true), "api.example.com:80");
    assert_eq!(host("api.example.com", 443, false), "api.example.com:443");
    assert_eq!(host("10.0.0.1", 8080, false), "10.0.0.1:8080");
    assert_eq!(host("::1", 8080, false), "[::1]:8080");
    assert_eq!(host("::1", 443, true), "[::1]");
    assert!(target("bad\nhost", 80, false, &[]).host_value().is_none());
}

#[test]
fn keys_and_credentials_wrap_around_their_positions() {
    let u = target("h", 80, false, &["k0", "k1", "k2"]);
    let key = |i| u.key_at(i).map(|k| k.expose().to_owned());
    assert_eq!(
        [key(0), key(1), key(2), key(3), key(7)],
        ["k0", "k1", "k2", "k0", "k1"].map(|k| Some(k.to_owned()))
    );
    let credential = |i| {
        u.credential_at(i)
            .flatten()
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(credential(4).as_deref(), Some("Bearer k1"));
    assert_eq!(credential(2).as_deref(), Some("Bearer k2"));
    assert_eq!(u.slots().len(), 3);
    assert!(std::ptr::eq(u.slot(4), &u.slots()[1]));
    assert!(std::ptr::eq(u.slot(2), &u.slots()[2]));
    // Without keys: no key, no credential, and one slot for the upstream itself.
    let bare = target("h", 80, false, &[]);
    assert!(bare.key_at(0).is_none() && bare.credential_at(3).is_none());
    assert_eq!(bare.slots().len(), 1);
    // A key that is not a header value has a position but no credential.
    let odd = target("h", 80, false, &["ok", "bad\nkey"]);
    assert!(matches!(odd.credential_at(1), Some(None)));
    assert!(matches!(odd.credential_at(2), Some(Some(_))));
}

#[test]
fn a_rest_is_over_at_its_deadline_on_the_wall_clock() {
    let slot = KeySlot::default();
    assert!(!slot.resting_at(0), "no rest");
    assert!(!slot.resting());
    slot.rest_until_ms.store(u64::MAX, Ordering::Release);
    assert!(slot.resting(), "a rest that is not over");
    slot.rest_until_ms.store(1_000, Ordering::Release);
    assert!(slot.resting_at(999));
    assert!(!slot.resting_at(1_000), "over at the deadline");
    assert!(!slot.resting_at(1_001));
    // A rest is taken from now: an hour-old deadline is long past, one a minute ahead
    // is not.
    let u = target("h", 80, false, &["k0", "k1"]);
    let now = now_ms();
    assert!(now > 1_600_000_000_000, "the wall clock, in ms");
    u.slot(0)
        .rest_until_ms
        .store(now - 3_600_000, Ordering::Release);
    assert_eq!(u.usable_key_from(0), 0);
    assert_eq!(
        u.rest_key(1, Duration::from_secs(60)),
        Duration::from_secs(60)
    );
    let until = u.slot(1).rest_until_ms.load(Ordering::Acquire);
    assert!(
        (now + 59_000..now + 61_000 + 5_000).contains(&until),
        "{until}"
    );
    // A shorter rest never cuts a longer one short.
    u.rest_key(1, Duration::from_secs(1));
    assert_eq!(u.slot(1).rest_until_ms.load(Ordering::Acquire), until);
}

fn open(circuit: &Circuit) {
    for _ in 0..FAILURES_TO_OPEN {
        circuit.on_failure();
    }
}

#[test]
fn a_key_behind_an_open_circuit_is_passed_over_like_a_resting_one() {
    let u = target("h", 80, false, &["k0", "k1", "k2"]);
    open(&u.slot(1).circuit);
    assert_eq!(u.usable_key_from(1), 2);
    assert_eq!(
        u.usable_key_from(4),
        5,
        "positions wrap, the rotation goes on"
    );
    u.rest_key(2, Duration::from_secs(30));
    assert_eq!(u.usable_key_from(1), 3, "key 0, one round on");
    assert!(u.would_serve());
    open(&u.slot(0).circuit);
    assert!(!u.would_serve(), "every key rests or is open");
    assert_eq!(u.usable_key_from(2), 2, "none usable: the one asked for");
}

#[test]
fn an_upstream_its_health_check_finds_down_would_not_serve() {
    let u = target("h", 80, false, &["k0"]);
    assert!(u.is_healthy() && u.would_serve());
    assert!(u.set_healthy(false), "a change");
    assert!(!u.set_healthy(false), "no change");
    assert!(!u.is_healthy());
    assert!(!u.would_serve(), "its keys are fine, its health is not");
    assert!(u.set_healthy(true));
    assert!(u.is_healthy() && u.would_serve());
}

#[test]
fn the_optional_parts_are_set_by_their_builders() {
    let check = HealthCheckSpec {
        path: "/v1/models".into(),
        interval: Duration::from_secs(10),
        timeout: Duration::from_secs(2),
    };
    let u = target("h", 80, false, &["k0", "k1"])
        .with_circuit_cool_down(Duration::from_secs(5))
        .with_health_check(Some(check.clone()))
        .with_max_rest(Duration::from_secs(3))
        .with_include_usage(false);
    assert!(u
        .slots()
        .iter()
        .all(|s| s.circuit.cool_down() == Duration::from_secs(5)));
    assert_eq!(u.health_check, Some(check));
    assert_eq!(u.max_rest, Duration::from_secs(3));
    assert_eq!(
        u.rest_key(0, Duration::from_secs(60)),
        Duration::from_secs(3)
    );
    assert!(!u.include_usage);
    let plain = target("h", 80, false, &["k0"]);
    assert!(plain.include_usage && plain.health_check.is_none());
    assert_eq!(plain.max_rest, DEFAULT_MAX_REST);
    assert_eq!(plain.slot(0).circuit.cool_down(), crate::circuit::COOL_DOWN);
}
