//! Typed configuration, validated once at start-up.
//!
//! Config arrives as a JSON-shaped value (a Python dict, or TOML parsed by Python). Validation
//! walks the whole value and collects every problem ([`crate::issues`]); each section is parsed
//! by the feature that owns it (`auth/settings.rs`, `ratelimit/settings.rs`, ...).

use serde_json::Value;

use crate::issues::{ConfigError, Issues, show};
use crate::policy::{PolicyOverride, RouteSpec};

/// The whole gate config, validated.
#[derive(Debug, Clone, Default)]
pub struct GateConfig {
    pub defaults: PolicyOverride,
    pub routes: Vec<RouteSpec>,
    pub unmatched: Unmatched,
    /// The `[paths]` section: how request paths are read.
    pub paths: PathSettings,
    /// `limits`, `client_ip` and `rate_limit`.
    pub rate_limit: crate::ratelimit::Settings,
    /// The `[jwt]` section, as given; built into a verifier with the gate (it may fetch keys).
    pub jwt: Option<Value>,
    /// The `[cache]` section.
    pub cache: Option<crate::cache::settings::CacheSettings>,
    /// The `[redis]` section (or the URL in `rate_limit.storage`): the store shared by every
    /// process, when one is configured.
    pub redis: Option<crate::shared::RedisSettings>,
}

/// What the gate does with a request that matches no route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Unmatched {
    /// Apply the `defaults` policy (deny-by-default gateways set `defaults.access = "deny"`).
    #[default]
    Defaults,
    /// Forward untouched: a framework hook checks these requests itself (the Flask and Django
    /// adapters use this for routes the router cannot express).
    Forward,
}

/// The `[paths]` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PathSettings {
    /// `empty_segments = "refuse" | "match"`: see [`crate::router::EmptySegments`].
    pub empty_segments: crate::router::EmptySegments,
}

impl PathSettings {
    fn parse(v: &Value, issues: &mut Issues) -> Self {
        let mut out = Self::default();
        let Some(map) = issues.object(v, "paths") else {
            return out;
        };
        issues.unknown_keys(map, &["empty_segments"], "paths");
        if let Some(e) = map.get("empty_segments") {
            if issues.one_of(e, &["refuse", "match"], "paths.empty_segments") == Some("match") {
                out.empty_segments = crate::router::EmptySegments::Match;
            }
        }
        out
    }
}

const TOP_LEVEL_KEYS: &[&str] = &[
    "defaults",
    "routes",
    "unmatched",
    "paths",
    "limits",
    "client_ip",
    "rate_limit",
    "jwt",
    "cache",
    "redis",
];

impl GateConfig {
    /// Validates a config value, reporting every problem at once.
    pub fn from_value(v: &Value) -> Result<Self, ConfigError> {
        let mut issues = Issues::default();
        let config = Self::parse(v, &mut issues);
        issues.finish(config)
    }

    /// Validates into `issues`, keeping every part that is valid so that later checks (route
    /// conflicts) can still run and be reported in the same round.
    pub fn parse(v: &Value, issues: &mut Issues) -> Self {
        let Some(root) = issues.object(v, "") else {
            return Self::default();
        };
        issues.unknown_keys(root, TOP_LEVEL_KEYS, "");
        let rate_limit = crate::ratelimit::Settings::parse(root, issues);
        let defaults = match root.get("defaults") {
            Some(d) => PolicyOverride::parse(d, "defaults", &[], issues),
            None => PolicyOverride::default(),
        };
        let unmatched = match root.get("unmatched") {
            Some(u)
                if issues.one_of(u, &["defaults", "forward"], "unmatched") == Some("forward") =>
            {
                Unmatched::Forward
            }
            _ => Unmatched::Defaults,
        };
        let paths = root
            .get("paths")
            .map(|p| PathSettings::parse(p, issues))
            .unwrap_or_default();
        rate_limit.check_policy(defaults.limit.as_ref(), "defaults", issues);
        let mut routes = Vec::new();
        match root.get("routes") {
            None => {}
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let at = format!("routes[{i}]");
                    if let Some(r) = RouteSpec::parse(item, &at, issues) {
                        rate_limit.check_policy(r.policy.limit.as_ref(), &at, issues);
                        routes.push(r);
                    }
                }
            }
            Some(other) => issues.push(
                "routes",
                format!("expected a list of route tables, got {}", show(other)),
            ),
        }
        let redis = match (root.get("redis"), rate_limit.storage_url.as_deref()) {
            (None, None) if rate_limit.storage != crate::ratelimit::settings::Storage::Redis => {
                None
            }
            (section, url) => crate::shared::RedisSettings::parse(section, url, issues),
        };
        Self {
            redis,
            cache: root
                .get("cache")
                .map(|c| crate::cache::settings::CacheSettings::parse(c, "cache", issues)),
            jwt: root.get("jwt").cloned(),
            defaults,
            routes,
            unmatched,
            paths,
            rate_limit,
        }
    }

    /// Parses JSON text (used by tests and the CLI when the file is JSON).
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| ConfigError::single("", format!("invalid JSON: {e}")))?;
        Self::from_value(&v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reports_every_problem_with_its_key_path() {
        let err = GateConfig::from_value(&json!({
            "defaults": {"access": "denny"},
            "routes": [
                {"path": "/ok"},
                {"path": 7, "access": "allow"},
                {"path": "/x", "methods": "GET", "colour": "red"},
            ],
            "extra": 1,
        }))
        .unwrap_err();
        let keys: Vec<&str> = err.issues.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "extra",
                "defaults.access",
                "routes[1].path",
                "routes[2].colour",
                "routes[2].methods"
            ]
        );
        let text = err.to_string();
        assert!(
            text.starts_with("5 problems in ferrogate config:"),
            "{text}"
        );
        assert!(
            text.contains("defaults.access: expected one of allow | deny, got \"denny\""),
            "{text}"
        );
    }

    #[test]
    fn root_must_be_a_table() {
        let err = GateConfig::from_value(&json!([1])).unwrap_err();
        assert_eq!(err.issues[0].key, "");
        assert!(
            err.to_string()
                .contains("<root>: expected a table/dict, got [1]")
        );
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let long = "x".repeat(200);
        let s = show(&json!(long));
        assert!(s.len() <= 80 && s.ends_with("..."));
    }

    #[test]
    fn empty_config_is_valid() {
        let c = GateConfig::from_value(&json!({})).unwrap();
        assert!(c.routes.is_empty());
    }
}
