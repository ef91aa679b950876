//! The rate-limit stage's tests.

use super::*;
use crate::blocking::InPlace;
use crate::clock::ManualClock;
use crate::config::GateConfig;
use crate::gate::{Decision, Gate};
use serde_json::json;

const S: u64 = 1_000_000_000;

fn req<'a>(
    method: &'a str,
    ip: &'a str,
    headers: &'a (dyn crate::request::HeaderSource + 'a),
) -> Request<'a> {
    Request {
        method,
        path: "/a",
        query: "",
        remote_addr: Some(ip),
        headers,
    }
}

fn header<'h>(hs: &'h [Header], name: &str) -> Option<&'h str> {
    hs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
}

#[test]
fn gate_refills_at_exact_instants() {
    let clock = Arc::new(ManualClock::from_secs(1_000));
    let cfg = GateConfig::from_value(&json!({
        "rate_limit": {"legacy_headers": true},
        "routes": [{"path": "/a", "name": "a", "limit": "2/second"}],
    }))
    .unwrap();
    let gate = Gate::with_clock(&cfg, clock.clone()).unwrap();
    let run = |g: &Gate| match g.check(&req("GET", "192.0.2.1", &[])) {
        Decision::Forward(f) => (0, f.headers),
        Decision::Respond(r) => (r.status, r.headers),
    };
    let (s, h) = run(&gate);
    assert_eq!(s, 0);
    assert_eq!(header(&h, "ratelimit"), Some("\"a\";r=1;t=1"));
    assert_eq!(header(&h, "x-ratelimit-reset"), Some("1001"));
    assert_eq!(run(&gate).0, 0);
    let (s, h) = run(&gate);
    assert_eq!(s, 429);
    assert_eq!(header(&h, "retry-after"), Some("1"));
    assert_eq!(header(&h, "x-ratelimit-remaining"), Some("0"));
    clock.advance_nanos(S / 2 - 1);
    assert_eq!(run(&gate).0, 429, "one nanosecond early");
    clock.advance_nanos(1);
    let (s, h) = run(&gate);
    assert_eq!(s, 0);
    assert_eq!(header(&h, "ratelimit"), Some("\"a\";r=0;t=1"));
    clock.advance_nanos(10 * S);
    let (_, h) = run(&gate);
    assert_eq!(header(&h, "ratelimit"), Some("\"a\";r=1;t=1"));
}

fn stage(v: &serde_json::Value, policy: &serde_json::Value) -> (Stage, RouteLimits) {
    let mut issues = Issues::default();
    let settings = Settings::parse(v.as_object().unwrap(), &mut issues);
    let policy = super::super::settings::parse_limit(policy, "limit", &mut issues).unwrap();
    assert!(issues.is_empty());
    let clock: SharedClock = Arc::new(ManualClock::from_secs(5));
    let mut builder = StageBuilder::new(&settings, clock, None);
    let mut keys = Vec::new();
    let limits = builder.bind(&policy, "r", ("r", "routes[0]"), &mut keys, &mut issues);
    (builder.finish(&mut keys), limits)
}

fn claims(v: &serde_json::Value) -> Claims {
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn allowed(st: &Stage, l: &RouteLimits, r: &Request<'_>, c: Option<&Claims>) -> bool {
    let mut out = Vec::new();
    matches!(st.check(l, r, c, &mut out, &InPlace), Verdict::Pass { .. })
}

#[test]
fn keyed_by_subject_and_claims_with_ip_fallback() {
    let (st, l) = stage(
        &json!({}),
        &json!({"quota": "1/hour", "key": ["sub", "claim:tenant"], "exempt_subjects": ["ops"]}),
    );
    let alice = claims(&json!({"sub": "alice", "tenant": 1}));
    let alice2 = claims(&json!({"sub": "alice", "tenant": 2}));
    let r = req("GET", "192.0.2.1", &[]);
    let other_ip = req("GET", "192.0.2.2", &[]);
    assert!(allowed(&st, &l, &r, Some(&alice)));
    assert!(
        !allowed(&st, &l, &other_ip, Some(&alice)),
        "same subject, any address"
    );
    assert!(allowed(&st, &l, &r, Some(&alice2)), "another tenant");
    let ops = claims(&json!({"sub": "ops"}));
    for _ in 0..3 {
        assert!(allowed(&st, &l, &r, Some(&ops)), "exempt subject");
    }
    // No token: keyed by address, so anonymous callers are limited too.
    assert!(allowed(&st, &l, &r, None));
    assert!(!allowed(&st, &l, &r, None));
    assert!(allowed(&st, &l, &other_ip, None));
}

#[test]
fn api_key_header_slot_and_dry_run() {
    let (st, l) = stage(
        &json!({}),
        &json!({"quota": "1/hour", "key": "header:x-api-key", "dry_run": true}),
    );
    let hs = [Some("k1")];
    let r = req("GET", "192.0.2.1", &hs);
    let mut out = Vec::new();
    assert!(matches!(
        st.check(&l, &r, None, &mut out, &InPlace),
        Verdict::Pass {
            dry_run_refused: None
        }
    ));
    assert!(matches!(
        st.check(&l, &r, None, &mut out, &InPlace),
        Verdict::Pass {
            dry_run_refused: Some("r")
        }
    ));
    assert!(out.is_empty(), "dry-run limits send no headers");
}
