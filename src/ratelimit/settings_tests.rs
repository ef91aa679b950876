//! The rate-limit settings' tests.

use super::*;
use serde_json::json;

fn settings(v: &Value) -> Result<Settings, Vec<(String, String)>> {
    let mut issues = Issues::default();
    let s = Settings::parse(v.as_object().unwrap(), &mut issues);
    issues
        .finish(s)
        .map_err(|e| e.issues.into_iter().map(|i| (i.key, i.message)).collect())
}

#[test]
fn named_limits_and_client_ip() {
    let s = settings(&json!({
        "limits": {"api": {"quota": "10/second; 100/minute", "key": ["sub", "header:X-Api-Key"]},
                   "login": "5/minute"},
        "client_ip": {"trusted_proxies": ["10.0.0.0/8"], "header": "forwarded"},
        "rate_limit": {"legacy_headers": true, "max_keys": 50},
    }))
    .unwrap();
    assert_eq!(s.named.len(), 2);
    assert_eq!(
        s.get("api").unwrap().key,
        vec![KeyPart::Subject, KeyPart::Header("x-api-key".into())]
    );
    assert_eq!(s.get("login").unwrap().quotas[0].count, 5);
    assert!(s.legacy_headers);
    assert_eq!(s.max_keys, 50);
    assert_eq!(s.client_ip.header, ForwardedHeader::Forwarded);
}

#[test]
fn every_problem_reported_with_its_path() {
    let errs = settings(&json!({
        "limits": {"api": {"quota": "10/fortnight"}, "9bad": "1/second",
                   "b": {"quota": "1/second; 2/minute", "burst": 3},
                   "c": {"quota": "1/second", "key": "cookie:x"}},
        "client_ip": {"trusted_proxies": ["10.0.0.0/33"], "trusted_hops": 1},
        "rate_limit": {"storage": "memcached"},
    }))
    .unwrap_err();
    let keys: Vec<&str> = errs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            "rate_limit.storage",
            "client_ip",
            "limits.api.quota",
            "limits.9bad",
            "limits.b.burst",
            "limits.c.key"
        ]
    );
    assert!(errs[2].1.contains("\"10/fortnight\""), "{}", errs[2].1);
}

#[test]
fn limit_values() {
    let mut issues = Issues::default();
    assert_eq!(
        parse_limit(&json!(false), "x", &mut issues),
        Some(LimitPolicy::Off)
    );
    let Some(LimitPolicy::Limits(refs)) = parse_limit(
        &json!(["api", "5/minute", {"use": "api", "cost": 2}, {"quota": "1/s", "burst": 4}]),
        "x",
        &mut issues,
    ) else {
        panic!()
    };
    assert!(issues.is_empty());
    assert_eq!(refs.len(), 4);
    assert!(matches!(&refs[2], LimitRef::Named { options, .. } if options.cost == Some(2)));
    assert!(matches!(&refs[3], LimitRef::Inline(d) if d.quotas[0].burst == 4));
    assert!(parse_limit(&json!("100/minit"), "routes[0].limit", &mut issues).is_none());
    assert!(parse_limit(&json!(true), "y", &mut issues).is_none());
    parse_limit(&json!({"use": "a", "quota": "1/s"}), "z", &mut issues);
    let e = issues.finish(()).unwrap_err();
    assert_eq!(e.issues[0].key, "routes[0].limit");
    assert!(e.issues[0].message.contains("\"100/minit\""));
    assert_eq!(e.issues.len(), 3);
}

#[test]
fn references_are_checked() {
    let s = settings(&json!({"limits": {"api": "2/second"}})).unwrap();
    let mut issues = Issues::default();
    let p = parse_limit(
        &json!(["nope", {"use": "api", "cost": 3}]),
        "r",
        &mut issues,
    );
    s.check_policy(p.as_ref(), "routes[1]", &mut issues);
    let e = issues.finish(()).unwrap_err();
    assert_eq!(e.issues[0].key, "routes[1].limit[0]");
    assert!(e.issues[0].message.contains("known: api"));
    assert_eq!(e.issues[1].key, "routes[1].limit[1].cost");
}
