//! Response headers: IETF `RateLimit-Policy` / `RateLimit` (draft-ietf-httpapi-ratelimit-headers,
//! structured-field lists), the legacy `X-RateLimit-*` trio, and `Retry-After`.
//!
//! ```text
//! RateLimit-Policy: "api";q=100;w=60
//! RateLimit: "api";r=42;t=17
//! ```
//!
//! A limit with several quotas names each item `"<name>-<i>"` (1-based) so every policy item has a
//! unique name, as the draft requires. `t` and `Retry-After` are whole seconds rounded up, so a
//! client that waits that long is never refused for having come back early.

use std::fmt::Write as _;

use super::gcra::{Outcome, QuotaState};
use super::quota::Quota;
use crate::http::push_int;

pub const RATELIMIT_POLICY: &str = "ratelimit-policy";
pub const RATELIMIT: &str = "ratelimit";
pub const RETRY_AFTER: &str = "retry-after";
pub const X_LIMIT: &str = "x-ratelimit-limit";
pub const X_REMAINING: &str = "x-ratelimit-remaining";
pub const X_RESET: &str = "x-ratelimit-reset";

const NANOS: u64 = 1_000_000_000;

/// Whole seconds, rounded up.
#[must_use]
pub fn ceil_secs(nanos: u64) -> u64 {
    nanos / NANOS + u64::from(nanos % NANOS != 0)
}

/// The name of quota `i` of a limit called `name` with `n` quotas, as a structured-field string
/// (RFC 9651 §3.3.3: printable ASCII only). Named limits are validated, but a route's limit is
/// named after the route, and route names come from the app (a Django URL name may be any text):
/// anything else becomes `_`, so no name can break or inject into the header.
fn item_name(out: &mut String, name: &str, i: usize, n: usize) {
    out.push('"');
    for c in name.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(if (' '..='~').contains(&c) { c } else { '_' });
    }
    if n > 1 {
        out.push('-');
        push_int(out, i + 1);
    }
    out.push('"');
}

/// `RateLimit-Policy` for a limit; fixed, so the gate builds it once.
#[must_use]
pub fn policy_value(name: &str, quotas: &[Quota]) -> String {
    let mut out = String::new();
    for (i, q) in quotas.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        item_name(&mut out, name, i, quotas.len());
        let _ = write!(out, ";q={};w={}", q.count, q.period_secs);
    }
    out
}

/// `RateLimit` after a hit: remaining and seconds to a full reset for every quota.
#[must_use]
pub fn ratelimit_value(name: &str, outcome: &Outcome) -> String {
    let qs = outcome.quotas();
    let mut out = String::with_capacity(24 * qs.len() + name.len());
    for (i, s) in qs.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        item_name(&mut out, name, i, qs.len());
        out.push_str(";r=");
        push_int(&mut out, s.remaining);
        out.push_str(";t=");
        push_int(&mut out, ceil_secs(s.reset_nanos));
    }
    out
}

/// `Retry-After` seconds for a refused hit (at least 1).
#[must_use]
pub fn retry_after_secs(state: &QuotaState) -> u64 {
    ceil_secs(state.retry_nanos).max(1)
}

/// The legacy trio for one quota: limit, remaining, and the reset as a Unix time in seconds
/// (as GitHub and Flask-Limiter send it).
#[must_use]
pub fn legacy_values(
    quota: &Quota,
    state: &QuotaState,
    now_nanos: u64,
) -> [(&'static str, String); 3] {
    [
        (X_LIMIT, quota.count.to_string()),
        (X_REMAINING, state.remaining.to_string()),
        (
            X_RESET,
            ceil_secs(now_nanos.saturating_add(state.reset_nanos)).to_string(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::limiter::Limiter;

    #[test]
    fn item_names_are_structured_field_strings() {
        let name = |s: &str| {
            let mut out = String::new();
            item_name(&mut out, s, 0, 1);
            out
        };
        assert_eq!(name("api.items"), "\"api.items\"");
        assert_eq!(name("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(name("line\r\nX-Evil: 1"), "\"line__X-Evil: 1\"");
        assert_eq!(name("café\u{7f}"), "\"caf__\"");
        let mut two = String::new();
        item_name(&mut two, "x", 1, 2);
        assert_eq!(two, "\"x-2\"");
    }
    use crate::ratelimit::quota::parse_quotas;

    #[test]
    fn structured_field_values_step_by_step() {
        let qs = parse_quotas("2/second; 100/hour").unwrap();
        assert_eq!(
            policy_value("api", &qs),
            "\"api-1\";q=2;w=1, \"api-2\";q=100;w=3600"
        );
        let single = parse_quotas("10/minute").unwrap();
        assert_eq!(policy_value("a\"b", &single), "\"a\\\"b\";q=10;w=60");
        let l = Limiter::new(&qs, 10).unwrap();
        let k = l.hash_key(b"x");
        let o = l.hit_hashed(k, 1, 0);
        assert_eq!(
            ratelimit_value("api", &o),
            "\"api-1\";r=1;t=1, \"api-2\";r=99;t=36"
        );
        let o = l.hit_hashed(k, 1, 0);
        assert_eq!(
            ratelimit_value("api", &o),
            "\"api-1\";r=0;t=1, \"api-2\";r=98;t=72"
        );
        let o = l.hit_hashed(k, 1, 0);
        assert!(!o.allowed);
        assert_eq!(
            ratelimit_value("api", &o),
            "\"api-1\";r=0;t=1, \"api-2\";r=98;t=72"
        );
        assert_eq!(retry_after_secs(&o.state()), 1);
        let legacy = legacy_values(&qs[0], &o.state(), 5 * NANOS);
        assert_eq!(legacy[0].1, "2");
        assert_eq!(legacy[1].1, "0");
        assert_eq!(legacy[2].1, "6");
    }

    #[test]
    fn rounding_up() {
        assert_eq!(ceil_secs(0), 0);
        assert_eq!(ceil_secs(1), 1);
        assert_eq!(ceil_secs(NANOS), 1);
        assert_eq!(ceil_secs(NANOS + 1), 2);
    }
}
