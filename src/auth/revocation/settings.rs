//! The `[jwt] revocation` setting.
//!
//! ```toml
//! [jwt]
//! revocation = "redis"            # or a table:
//! revocation = { store = "redis", on_error = "allow", check = "local" }
//! ```

use std::time::Duration;

use serde_json::Value;

use crate::issues::{Issues, join, show};

/// What a request gets when the local copy cannot be trusted (`check = "local"`: the subscriber
/// is disconnected, so messages may have been missed) or Redis does not answer (`"always"`).
/// Tokens the local copy knows to be revoked are refused either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// Go on with the local copy.
    #[default]
    Allow,
    /// Refuse with 503 (problem+json, `Retry-After`).
    Deny,
}

/// How a request is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Check {
    /// Against the local copy only: no round trip.
    #[default]
    Local,
    /// Against the local copy, then Redis (one round trip per request with a token).
    Always,
}

/// The `[jwt] revocation` setting.
#[derive(Debug, Clone, PartialEq)]
pub struct RevocationSettings {
    pub on_error: OnError,
    pub check: Check,
    /// Entries the local copy holds at most; a larger list in Redis makes the copy untrusted.
    pub max_entries: usize,
    /// How long a subject revocation is kept after its T (the longest lifetime of your tokens);
    /// `None`: until it is replaced.
    pub subject_ttl: Option<Duration>,
}

impl Default for RevocationSettings {
    fn default() -> Self {
        Self {
            on_error: OnError::Allow,
            check: Check::Local,
            max_entries: 1_000_000,
            subject_ttl: None,
        }
    }
}

const KEYS: &[&str] = &["store", "on_error", "check", "max_entries", "subject_ttl"];

impl RevocationSettings {
    /// Parses `revocation = "redis"` or `{ store = "redis", on_error, check, max_entries,
    /// subject_ttl }`.
    pub fn parse(v: &Value, at: &str, issues: &mut Issues) -> Option<Self> {
        let mut out = Self::default();
        let map = match v {
            Value::String(_) => {
                issues.one_of(v, &["redis"], at)?;
                return Some(out);
            }
            Value::Object(m) => m,
            other => {
                issues.push(
                    at,
                    format!(
                        "expected \"redis\" or a table {{ store = \"redis\", on_error, check }}, got {}",
                        show(other)
                    ),
                );
                return None;
            }
        };
        let before = issues.len();
        issues.unknown_keys(map, KEYS, at);
        match map.get("store") {
            Some(s) => {
                issues.one_of(s, &["redis"], &join(at, "store"));
            }
            None => issues.push(join(at, "store"), "missing (\"redis\")"),
        }
        if let Some(v) = map.get("on_error") {
            if let Some(s) = issues.one_of(v, &["allow", "deny"], &join(at, "on_error")) {
                out.on_error = if s == "deny" {
                    OnError::Deny
                } else {
                    OnError::Allow
                };
            }
        }
        if let Some(v) = map.get("check") {
            if let Some(s) = issues.one_of(v, &["local", "always"], &join(at, "check")) {
                out.check = if s == "always" {
                    Check::Always
                } else {
                    Check::Local
                };
            }
        }
        if let Some(v) = map.get("max_entries") {
            match v.as_u64() {
                Some(n) if (1..=100_000_000).contains(&n) => {
                    out.max_entries = usize::try_from(n).unwrap_or(usize::MAX);
                }
                _ => issues.push(
                    join(at, "max_entries"),
                    format!("expected an integer, 1 to 100000000, got {}", show(v)),
                ),
            }
        }
        if let Some(v) = map.get("subject_ttl") {
            let key = join(at, "subject_ttl");
            match v.as_f64() {
                Some(s) if s > 0.0 && s.is_finite() && !v.is_string() => {
                    out.subject_ttl = Duration::try_from_secs_f64(s).ok();
                }
                _ => issues.push(
                    key,
                    format!("expected a positive number of seconds, got {}", show(v)),
                ),
            }
        }
        (issues.len() == before).then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn settings_report_each_bad_value() {
        let mut issues = Issues::default();
        assert_eq!(
            RevocationSettings::parse(&json!("redis"), "jwt.revocation", &mut issues),
            Some(RevocationSettings::default())
        );
        let s = RevocationSettings::parse(
            &json!({"store": "redis", "on_error": "deny", "check": "always", "subject_ttl": 3600}),
            "jwt.revocation",
            &mut issues,
        )
        .unwrap();
        assert!(issues.is_empty());
        assert_eq!(s.on_error, OnError::Deny);
        assert_eq!(s.check, Check::Always);
        assert_eq!(s.subject_ttl, Some(Duration::from_secs(3600)));
        assert!(
            RevocationSettings::parse(
                &json!({"store": "memcached", "on_error": "maybe", "check": 1,
                        "max_entries": 0, "subject_ttl": "1h", "colour": 1}),
                "jwt.revocation",
                &mut issues,
            )
            .is_none()
        );
        assert!(
            RevocationSettings::parse(&json!("memory"), "jwt.revocation", &mut issues).is_none()
        );
        assert!(RevocationSettings::parse(&json!(7), "jwt.revocation", &mut issues).is_none());
        assert!(RevocationSettings::parse(&json!({}), "jwt.revocation", &mut issues).is_none());
        let e = issues.finish(()).unwrap_err();
        let keys: Vec<&str> = e.issues.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "jwt.revocation.colour",
                "jwt.revocation.store",
                "jwt.revocation.on_error",
                "jwt.revocation.check",
                "jwt.revocation.max_entries",
                "jwt.revocation.subject_ttl",
                "jwt.revocation",
                "jwt.revocation",
                "jwt.revocation.store",
            ]
        );
    }
}
