//! Keys from a JWKS URL (or an OIDC issuer's discovery document), kept fresh without ever
//! turning an identity-provider outage or a flood of unknown `kid`s into a flood of fetches:
//!
//! - fetched once at start, then refreshed in the background before the keys expire (after
//!   `Cache-Control: max-age`, clamped to `[min_ttl, max_ttl]`);
//! - single-flight: one fetch at a time, concurrent callers share its result;
//! - a token with an unknown `kid` triggers at most one refetch per `kid_cooldown` (a governor
//!   limiter of one cell per cooldown, on the source's clock);
//! - a failed refresh keeps the keys we have (stale-if-error) and retries after `retry_after`.
//!
//! The HTTP request itself is a [`Fetcher`]: the Python layer supplies one (urllib, so https and
//! the system's CA store work as in any Python app), tests supply fakes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::Duration;

use governor::clock::Clock as GovernorClock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use serde_json::Value;

use super::error::KeyError;
use super::keys::{Key, keys_from_jwks};
use super::verifier::KeySource;
use crate::clock::SharedClock;

/// One HTTP GET.
pub trait Fetcher: Send + Sync + std::fmt::Debug {
    /// Returns the body and the `Cache-Control` header of a 200 response; anything else is an error.
    fn get(&self, url: &str, timeout: Duration) -> Result<(Vec<u8>, Option<String>), String>;
}

/// Timing of a JWKS source.
#[derive(Debug, Clone)]
pub struct JwksTiming {
    pub default_ttl: Duration,
    pub min_ttl: Duration,
    pub max_ttl: Duration,
    pub kid_cooldown: Duration,
    pub retry_after: Duration,
    pub timeout: Duration,
}

impl Default for JwksTiming {
    fn default() -> Self {
        Self {
            default_ttl: Duration::from_secs(300),
            min_ttl: Duration::from_secs(60),
            max_ttl: Duration::from_secs(86_400),
            kid_cooldown: Duration::from_secs(60),
            retry_after: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
        }
    }
}

/// Where the JWKS is.
#[derive(Debug, Clone)]
pub enum Location {
    Url(String),
    /// An OIDC issuer: the JWKS URL is read from `{issuer}/.well-known/openid-configuration`.
    Issuer(String),
}

#[derive(Debug, Default)]
struct State {
    keys: Arc<Vec<Key>>,
    jwks_url: Option<String>,
    /// Nanoseconds (clock time) at which to refresh.
    refresh_at: u64,
    /// Earliest time a fetch may be tried again after a failure.
    next_retry: u64,
    last_error: Option<String>,
    fetches: u64,
}

#[derive(Debug)]
struct Inner {
    location: Location,
    fetcher: Arc<dyn Fetcher>,
    clock: SharedClock,
    timing: JwksTiming,
    /// One unknown-`kid` refetch per `kid_cooldown`; `None` when the cooldown is zero.
    kid_fetches: Option<KidLimiter>,
    state: RwLock<State>,
    fetching: Mutex<bool>,
    done: Condvar,
    version: AtomicU64,
}

/// governor reads time through this view of the source's clock, so tests move both at once.
#[derive(Debug, Clone)]
struct ClockView(SharedClock);

impl GovernorClock for ClockView {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        Nanos::from(self.0.now_nanos())
    }
}

type KidLimiter = RateLimiter<NotKeyed, InMemoryState, ClockView, NoOpMiddleware<Nanos>>;

/// A JWKS-backed [`KeySource`].
#[derive(Debug, Clone)]
pub struct Jwks(Arc<Inner>);

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Jwks {
    /// Builds the source and makes the first fetch now. A failed first fetch is not an error: the
    /// source starts empty (tokens are refused with 401, never 500) and retries.
    #[must_use]
    pub fn new(
        location: Location,
        fetcher: Arc<dyn Fetcher>,
        clock: SharedClock,
        timing: JwksTiming,
    ) -> Self {
        let kid_fetches = Quota::with_period(timing.kid_cooldown)
            .map(|q| RateLimiter::direct_with_clock(q, ClockView(clock.clone())));
        let jwks = Jwks(Arc::new(Inner {
            location,
            fetcher,
            clock,
            kid_fetches,
            timing,
            state: RwLock::new(State::default()),
            fetching: Mutex::new(false),
            done: Condvar::new(),
            version: AtomicU64::new(0),
        }));
        jwks.0.fetch_single_flight();
        jwks
    }

    /// The last fetch error, if the last fetch failed.
    #[must_use]
    pub fn last_error(&self) -> Option<String> {
        self.0.read().last_error.clone()
    }

    /// How many fetches were made (JWKS and discovery documents).
    #[must_use]
    pub fn fetches(&self) -> u64 {
        self.0.read().fetches
    }

    /// Fetches now if nothing is in flight (used by tests and by the background refresh).
    pub fn refresh(&self) {
        self.0.fetch_single_flight();
    }
}

