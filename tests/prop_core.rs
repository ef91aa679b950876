//! Property tests over the core's untrusted-input surfaces: request paths and config values.
//! They run in `cargo test`; `PROPTEST_CASES` raises the count for longer runs (`make fuzz`).

use ferrogate::config::GateConfig;
use ferrogate::gate::{Decision, Gate, Request};
use ferrogate::router::{EmptySegments, PathEncoding, Router, normalize};
use proptest::prelude::*;
use serde_json::{Value, json};

fn path_strategy() -> impl Strategy<Value = String> {
    // Paths built from the characters that matter to normalisation, plus arbitrary Unicode.
    prop::collection::vec(
        prop_oneof![
            Just("/".to_owned()),
            Just(".".to_owned()),
            Just("..".to_owned()),
            Just("%".to_owned()),
            Just("%2e".to_owned()),
            Just("%2F".to_owned()),
            Just("%25".to_owned()),
            "[a-z0-9]{1,3}",
            any::<char>().prop_map(String::from),
        ],
        0..12,
    )
    .prop_map(|parts| parts.concat())
}

fn json_strategy() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        prop_oneof![
            Just("allow".to_owned()),
            Just("deny".to_owned()),
            Just("/a/{x}".to_owned()),
            Just("GET".to_owned()),
            Just("redis".to_owned()),
            Just("redis://127.0.0.1:1/0".to_owned()),
            Just("redis+cluster://127.0.0.1:1,".to_owned()),
            Just("local".to_owned()),
            ".*"
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("defaults".to_owned()),
                    Just("routes".to_owned()),
                    Just("path".to_owned()),
                    Just("methods".to_owned()),
                    Just("access".to_owned()),
                    Just("exempt".to_owned()),
                    Just("unmatched".to_owned()),
                    Just("redis".to_owned()),
                    Just("url".to_owned()),
                    Just("rate_limit".to_owned()),
                    Just("storage".to_owned()),
                    Just("on_error".to_owned()),
                    Just("batch".to_owned()),
                    Just("timeout_ms".to_owned()),
                    "[a-z]{1,6}"
                ],
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn normalised_paths_are_canonical(path in path_strategy()) {
        for encoding in [PathEncoding::Raw, PathEncoding::Decoded] {
            for empty in [EmptySegments::Refuse, EmptySegments::Match] {
                if let Ok(n) = normalize(&path, encoding, empty) {
                    prop_assert!(n.starts_with('/'));
                    prop_assert!(!n.split('/').any(|s| s == "." || s == ".."));
                    // Nothing merges slashes: a path with `//` is refused or kept as sent.
                    prop_assert_eq!(n.matches("//").count(), path.matches("//").count());
                    if empty == EmptySegments::Refuse {
                        prop_assert!(!n.contains("//"));
                    }
                    // Idempotent: normalising again changes nothing.
                    let again = normalize(&n, encoding, empty);
                    prop_assert_eq!(again.as_deref(), Ok(&*n));
                }
            }
        }
    }

    #[test]
    fn lookups_never_panic(path in path_strategy(), method in "[A-Z]{1,8}|get|\\PC{0,4}") {
        let mut r = Router::new();
        r.insert("/users/{id}", &["GET"], 1).unwrap();
        r.insert("/files/{*rest}", &[], 2).unwrap();
        r.insert("/a/b/c", &["POST"], 3).unwrap();
        if let Ok(n) = normalize(&path, PathEncoding::Raw, EmptySegments::Match) {
            let _ = r.lookup(&method, &n);
        }
    }

    #[test]
    fn gate_check_answers_every_request(path in path_strategy(), method in "\\PC{0,8}") {
        let gate = Gate::from_value(&json!({"routes": [
            {"path": "/admin/{*rest}", "access": "deny"},
            {"path": "/users/{id}", "methods": ["GET"]},
        ]})).unwrap();
        let req = Request { method: &method, path: &path, query: "", remote_addr: None, headers: &[] };
        match gate.check(&req) {
            Decision::Respond(r) => prop_assert!([400, 403, 405].contains(&r.status)),
            Decision::Forward(_) => {}
        }
    }

    #[test]
    fn any_config_value_is_accepted_or_explained(v in json_strategy()) {
        match GateConfig::from_value(&v) {
            Ok(config) => { let _ = Gate::new(&config); }
            Err(e) => {
                prop_assert!(!e.issues.is_empty());
                prop_assert!(e.to_string().contains("problem"));
            }
        }
    }
}
