//! Tests of the per-request pipeline ([`super`]).

use super::*;
use serde_json::json;

fn gate(v: &serde_json::Value) -> Gate {
    Gate::from_value(v).unwrap()
}

fn req<'a>(method: &'a str, path: &'a str) -> Request<'a> {
    Request {
        method,
        path,
        query: "",
        remote_addr: Some("127.0.0.1"),
        headers: &[],
    }
}

fn status(g: &Gate, method: &str, path: &str) -> u16 {
    match g.check(&req(method, path)) {
        Decision::Respond(r) => r.status,
        Decision::Forward(_) => 0,
    }
}

#[test]
fn policies_allow_deny_and_405() {
    let g = gate(&json!({"routes": [
        {"path": "/admin/{*rest}", "access": "deny"},
        {"path": "/users/{id}", "methods": ["GET", "DELETE"], "name": "user"},
        {"path": "/public", "access": "allow"},
    ]}));
    assert_eq!(status(&g, "GET", "/admin/x"), 403);
    assert_eq!(status(&g, "GET", "//admin//x"), 400);
    assert_eq!(status(&g, "GET", "/public/../admin/x"), 400);
    assert_eq!(status(&g, "GET", "/users/1"), 0);
    assert_eq!(status(&g, "HEAD", "/users/1"), 0);
    assert_eq!(status(&g, "GET", "/unknown"), 0);
    let Decision::Respond(r) = g.check(&req("PUT", "/users/1")) else {
        panic!()
    };
    assert_eq!(r.status, 405);
    assert!(
        r.headers
            .contains(&("allow", "GET, HEAD, DELETE".to_owned()))
    );
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["detail"], "PUT is not allowed on this resource");
}

#[test]
fn forward_carries_route_and_params() {
    let g = gate(&json!({"routes": [{"path": "/users/{id}", "name": "user"}]}));
    let Decision::Forward(f) = g.check(&req("GET", "/users/42")) else {
        panic!()
    };
    let m = f.route.unwrap();
    assert_eq!(m.pattern, "/users/{id}");
    assert_eq!(m.name, Some("user"));
    assert_eq!(m.params.get("id"), Some("42"));
}

#[test]
fn deny_by_default_with_allowed_routes() {
    let g = gate(
        &json!({"defaults": {"access": "deny"}, "routes": [{"path": "/health", "access": "allow"}, {"path": "/other"}]}),
    );
    assert_eq!(status(&g, "GET", "/health"), 0);
    assert_eq!(status(&g, "GET", "/other"), 403, "routes inherit defaults");
    assert_eq!(status(&g, "GET", "/nothing"), 403);
}

#[test]
fn exempt_routes_skip_every_check() {
    let g = gate(
        &json!({"defaults": {"access": "deny"}, "routes": [{"path": "/open", "exempt": true}]}),
    );
    assert_eq!(status(&g, "GET", "/open"), 0);
    assert_eq!(status(&g, "GET", "/closed"), 403);
}

#[test]
fn unmatched_forward_skips_the_defaults() {
    let g = gate(
        &json!({"defaults": {"access": "deny"}, "unmatched": "forward", "routes": [{"path": "/a"}]}),
    );
    assert_eq!(status(&g, "GET", "/a"), 403);
    assert_eq!(status(&g, "GET", "/b"), 0);
    assert!(Gate::from_value(&json!({"unmatched": "ignore"})).is_err());
}

/// Checks under `target`, returning the status (0: forwarded) and the route it applied.
fn status_for(g: &Gate, method: &str, path: &str, target: Target<'_>) -> (u16, Option<usize>) {
    match g.check_target(&req(method, path), &InPlace, target) {
        Decision::Respond(r) => (r.status, None),
        Decision::Forward(f) => (0, f.route.map(|m| m.id)),
    }
}

struct Fixed(Result<Option<RouteId>, ResolveFailed>);

impl Resolver for Fixed {
    fn resolve(&self) -> Result<Option<RouteId>, ResolveFailed> {
        self.0
    }
}

