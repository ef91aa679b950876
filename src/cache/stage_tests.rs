//! The cache stage's tests.

use super::*;
use crate::cache::headers::etag_matches;
use crate::cache::headers::intern;
use crate::cache::store::{Entry, Lookup};
use crate::cache::ticket::Ticket;
use crate::response::Response;
use std::sync::atomic::Ordering;

/// A bare `GET path` (no query, no headers: `none` has one `None` per header slot).
fn get<'s>(
    gate: &'s crate::gate::Gate,
    none: &'s (dyn crate::request::HeaderSource + 's),
    path: &'s str,
) -> crate::gate::Decision<'s> {
    let req = Request {
        method: "GET",
        path,
        query: "",
        remote_addr: None,
        headers: none,
    };
    gate.check(&req)
}

#[test]
fn stale_while_revalidate_serves_stale_only_during_a_revalidation() {
    use crate::clock::ManualClock;
    let clock = Arc::new(ManualClock::from_secs(100));
    let store = Store::new(1 << 20, 1 << 20, Duration::from_secs(60), clock.clone());
    let now = crate::clock::Clock::now_nanos(&*clock);
    store.insert(
        "p",
        vec![],
        "k".into(),
        Entry {
            status: 200,
            headers: vec![],
            body: Arc::from(&b"x"[..]),
            etag: String::new(),
            path: "/".into(),
            tags: vec![],
            stored_at: now,
            fresh_until: now + 10_000_000_000,
            stale_until: now + 40_000_000_000,
        },
    );
    clock.advance_nanos(15_000_000_000);
    assert!(
        matches!(store.lookup("k"), Lookup::Miss),
        "first request after expiry revalidates"
    );
    assert!(store.begin_flight("k"));
    assert!(
        matches!(store.lookup("k"), Lookup::Stale(_)),
        "others get the stale entry meanwhile"
    );
    clock.advance_nanos(30_000_000_000);
    assert!(
        matches!(store.lookup("k"), Lookup::Miss),
        "past stale-while-revalidate"
    );
}

/// Freshness through the whole gate on a `ManualClock`: `s-maxage` over `max-age` over the
/// route TTL, `Age`, and stale-while-revalidate, with no sleeping.
#[test]
fn ttl_through_the_gate_on_a_manual_clock() {
    enum Out {
        Hit(Response),
        Miss(Option<Ticket>),
    }
    use crate::clock::ManualClock;
    use crate::gate::{Decision, Gate, GateOptions};
    let clock = Arc::new(ManualClock::from_secs(1_000));
    let gate = Gate::from_value_with(
        &serde_json::json!({"routes": [{"path": "/{*p}", "cache": 30}]}),
        &GateOptions {
            clock: clock.clone(),
            fetcher: None,
        },
    )
    .unwrap();
    let none: Vec<Option<&str>> = vec![None; gate.header_keys().len()];
    let check = |path: &str| -> Out {
        match get(&gate, &none, path) {
            Decision::Respond(r) => Out::Hit(r),
            Decision::Forward(f) => Out::Miss(f.cache),
        }
    };
    let store = |path: &str, cc: Option<&str>| {
        let Out::Miss(Some(ticket)) = check(path) else {
            panic!("{path}: expected a miss")
        };
        let headers = cc
            .map(|v| vec![("cache-control".to_owned(), v.to_owned())])
            .unwrap_or_default();
        assert!(ticket.store(200, headers, b"x").stored);
    };
    let age = |path: &str| -> Option<String> {
        match check(path) {
            Out::Hit(r) => r
                .headers
                .iter()
                .find(|(k, _)| *k == "age")
                .map(|(_, v)| v.clone()),
            Out::Miss(_) => None,
        }
    };
    store("/route-ttl", None);
    store("/max-age", Some("max-age=10"));
    store("/s-maxage", Some("max-age=10, s-maxage=20"));
    store("/swr", Some("max-age=10, stale-while-revalidate=30"));
    clock.advance_nanos(9_999_999_999);
    assert_eq!(age("/max-age").as_deref(), Some("9"));
    clock.advance_nanos(1);
    assert_eq!(age("/max-age"), None, "stale exactly at max-age");
    assert_eq!(age("/s-maxage").as_deref(), Some("10"));
    clock.advance_nanos(10_000_000_000);
    assert_eq!(age("/s-maxage"), None, "stale exactly at s-maxage");
    assert_eq!(age("/route-ttl").as_deref(), Some("20"));
    clock.advance_nanos(10_000_000_000);
    assert_eq!(age("/route-ttl"), None, "stale exactly at the route TTL");
    // /swr is 30 s old: stale, within stale-while-revalidate. The first request revalidates;
    // while it is out, others get the stale entry.
    let Out::Miss(Some(leader)) = check("/swr") else {
        panic!("the first request after expiry revalidates")
    };
    assert_eq!(age("/swr").as_deref(), Some("30"));
    assert!(leader.store(200, vec![], b"y").stored);
    assert_eq!(age("/swr").as_deref(), Some("0"));
}

