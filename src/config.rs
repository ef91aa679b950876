//! Typed configuration, validated once at start-up.
//!
//! Config arrives as a JSON-shaped value (a Python dict, or TOML parsed by Python). Validation
//! walks the whole value and collects every problem, each naming its key path and the bad value,
//! so a user fixes a config in one round instead of one error at a time.

use std::fmt;

use serde_json::{Map, Value};

use crate::policy::{PolicyOverride, RouteSpec};

/// One problem in a config: where (`routes[2].access`) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub key: String,
    pub message: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}",
            if self.key.is_empty() {
                "<root>"
            } else {
                &self.key
            },
            self.message
        )
    }
}

/// Every problem found in a config. Never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub issues: Vec<Issue>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.issues.len();
        write!(
            f,
            "{n} problem{} in ferrogate config:",
            if n == 1 { "" } else { "s" }
        )?;
        for issue in &self.issues {
            write!(f, "\n  {issue}")?;
        }
        Ok(())
    }
}

impl ConfigError {
    #[must_use]
    pub fn single(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            issues: vec![Issue {
                key: key.into(),
                message: message.into(),
            }],
        }
    }
}

/// Collects problems while a config is walked.
#[derive(Debug, Default)]
pub struct Issues(Vec<Issue>);

impl Issues {
    pub fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(Issue {
            key: key.into(),
            message: message.into(),
        });
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many problems were reported so far.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// `Ok(value)` when nothing was reported.
    pub fn finish<T>(self, value: T) -> Result<T, ConfigError> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(ConfigError { issues: self.0 })
        }
    }

    /// Reports keys of `map` that are not in `allowed`.
    pub fn unknown_keys(&mut self, map: &Map<String, Value>, allowed: &[&str], at: &str) {
        for k in map.keys() {
            if !allowed.contains(&k.as_str()) {
                self.push(
                    join(at, k),
                    format!("unknown key (expected one of: {})", allowed.join(", ")),
                );
            }
        }
    }

    /// The value as an object, or a reported problem.
    pub fn object<'v>(&mut self, v: &'v Value, at: &str) -> Option<&'v Map<String, Value>> {
        if let Value::Object(m) = v {
            Some(m)
        } else {
            self.push(at, format!("expected a table/dict, got {}", show(v)));
            None
        }
    }

    pub fn string<'v>(&mut self, v: &'v Value, at: &str) -> Option<&'v str> {
        if let Value::String(s) = v {
            Some(s)
        } else {
            self.push(at, format!("expected a string, got {}", show(v)));
            None
        }
    }

    pub fn boolean(&mut self, v: &Value, at: &str) -> Option<bool> {
        if let Value::Bool(b) = v {
            Some(*b)
        } else {
            self.push(at, format!("expected true or false, got {}", show(v)));
            None
        }
    }

    /// A non-negative number (integer or float), e.g. seconds.
    pub fn non_negative(&mut self, v: &Value, at: &str) -> Option<f64> {
        match v.as_f64() {
            Some(x) if x.is_finite() && x >= 0.0 && !v.is_string() => Some(x),
            _ => {
                self.push(
                    at,
                    format!("expected a non-negative number, got {}", show(v)),
                );
                None
            }
        }
    }

    /// A positive integer that fits `u64`.
    pub fn positive_int(&mut self, v: &Value, at: &str) -> Option<u64> {
        match v.as_u64() {
            Some(x) if x > 0 => Some(x),
            _ => {
                self.push(at, format!("expected a positive integer, got {}", show(v)));
                None
            }
        }
    }

    /// A list of strings.
    pub fn strings<'v>(&mut self, v: &'v Value, at: &str) -> Option<Vec<&'v str>> {
        let Value::Array(items) = v else {
            self.push(at, format!("expected a list of strings, got {}", show(v)));
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match self.string(item, &format!("{at}[{i}]")) {
                Some(s) => out.push(s),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// One of a fixed set of strings.
    pub fn one_of<'v>(&mut self, v: &'v Value, choices: &[&str], at: &str) -> Option<&'v str> {
        match v {
            Value::String(s) if choices.contains(&s.as_str()) => Some(s),
            _ => {
                self.push(
                    at,
                    format!("expected one of {}, got {}", choices.join(" | "), show(v)),
                );
                None
            }
        }
    }
}

/// Joins a key path: `join("routes[1]", "access")` is `routes[1].access`.
#[must_use]
pub fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_owned()
    } else {
        format!("{at}.{key}")
    }
}

/// A value as it should appear in an error message: JSON, cut short when long.
#[must_use]
pub fn show(v: &Value) -> String {
    let mut s = v.to_string();
    if s.len() > 80 {
        let mut cut = 77;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

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
            (None, None) if rate_limit.storage != crate::ratelimit::settings::Storage::Redis => None,
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