#[test]
fn empty_segments_are_refused_or_matched_as_sent_never_merged() {
    let routes = json!([
        {"path": "/admin/help/{topic}"},
        {"path": "/admin/{*page}", "access": "deny"},
    ]);
    let plain = gate(&json!({"routes": routes}));
    assert_eq!(status(&plain, "GET", "/admin/help/x"), 0);
    // Merging would have checked the open route and forwarded a path werkzeug and Django
    // dispatch to the denied one.
    assert_eq!(status(&plain, "GET", "/admin/help//x"), 400);
    assert_eq!(status(&plain, "GET", "//admin/help/x"), 400);
    let matching = gate(&json!({"routes": routes, "paths": {"empty_segments": "match"}}));
    assert_eq!(status(&matching, "GET", "/admin/help//x"), 403);
    assert_eq!(status(&matching, "GET", "/admin/help/x"), 0);
    assert!(Gate::from_value(&json!({"paths": {"empty_segments": "merge"}})).is_err());
    assert!(Gate::from_value(&json!({"paths": {"slashes": "x"}})).is_err());
}

#[test]
fn dispatch_routes_are_resolved_and_unmatched_requests_keep_the_defaults() {
    let g = gate(&json!({
        "defaults": {"access": "deny"},
        "routes": [
            {"path": "/open", "access": "allow"},
            {"dispatch": true, "name": "legacy", "access": "allow"},
        ],
    }));
    assert!(g.has_dispatch_routes());
    assert_eq!(status(&g, "GET", "/open"), 0);
    // Without a framework to ask, an unmatched path gets the defaults, dispatch routes or not.
    assert_eq!(status(&g, "GET", "/elsewhere"), 403);
    let m = |r| Target::Match(r);
    assert_eq!(
        status_for(&g, "GET", "/elsewhere", m(&Fixed(Ok(Some(1))))),
        (0, Some(1))
    );
    assert_eq!(
        status_for(&g, "GET", "/elsewhere", m(&Fixed(Ok(None)))),
        (403, None)
    );
    assert_eq!(
        status_for(&g, "GET", "/elsewhere", m(&Fixed(Err(ResolveFailed)))),
        (500, None)
    );
    assert_eq!(
        status_for(&g, "GET", "/elsewhere", m(&Fixed(Ok(Some(9))))),
        (500, None)
    );
    // A matched path never asks.
    assert_eq!(
        status_for(&g, "GET", "/open", m(&Fixed(Err(ResolveFailed)))),
        (0, Some(0))
    );
    // The framework's resolution, given directly.
    let route = |id| Target::Route { id, cache: true };
    assert_eq!(status_for(&g, "GET", "/open", route(None)), (403, None));
    assert_eq!(status_for(&g, "GET", "/x", route(Some(1))), (0, Some(1)));
    assert_eq!(status_for(&g, "GET", "/x", route(Some(2))), (500, None));
    let bad = Gate::from_value(&json!({"routes": [
        {"dispatch": true, "path": "/a"}, {"path": "/b", "aliases": "/c"}, {"name": "x"}
    ]}))
    .unwrap_err();
    let keys: Vec<&str> = bad.issues.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(
        keys,
        ["routes[0].path", "routes[1].aliases", "routes[2].path"]
    );
}

#[test]
fn aliases_share_their_route() {
    let g = gate(&json!({"routes": [
        {"path": "/a/", "aliases": ["/a"], "name": "a", "limit": "1/hour"},
    ]}));
    assert_eq!(
        status_for(&g, "GET", "/a", Target::Match(&NoResolver)),
        (0, Some(0))
    );
    // One bucket for both spellings.
    assert_eq!(status(&g, "GET", "/a/"), 429);
    let dup = Gate::from_value(&json!({"routes": [{"path": "/a", "aliases": ["/a"]}]}));
    assert_eq!(dup.unwrap_err().issues[0].key, "routes[0].aliases[0]");
}

