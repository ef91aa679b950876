//! The local copy of the revocation list each process keeps: a hash lookup per request.

use std::collections::HashMap;

/// The local copy: jti -> expiry, sub -> (T, expiry). Expiries are Unix seconds
/// (`f64::INFINITY`: none); an expired entry is ignored, and dropped at the next prune.
#[derive(Debug, Default)]
pub struct LocalList {
    jti: HashMap<Box<str>, f64>,
    sub: HashMap<Box<str>, (f64, f64)>,
    last_prune: f64,
}

/// How often writes sweep out expired entries.
const PRUNE_EVERY_SECS: f64 = 60.0;

impl LocalList {
    /// Adds a revoked `jti` (keeps the later expiry of two).
    pub fn revoke_jti(&mut self, jti: &str, expires: f64, now: f64) {
        self.maybe_prune(now);
        if expires <= now {
            return;
        }
        let e = self.jti.entry(jti.into()).or_insert(expires);
        *e = e.max(expires);
    }

    /// Revokes `sub`'s tokens issued before `before` (keeps the later T of two).
    pub fn revoke_sub(&mut self, sub: &str, before: f64, expires: f64, now: f64) {
        self.maybe_prune(now);
        if expires <= now {
            return;
        }
        let e = self.sub.entry(sub.into()).or_insert((before, expires));
        if before >= e.0 {
            *e = (before, expires.max(e.1));
        }
    }

    /// Whether a token with these claims is revoked at `now`.
    #[must_use]
    pub fn is_revoked(
        &self,
        jti: Option<&str>,
        sub: Option<&str>,
        iat: Option<f64>,
        now: f64,
    ) -> bool {
        if let Some(exp) = jti.and_then(|j| self.jti.get(j)) {
            if now < *exp {
                return true;
            }
        }
        if let Some((before, exp)) = sub.and_then(|s| self.sub.get(s)) {
            if now < *exp && iat.is_none_or(|i| i < *before) {
                return true;
            }
        }
        false
    }

    fn maybe_prune(&mut self, now: f64) {
        if now - self.last_prune >= PRUNE_EVERY_SECS {
            self.prune(now);
        }
    }

    /// Drops expired entries.
    pub fn prune(&mut self, now: f64) {
        self.last_prune = now;
        self.jti.retain(|_, e| now < *e);
        self.sub.retain(|_, (_, e)| now < *e);
    }

    /// Entries held (expired ones included until the next prune).
    #[must_use]
    pub fn len(&self) -> (usize, usize) {
        (self.jti.len(), self.sub.len())
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.jti.is_empty() && self.sub.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};

    #[test]
    fn jti_entries_expire_with_the_token() {
        let clock = ManualClock::from_secs(1000);
        let now = clock.now_secs_f64();
        let mut l = LocalList::default();
        l.revoke_jti("a", 1010.0, now);
        l.revoke_jti("gone", 999.0, now);
        assert!(l.is_revoked(Some("a"), None, None, now));
        assert!(!l.is_revoked(Some("b"), None, None, now));
        assert!(!l.is_revoked(Some("gone"), None, None, now));
        clock.advance_nanos(9_999_000_000);
        assert!(l.is_revoked(Some("a"), None, None, clock.now_secs_f64()));
        clock.advance_nanos(1_000_000);
        assert!(!l.is_revoked(Some("a"), None, None, clock.now_secs_f64()));
        // a later expiry wins; the sweep drops what has expired
        l.revoke_jti("a", 2000.0, clock.now_secs_f64());
        assert!(l.is_revoked(Some("a"), None, None, 1500.0));
        l.revoke_jti("a", 1200.0, 1500.0);
        assert!(l.is_revoked(Some("a"), None, None, 1900.0));
        l.prune(3000.0);
        assert!(l.is_empty());
        assert_eq!(l.len(), (0, 0));
    }

    #[test]
    fn subject_before_t() {
        let mut l = LocalList::default();
        l.revoke_sub("u", 100.0, f64::INFINITY, 50.0);
        assert!(l.is_revoked(None, Some("u"), Some(99.0), 150.0));
        assert!(l.is_revoked(None, Some("u"), Some(99.999), 150.0));
        assert!(
            !l.is_revoked(None, Some("u"), Some(100.0), 150.0),
            "iat == T passes"
        );
        assert!(!l.is_revoked(None, Some("u"), Some(120.0), 150.0));
        assert!(
            l.is_revoked(None, Some("u"), None, 150.0),
            "no iat: refused"
        );
        assert!(!l.is_revoked(None, Some("v"), None, 150.0));
        // an earlier T never un-revokes; a later one extends
        l.revoke_sub("u", 90.0, f64::INFINITY, 150.0);
        assert!(l.is_revoked(None, Some("u"), Some(95.0), 150.0));
        l.revoke_sub("u", 200.0, f64::INFINITY, 150.0);
        assert!(l.is_revoked(None, Some("u"), Some(150.0), 150.0));
        // with an expiry (subject_ttl), the entry ends
        let mut l = LocalList::default();
        l.revoke_sub("u", 100.0, 160.0, 100.0);
        assert!(l.is_revoked(None, Some("u"), Some(10.0), 159.0));
        assert!(!l.is_revoked(None, Some("u"), Some(10.0), 160.0));
    }

    #[test]
    fn prune_runs_on_writes_after_a_while() {
        let mut l = LocalList::default();
        l.revoke_jti("a", 10.0, 0.0);
        l.revoke_jti("b", 1000.0, 5.0);
        assert_eq!(l.len(), (2, 0));
        l.revoke_jti("c", 1000.0, 70.0);
        assert_eq!(l.len(), (2, 0), "a was swept");
    }
}