impl Inner {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs one fetch, or waits for the one in flight. Returns when a fetch has completed.
    fn fetch_single_flight(&self) {
        {
            let mut busy = self
                .fetching
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if *busy {
                while *busy {
                    busy = self
                        .done
                        .wait(busy)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
                return;
            }
            *busy = true;
        }
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.fetch_now()));
        let now = self.clock.now_nanos();
        {
            let mut st = self.write();
            match outcome {
                Ok(Ok((keys, ttl))) => {
                    st.keys = Arc::new(keys);
                    // Refresh ahead: at 80% of the lifetime, so the keys never lapse while in use.
                    st.refresh_at = now.saturating_add(nanos(ttl) / 5 * 4);
                    st.last_error = None;
                    self.version.fetch_add(1, Ordering::SeqCst);
                }
                Ok(Err(e)) => {
                    st.last_error = Some(e.to_string());
                    st.next_retry = now.saturating_add(nanos(self.timing.retry_after));
                }
                Err(_) => {
                    st.last_error = Some("internal error while fetching keys".into());
                    st.next_retry = now.saturating_add(nanos(self.timing.retry_after));
                }
            }
        }
        let mut busy = self
            .fetching
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *busy = false;
        self.done.notify_all();
    }

    fn get(&self, url: &str) -> Result<(Vec<u8>, Option<String>), KeyError> {
        self.write().fetches += 1;
        self.fetcher
            .get(url, self.timing.timeout)
            .map_err(|reason| KeyError::Fetch {
                url: url.to_owned(),
                reason,
            })
    }

    fn fetch_now(&self) -> Result<(Vec<Key>, Duration), KeyError> {
        let url = match &self.location {
            Location::Url(u) => u.clone(),
            Location::Issuer(issuer) => {
                let known = self.read().jwks_url.clone();
                match known {
                    Some(u) => u,
                    None => {
                        let u = self.discover(issuer)?;
                        self.write().jwks_url = Some(u.clone());
                        u
                    }
                }
            }
        };
        let (body, cache_control) = self.get(&url)?;
        let doc: Value = serde_json::from_slice(&body).map_err(|e| KeyError::Fetch {
            url: url.clone(),
            reason: format!("not JSON: {e}"),
        })?;
        let keys = keys_from_jwks(&doc).map_err(|e| KeyError::Fetch {
            url,
            reason: e.to_string(),
        })?;
        Ok((keys, self.ttl(cache_control.as_deref())))
    }

    fn discover(&self, issuer: &str) -> Result<String, KeyError> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let (body, _) = self.get(&url)?;
        let fail = |reason: String| KeyError::Fetch {
            url: url.clone(),
            reason,
        };
        let doc: Value =
            serde_json::from_slice(&body).map_err(|e| fail(format!("not JSON: {e}")))?;
        // OIDC Discovery §4.3: the document's issuer must be the one we asked about.
        if doc.get("issuer").and_then(Value::as_str) != Some(issuer) {
            return Err(fail(
                "the discovery document names a different issuer".into(),
            ));
        }
        doc.get("jwks_uri")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| fail("the discovery document has no jwks_uri".into()))
    }

    fn ttl(&self, cache_control: Option<&str>) -> Duration {
        let t = &self.timing;
        // A malformed header is no header: the default lifetime applies.
        let max_age = cache_control
            .and_then(|cc| parse_net::cache::parse(cc.as_bytes(), &parse_net::Limits::DEFAULT).ok())
            .and_then(|list| {
                list.iter().find_map(|d| {
                    let named = d.name.eq_ignore_ascii_case(b"max-age")
                        || d.name.eq_ignore_ascii_case(b"s-maxage");
                    d.value.filter(|_| named)?.as_str()?.parse::<u64>().ok()
                })
            });
        max_age.map_or(t.default_ttl, |s| {
            Duration::from_secs(s).clamp(t.min_ttl, t.max_ttl)
        })
    }
}