/// `store_changes` is `store` as a diff: applying it to the app's headers gives what `store`
/// returns, for a stored response, one the rules refuse, and one with an `ETag` of its own.
#[test]
fn header_names_past_the_cap_are_refused_not_renamed() {
    let mut set = std::collections::HashSet::new();
    let a = intern(&mut set, 2, "x-a").unwrap();
    assert_eq!(intern(&mut set, 2, "x-b"), Some("x-b"));
    assert_eq!(intern(&mut set, 2, "x-c"), None);
    assert!(std::ptr::eq(intern(&mut set, 2, "x-a").unwrap(), a));
}

#[test]
fn store_changes_applied_to_the_headers_give_what_store_returns() {
    use crate::gate::{Decision, Gate};
    let gate =
        Gate::from_value(&serde_json::json!({"routes": [{"path": "/{*p}", "cache": 30}]})).unwrap();
    let none: Vec<Option<&str>> = vec![None; gate.header_keys().len()];
    let ticket = |path: &str| match get(&gate, &none, path) {
        Decision::Forward(f) => f.cache.expect("a cacheable miss"),
        Decision::Respond(_) => panic!("{path}: expected a miss"),
    };
    let h = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let cases = [
        h(&[("Content-Type", "text/plain"), ("X-Cache-Tags", "a, b")]),
        h(&[("Cache-Control", "no-store"), ("x-cache-tags", "a")]),
        h(&[("ETag", "\"v1\""), ("Content-Type", "text/plain")]),
    ];
    for (i, headers) in cases.into_iter().enumerate() {
        let whole = ticket(&format!("/whole/{i}")).store(200, headers.clone(), b"body");
        let changes = ticket(&format!("/changes/{i}")).store_changes(200, headers.clone(), b"body");
        assert_eq!(changes.stored, whole.stored, "case {i}");
        let mut applied: Vec<(String, String)> = headers
            .into_iter()
            .filter(|(k, _)| !changes.remove.contains(k))
            .collect();
        applied.extend(changes.add);
        assert_eq!(applied, whole.headers, "case {i}");
    }
}

/// A shared tier whose Redis is unreachable: every request is forwarded (a miss, never an
/// error), nothing is kept in L1 (its subscriber never connected, and a store Redis did not
/// index is dropped), and purges are queued, not raised.
#[test]
fn a_dead_redis_is_a_miss_and_keeps_nothing() {
    use crate::gate::{Decision, Gate};
    let gate = Gate::from_value(&serde_json::json!({
        "redis": {"url": "redis://127.0.0.1:1/0", "connect_timeout_ms": 50},
        "cache": {"shared": "redis"},
        "routes": [{"path": "/a", "cache": 60}],
    }))
    .unwrap();
    let none: Vec<Option<&str>> = vec![None; gate.header_keys().len()];
    let req = Request {
        method: "GET",
        path: "/a",
        query: "",
        remote_addr: None,
        headers: &none,
    };
    for _ in 0..5 {
        let Decision::Forward(f) = gate.check(&req) else {
            panic!("a dead Redis must not answer for the app")
        };
        let stored = f.cache.expect("a store ticket").store(200, vec![], b"x");
        assert!(!stored.stored);
        assert!(
            stored
                .headers
                .iter()
                .any(|(k, v)| k == "cache-status" && v.contains("shared-unavailable")),
            "{:?}",
            stored.headers
        );
    }
    let stage = gate.cache().unwrap();
    assert_eq!(stage.store.usage().1, 0, "nothing left in L1");
    stage.purge(Purge::Tag("t".into()));
    let shared = stage.shared.as_ref().unwrap();
    assert_eq!(shared.pending(), 1);
    assert!(shared.stats.errors.load(Ordering::Relaxed) >= 5);
    // The unsafe path too: forwarded, invalidation queued.
    let post = Request {
        method: "POST",
        ..req
    };
    let Decision::Forward(f) = gate.check(&post) else {
        panic!()
    };
    f.cache.unwrap().unsafe_done(200);
    assert_eq!(shared.pending(), 2);
}

#[test]
fn shared_needs_redis() {
    let e = crate::gate::Gate::from_value(&serde_json::json!({
        "cache": {"shared": "redis"},
    }))
    .unwrap_err();
    assert_eq!(e.issues[0].key, "cache.shared");
    let e = crate::gate::Gate::from_value(&serde_json::json!({
        "redis": {"url": "redis://127.0.0.1:1/0"},
        "cache": {"shared": "valkey", "shared_max_entry_bytes": 0},
    }))
    .unwrap_err();
    let keys: Vec<&str> = e.issues.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, ["cache.shared", "cache.shared_max_entry_bytes"]);
}

#[test]
fn etags() {
    assert!(etag_matches("\"a\"", "\"a\""));
    assert!(etag_matches("W/\"a\", \"b\"", "\"a\""));
    assert!(etag_matches("*", "\"a\""));
    assert!(!etag_matches("\"b\"", "\"a\""));
}
