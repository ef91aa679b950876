//! Token revocation shared through Redis: a `jti` denylist and "every token of `sub` issued
//! before T", checked in the same pass as the signature.
//!
//! ```toml
//! [jwt]
//! revocation = "redis"            # or a table:
//! revocation = { store = "redis", on_error = "allow", check = "local" }
//! ```
//!
//! Storage (every name starts with `[redis] prefix`; `{revoked}` is the cluster hash tag, so both
//! keys are in one slot and a script can write them together):
//! - `{revoked}:entries`, a hash: `j:<jti>` = the entry's expiry (Unix seconds; `0` for none),
//!   and `s:["<iss>","<sub>"]` = T (Unix seconds): tokens of `sub` from `iss` with `iat` < T are
//!   refused, and so are its tokens without `iat` (nothing says when they were issued). `iss` is
//!   `""` when the gate trusts no named issuer;
//! - `{revoked}:expiry`, a sorted set of the same fields scored by expiry, from which every write
//!   deletes up to 100 expired entries, so the list cleans itself;
//! - every revocation is published on the channel `revocations`.
//!
//! The list lives in its own two keys, so loading it costs O(list) (`HSCAN` of one hash), however
//! many other keys the Redis holds. A subject's T defaults to Redis's clock plus the leeway: a
//! token issued a moment before, by a host whose clock runs ahead, is refused too.
//!
//! Each process keeps a local copy ([`LocalList`]), loaded when the subscriber (re)connects and
//! updated by the published messages, so `check = "local"` costs a hash lookup per request. A
//! revocation made in this process applies here at once; other processes apply it when the
//! message arrives (usually well under a millisecond). `check = "always"` adds one round trip per
//! request, so a revocation applies everywhere from the moment the revoking call returns.
//!
//! This module checks tokens against the list; `revoke.rs` writes, publishes and loads it,
//! `list.rs` is the local copy and `settings.rs` the setting.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod list;
pub mod revoke;
pub mod settings;

/// The pub/sub channel (after the prefix).
pub const CHANNEL: &str = "revocations";

pub use list::LocalList;
pub use settings::{Check, OnError, RevocationSettings};

use super::verifier::Verified;
use crate::blocking::Blocking;
use crate::clock::SharedClock;
use crate::shared::{RedisClient, StoreError};

/// What a check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The token is revoked: 401 `invalid_token`.
    Revoked,
    /// The status cannot be established and `on_error = "deny"`: 503.
    Unavailable(String),
}

/// A snapshot for `revocation_status()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub check: Check,
    pub on_error: OnError,
    /// The local copy was loaded on the subscriber's current connection (nothing was missed).
    pub synced: bool,
    pub tokens: usize,
    pub subjects: usize,
    /// The list in Redis had more than `max_entries` entries.
    pub overflow: bool,
}

/// The revocation list of one gate: the local copy and the way to Redis.
pub struct Revocations {
    settings: RevocationSettings,
    leeway: f64,
    clock: SharedClock,
    redis: Arc<RedisClient>,
    list: RwLock<LocalList>,
    /// The subscriber connection the copy was last loaded on (0: never).
    loaded_on: AtomicU64,
    /// Until when requests of this process wait for the first load (see `await_first_load`),
    /// and the process that deadline belongs to: a forked child has a subscriber of its own.
    first_load: Mutex<Option<(u32, Instant)>>,
    /// The process whose subscriber last completed a load (0: none).
    loaded_pid: AtomicU32,
    overflow: AtomicBool,
    /// The issuers the verifier accepts: a subject is revoked per issuer among them.
    issuers: Vec<String>,
    entries_key: String,
    expiry_key: String,
}