#[test]
fn route_conflicts_are_config_errors_naming_both() {
    let err = Gate::from_value(&json!({"routes": [
        {"path": "/u/{id}"}, {"path": "/u/{name}"}, {"path": "/v/{a}"}, {"path": "/v/{b}"}
    ]}))
    .unwrap_err();
    assert_eq!(err.issues.len(), 2);
    assert_eq!(err.issues[0].key, "routes[1].path");
    assert!(
        err.issues[0].message.contains("/u/{name}") && err.issues[0].message.contains("/u/{id}")
    );
}

#[test]
fn revocation_needs_redis_and_valid_settings() {
    let jwt = |r: serde_json::Value| json!({"algorithms": ["HS256"], "key": "k-long-enough-for-hs256-0123456789", "revocation": r});
    let err = Gate::from_value(&json!({"jwt": jwt(json!("redis"))})).unwrap_err();
    let keys: Vec<&str> = err.issues.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, ["jwt.revocation"]);
    assert!(err.issues[0].message.contains("[redis]"));
    // Reported with the other [jwt] problems, in one round.
    let err = Gate::from_value(&json!({
        "jwt": {"algorithms": ["XS1"], "key": "k-long-enough-for-hs256-0123456789", "revocation": {"store": "redis", "check": "never"}},
        "redis": {"url": "redis://127.0.0.1:1/0"},
    }))
    .unwrap_err();
    let keys: Vec<&str> = err.issues.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "jwt.revocation.check",
            "jwt.algorithms[0]",
            "jwt.algorithms"
        ]
    );
}

#[test]
fn hostile_methods_are_not_echoed() {
    let g = gate(&json!({"routes": [{"path": "/a", "methods": ["GET"]}]}));
    let Decision::Respond(r) = g.check(&req("<script>", "/a")) else {
        panic!()
    };
    assert_eq!(r.status, 405);
    assert!(!String::from_utf8_lossy(&r.body).contains("script"));
}

#[test]
fn explain_says_why() {
    let g = gate(&json!({"routes": [{"path": "/a/{x}", "methods": ["GET"], "access": "deny"}]}));
    match g.explain("GET", "/a/1") {
        Explanation::Route {
            pattern,
            params,
            policy,
            ..
        } => {
            assert_eq!(pattern, "/a/{x}");
            assert_eq!(params, vec![("x".to_owned(), "1".to_owned())]);
            assert_eq!(policy.access, Access::Deny);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        g.explain("POST", "/a/1"),
        Explanation::MethodNotAllowed { .. }
    ));
    assert!(matches!(
        g.explain("GET", "/b"),
        Explanation::Unmatched { .. }
    ));
    assert!(matches!(
        g.explain("GET", "/a/.."),
        Explanation::BadPath(PathError::DotSegment)
    ));
}

#[test]
fn refusals_under_an_uncertain_route_wait_for_the_framework() {
    let g = gate(&json!({"routes": [
        {"path": "/u/{id}", "access": "deny", "confirm_refusals": true},
        {"dispatch": true, "name": "rest"},
        {"path": "/v/{id}", "access": "deny"},
    ]}));
    let m = |r| Target::Match(r);
    // The framework dispatches elsewhere: checked there, not refused under the router's match.
    assert_eq!(
        status_for(&g, "GET", "/u/abc", m(&Fixed(Ok(Some(1))))),
        (0, Some(1))
    );
    // The framework agrees, or runs no view: the refusal stands.
    assert_eq!(
        status_for(&g, "GET", "/u/1", m(&Fixed(Ok(Some(0))))),
        (403, None)
    );
    assert_eq!(
        status_for(&g, "GET", "/u/1", m(&Fixed(Ok(None)))),
        (403, None)
    );
    assert_eq!(
        status_for(&g, "GET", "/u/1", m(&Fixed(Err(ResolveFailed)))),
        (500, None)
    );
    // A route without the flag never asks.
    assert_eq!(
        status_for(&g, "GET", "/v/1", m(&Fixed(Ok(Some(1))))),
        (403, None)
    );
    assert!(Gate::from_value(&json!({"routes": [{"path": "/a", "confirm_refusals": 1}]})).is_err());
}