impl KeySource for Jwks {
    fn keys(&self) -> Arc<Vec<Key>> {
        let now = self.0.clock.now_nanos();
        let (keys, due) = {
            let st = self.0.read();
            let due = if st.keys.is_empty() {
                now >= st.next_retry
            } else {
                now >= st.refresh_at && now >= st.next_retry
            };
            (st.keys.clone(), due)
        };
        if due {
            let idle = self.0.fetching.lock().is_ok_and(|b| !*b);
            if idle {
                if keys.is_empty() {
                    // Nothing to serve with: fetch in the caller (single-flight), then answer.
                    self.0.fetch_single_flight();
                    return self.0.read().keys.clone();
                }
                let inner = self.0.clone();
                // Refresh in the background; callers keep using the current keys meanwhile.
                let spawned = std::thread::Builder::new()
                    .name("ferrogate-jwks".into())
                    .spawn(move || inner.fetch_single_flight());
                if spawned.is_err() {
                    self.0.fetch_single_flight();
                }
            }
        }
        keys
    }

    fn refresh_for_unknown_kid(&self) -> Option<Arc<Vec<Key>>> {
        let now = self.0.clock.now_nanos();
        if now < self.0.read().next_retry {
            return None;
        }
        if let Some(limiter) = &self.0.kid_fetches {
            limiter.check().ok()?;
        }
        self.0.fetch_single_flight();
        Some(self.0.read().keys.clone())
    }

    fn version(&self) -> u64 {
        self.0.version.load(Ordering::SeqCst)
    }

    fn may_fetch(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use serde_json::json;

    use super::*;
    use crate::clock::ManualClock;

    #[derive(Debug, Default)]
    struct Counting(AtomicUsize);

    impl Fetcher for Counting {
        fn get(&self, _: &str, _: Duration) -> Result<(Vec<u8>, Option<String>), String> {
            self.0.fetch_add(1, Ordering::SeqCst);
            let jwks = json!({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "a"}]});
            Ok((
                jwks.to_string().into_bytes(),
                Some(r#"public, max-age="600""#.into()),
            ))
        }
    }

    #[test]
    fn unknown_kids_refetch_once_per_cooldown_on_the_sources_clock() {
        let clock = Arc::new(ManualClock::from_secs(1_000));
        let fetcher = Arc::new(Counting::default());
        let jwks = Jwks::new(
            Location::Url("https://idp/jwks".into()),
            fetcher.clone(),
            clock.clone(),
            JwksTiming::default(),
        );
        assert_eq!(fetcher.0.load(Ordering::SeqCst), 1, "the first fetch");
        assert!(jwks.refresh_for_unknown_kid().is_some());
        for _ in 0..100 {
            assert!(jwks.refresh_for_unknown_kid().is_none());
        }
        assert_eq!(fetcher.0.load(Ordering::SeqCst), 2);
        clock.advance_nanos(59_999_999_999);
        assert!(jwks.refresh_for_unknown_kid().is_none());
        clock.advance_nanos(1);
        assert!(
            jwks.refresh_for_unknown_kid().is_some(),
            "the cooldown is over"
        );
        assert_eq!(fetcher.0.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn the_lifetime_comes_from_cache_control_quoted_or_not() {
        let jwks = Jwks::new(
            Location::Url("https://idp/jwks".into()),
            Arc::new(Counting::default()),
            Arc::new(ManualClock::from_secs(1_000)),
            JwksTiming::default(),
        );
        let ttl = |cc: &str| jwks.0.ttl(Some(cc)).as_secs();
        assert_eq!(ttl(r#"public, max-age="600""#), 600);
        assert_eq!(ttl("max-age=7200, must-revalidate"), 7200);
        assert_eq!(ttl("max-age=5"), 60, "clamped to min_ttl");
        assert_eq!(
            ttl(r#"no-cache="x, max-age=9000""#),
            300,
            "inside a quoted value"
        );
        assert_eq!(ttl(r#"max-age="9000"#), 300, "unreadable: the default");
    }
}