impl std::fmt::Debug for Revocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revocations")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Revocations {
    /// `issuers`: the issuers the verifier accepts (empty: any), by which subjects are told apart.
    #[must_use]
    pub fn new(
        settings: RevocationSettings,
        leeway: f64,
        issuers: Vec<String>,
        redis: Arc<RedisClient>,
        clock: SharedClock,
    ) -> Arc<Self> {
        Arc::new(Self {
            entries_key: redis.key("{revoked}:entries"),
            expiry_key: redis.key("{revoked}:expiry"),
            issuers,
            settings,
            leeway,
            clock,
            redis,
            list: RwLock::new(LocalList::default()),
            loaded_on: AtomicU64::new(0),
            first_load: Mutex::new(None),
            loaded_pid: AtomicU32::new(0),
            overflow: AtomicBool::new(false),
        })
    }

    /// The local list's (and the hash's) key of a subject: `s:["<iss>","<sub>"]`. The issuer
    /// counts only when the gate names the issuers it trusts; otherwise it is `""`, so an issuer
    /// claim nothing checks cannot be used to step around a revocation.
    #[must_use]
    pub fn subject_field(&self, iss: Option<&str>, sub: &str) -> String {
        let iss = if self.issuers.is_empty() {
            ""
        } else {
            iss.unwrap_or("")
        };
        let mut f = String::with_capacity(sub.len() + iss.len() + 9);
        f.push_str("s:");
        f.push_str(&Value::from(vec![iss, sub]).to_string());
        f
    }

    /// The issuer a `revoke_subject` call means: the one given (which must be trusted), else the
    /// only trusted one; with several, it has to be named.
    pub fn subject_issuer<'a>(&'a self, issuer: Option<&'a str>) -> Result<&'a str, String> {
        match (issuer, self.issuers.as_slice()) {
            (None, []) => Ok(""),
            (None, [only]) => Ok(only),
            (None, _) => Err(format!(
                "this gate trusts several issuers ({}): name the subject's issuer",
                self.issuers.join(", ")
            )),
            (Some(i), trusted) if trusted.iter().any(|t| t == i) => Ok(i),
            (Some(i), []) => Err(format!(
                "issuer {i:?} given, but this gate names no issuer: subjects are revoked for \
                 every issuer"
            )),
            (Some(i), trusted) => Err(format!(
                "issuer {i:?} is not one this gate trusts ({})",
                trusted.join(", ")
            )),
        }
    }

    #[must_use]
    pub fn settings(&self) -> &RevocationSettings {
        &self.settings
    }

    /// Subscribes to the channel (the local copy is loaded on every (re)connect) and, when Redis
    /// answers, waits (bounded) for the first load, so the first requests already see the list.
    pub fn start(self: &Arc<Self>) {
        let weak: Weak<Self> = Arc::downgrade(self);
        let on_message = weak.clone();
        self.redis.subscribe(
            CHANNEL,
            Arc::new(move |payload: &[u8]| {
                if let Some(r) = on_message.upgrade() {
                    r.apply_message(payload);
                }
            }),
            Some(Arc::new(move |client: &RedisClient| {
                if let Some(r) = weak.upgrade() {
                    r.reload(client);
                }
            })),
        );
        let deadline = Instant::now() + self.first_load_bound();
        *self
            .first_load
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((std::process::id(), deadline));
        if self.redis.ping().is_ok() {
            while !self.synced() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    /// How long a process waits for its first load: a connect and ten commands' time.
    fn first_load_bound(&self) -> Duration {
        let s = self.redis.settings();
        s.connect_timeout + s.timeout * 10
    }

    /// Until the list has been loaded once in this process, a request waits for it (bounded),
    /// rather than taking a token as unrevoked because the load has not happened yet: after a
    /// fork (gunicorn `--preload`) the child's subscriber connects and loads anew, and a request
    /// may arrive first. The deadline is per process, from `start` or from the child's first
    /// request; after it, `on_error` decides.
    fn await_first_load(&self, blocking: &dyn Blocking) {
        if self.loaded_pid.load(Ordering::Acquire) == std::process::id() {
            return; // loaded here before: this is an outage, which `on_error` is for
        }
        let deadline = {
            let mut slot = self
                .first_load
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let pid = std::process::id();
            match *slot {
                Some((p, d)) if p == pid => d,
                // Never started (no subscriber to wait for).
                None => return,
                Some(_) => {
                    let d = Instant::now() + self.first_load_bound();
                    *slot = Some((pid, d));
                    d
                }
            }
        };
        if Instant::now() >= deadline {
            return;
        }
        blocking.run(&mut || {
            while !self.synced() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
        });
    }

    fn now(&self) -> f64 {
        self.clock.now_secs_f64()
    }

    /// The local copy was loaded on the subscriber's current connection.
    #[must_use]
    pub fn synced(&self) -> bool {
        !self.overflow.load(Ordering::Acquire)
            && self.redis.subscriber_connection() == Some(self.loaded_on.load(Ordering::Acquire))
    }

    #[must_use]
    pub fn status(&self) -> Status {
        let (tokens, subjects) = self
            .list
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        Status {
            check: self.settings.check,
            on_error: self.settings.on_error,
            synced: self.synced(),
            tokens,
            subjects,
            overflow: self.overflow.load(Ordering::Acquire),
        }
    }

    fn subject_expiry(&self, before: f64) -> f64 {
        self.settings
            .subject_ttl
            .map_or(f64::INFINITY, |ttl| before + ttl.as_secs_f64())
    }

    /// Checks a verified token. `blocking` runs the round trip of `check = "always"`.
    pub fn check(&self, v: &Verified, now: f64, blocking: &dyn Blocking) -> Result<(), Refusal> {
        let jti = v.claims.get("jti").and_then(Value::as_str);
        let sub = v.claims.get("sub").and_then(Value::as_str);
        if jti.is_none() && sub.is_none() {
            return Ok(());
        }
        let field = sub.map(|s| self.subject_field(v.claims.get("iss").and_then(Value::as_str), s));
        let sub = field.as_deref();
        let iat = v.iat();
        if self.settings.check == Check::Local && !self.synced() {
            self.await_first_load(blocking);
        }
        if self
            .list
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_revoked(jti, sub, iat, now)
        {
            return Err(Refusal::Revoked);
        }
        match self.settings.check {
            Check::Local if self.synced() => Ok(()),
            Check::Local => self.on_error(
                "the revocation list may be out of date (Redis subscriber disconnected)".into(),
            ),
            Check::Always => {
                let mut out = None;
                blocking.run(&mut || out = Some(self.ask(jti, sub)));
                match out.unwrap_or_else(|| Err(StoreError::Unavailable("not run".into()))) {
                    Ok((jti_found, sub_before)) => {
                        let mut revoked = false;
                        let mut list = self.list.write().unwrap_or_else(PoisonError::into_inner);
                        if let (true, Some(j)) = (jti_found, jti) {
                            let expires = v.exp().map_or(f64::INFINITY, |e| e + self.leeway);
                            list.revoke_jti(j, expires, now);
                            revoked = true;
                        }
                        if let (Some(t), Some(s)) = (sub_before, sub) {
                            list.revoke_sub(s, t, self.subject_expiry(t), now);
                            revoked |= iat.is_none_or(|i| i < t);
                        }
                        if revoked {
                            Err(Refusal::Revoked)
                        } else {
                            Ok(())
                        }
                    }
                    Err(e) => self.on_error(e.to_string()),
                }
            }
        }
    }

    fn on_error(&self, reason: String) -> Result<(), Refusal> {
        match self.settings.on_error {
            OnError::Allow => Ok(()),
            OnError::Deny => Err(Refusal::Unavailable(reason)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::revoke::{looks_like_jws, parse_secs, secs_of, secs_text, secs_value};
    use super::*;
    use crate::auth::verifier::Verifier;
    use crate::clock::ManualClock;
    use serde_json::Map;
    use serde_json::json;

    /// A list whose Redis is unreachable (nothing listens on port 1): what it does rests on the
    /// local copy and `on_error`, on a manual clock.
    fn offline(on_error: OnError, clock: &Arc<ManualClock>) -> Arc<Revocations> {
        let shared: SharedClock = clock.clone();
        let mut redis = crate::shared::RedisSettings::from_url("redis://127.0.0.1:1/0").unwrap();
        redis.connect_timeout = Duration::from_millis(50);
        let client = Arc::new(RedisClient::new(redis, shared.clone()).unwrap());
        let settings = RevocationSettings {
            on_error,
            ..RevocationSettings::default()
        };
        Revocations::new(settings, 5.0, Vec::new(), client, shared)
    }

    fn verified(v: &Verifier, claims: &Value, now: f64) -> Arc<Verified> {
        let Value::Object(claims) = claims else {
            panic!()
        };
        let token =
            crate::auth::encode::encode(claims, b"k", crate::auth::Algorithm::HS256, &Map::new())
                .unwrap();
        v.verify(&token, now).unwrap()
    }

    #[test]
    fn check_with_redis_down_on_a_manual_clock() {
        let clock = Arc::new(ManualClock::from_secs(1_000));
        let shared: SharedClock = clock.clone();
        let validation = crate::auth::Validation {
            algorithms: vec![crate::auth::Algorithm::HS256],
            verify_exp: false,
            ..Default::default()
        };
        let key = crate::auth::keys::Key::hmac(b"k", None).unwrap();
        let v = Verifier::with_keys(validation, vec![key], shared).unwrap();
        let inplace = crate::blocking::InPlace;
        let r = offline(OnError::Allow, &clock);
        let t = verified(
            &v,
            &json!({"jti": "a", "sub": "ann", "iat": 900, "exp": 1100}),
            1000.0,
        );
        let other = verified(&v, &json!({"jti": "b", "sub": "bob"}), 1000.0);
        assert!(!r.synced());
        assert_eq!(
            r.check(&t, 1000.0, &inplace),
            Ok(()),
            "allow: not synced, not known"
        );
        // Redis is down: the call fails, and the revocation applies here all the same.
        assert!(r.revoke_jti("a", Some(1100.0)).is_err());
        assert_eq!(r.check(&t, 1000.0, &inplace), Err(Refusal::Revoked));
        assert_eq!(r.check(&other, 1000.0, &inplace), Ok(()));
        // The entry lasts until exp + leeway (5 s).
        assert_eq!(r.check(&t, 1104.999, &inplace), Err(Refusal::Revoked));
        assert_eq!(r.check(&t, 1105.0, &inplace), Ok(()));
        // Subjects: iat < T, and no iat at all.
        assert!(r.revoke_sub("bob", "", Some(950.0)).is_err());
        assert_eq!(r.check(&other, 1000.0, &inplace), Err(Refusal::Revoked));
        assert!(r.revoke_sub("ann", "", Some(900.0)).is_err());
        assert_eq!(
            r.check(&t, 1000.0, &inplace),
            Err(Refusal::Revoked),
            "jti still listed"
        );
        assert_eq!(r.check(&t, 1200.0, &inplace), Ok(()), "iat == T passes");
        assert_eq!(r.status().tokens, 1);
        assert_eq!(r.status().subjects, 2);
        // deny: a token the copy does not know is refused with "unavailable", never passed.
        let d = offline(OnError::Deny, &clock);
        assert!(matches!(
            d.check(&other, 1000.0, &inplace),
            Err(Refusal::Unavailable(_))
        ));
        // A token with neither jti nor sub can be revoked by nothing: nothing to check.
        let anon = verified(&v, &json!({"scope": "x"}), 1000.0);
        assert_eq!(d.check(&anon, 1000.0, &inplace), Ok(()));
        // Messages from other processes apply as they arrive; junk is ignored.
        d.apply_message(br#"{"jti": "b", "expires": null}"#);
        d.apply_message(
            br#"{"subject": "s:[\"\",\"cy\"]", "before": "1000.5", "expires": "2000.25"}"#,
        );
        d.apply_message(b"not json");
        d.apply_message(br#"{"sub": "x"}"#);
        assert_eq!(d.check(&other, 1000.0, &inplace), Err(Refusal::Revoked));
        assert_eq!(d.status().tokens, 1);
        assert_eq!(d.status().subjects, 1);
        assert_eq!(
            secs_of(&secs_value(1_796_112_249.767_616_3)),
            Some(1_796_112_249.767_616_3)
        );
    }

    #[test]
    fn helpers() {
        assert_eq!(parse_secs(" 12.5 "), Some(12.5));
        assert_eq!(parse_secs("inf"), None);
        assert_eq!(secs_text(1_700_000_000.25), "1700000000.25");
        assert!(looks_like_jws("eyJhbGciOiJIUzI1NiJ9.e30.c2ln"));
        assert!(!looks_like_jws("3f2a-11ee.b.c"));
        assert!(!looks_like_jws("a.b"));
        assert!(!looks_like_jws("plain-jti"));
    }
}
