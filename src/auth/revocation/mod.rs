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

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

pub mod list;
pub mod settings;

pub use list::LocalList;
pub use settings::{Check, OnError, RevocationSettings};

use super::error::TokenError;
use super::verifier::{Verified, Verifier};
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

/// The pub/sub channel (after the prefix).
pub const CHANNEL: &str = "revocations";
/// How many fields one HSCAN step asks for.
const SCAN_COUNT: u64 = 1000;

/// Records one revocation, keeping the later of the stored value and this one (a jti's expiry, a
/// subject's T), and deletes up to 100 expired entries. Returns the value kept.
///
/// KEYS: entries (hash), expiry (sorted set). ARGV: field; value ('' for a subject: Redis's time
/// plus the leeway; a jti: its expiry, '0' for none); leeway; lifetime (a subject: seconds after
/// T, '' for none; a jti: '').
const REVOKE_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. string.format('%.6f', now), 'LIMIT', 0, 100)
if #old > 0 then
  redis.call('HDEL', KEYS[1], unpack(old))
  redis.call('ZREM', KEYS[2], unpack(old))
end
local field = ARGV[1]
local value = ARGV[2]
if value == '' then value = string.format('%.6f', now + tonumber(ARGV[3])) end
local cur = redis.call('HGET', KEYS[1], field)
local expiry
if string.sub(field, 1, 2) == 'j:' then
  -- '0' stands for no expiry, the latest of all
  if cur and (cur == '0' or (value ~= '0' and tonumber(cur) >= tonumber(value))) then value = cur end
  expiry = value == '0' and '+inf' or value
else
  if cur and tonumber(cur) >= tonumber(value) then value = cur end
  expiry = ARGV[4] == '' and '+inf' or string.format('%.6f', tonumber(value) + tonumber(ARGV[4]))
end
redis.call('HSET', KEYS[1], field, value)
redis.call('ZADD', KEYS[2], expiry, field)
return value
";

/// The hash field of a jti.
fn jti_field(jti: &str) -> String {
    let mut f = String::with_capacity(jti.len() + 2);
    f.push_str("j:");
    f.push_str(jti);
    f
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

    /// One round trip: whether the jti is listed, and the subject's T (`sub`: its field).
    fn ask(&self, jti: Option<&str>, sub: Option<&str>) -> Result<(bool, Option<f64>), StoreError> {
        let (found, before): (Option<String>, Option<String>) = self.redis.run(|con| {
            redis::cmd("HMGET")
                .arg(&self.entries_key)
                .arg(jti.map_or_else(|| "j:".to_owned(), jti_field))
                .arg(sub.unwrap_or("s:"))
                .query(con)
        })?;
        let found = jti.is_some() && found.is_some();
        let before = sub.and(before).and_then(|t| parse_secs(&t));
        Ok((found, before))
    }

    /// Runs the revoke script on `field`; returns the value Redis kept.
    fn store(&self, field: &str, value: &str, lifetime: &str) -> Result<String, StoreError> {
        let script = redis::Script::new(REVOKE_SCRIPT);
        let leeway = secs_text(self.leeway);
        self.redis.run(|con| {
            script
                .key(&self.entries_key)
                .key(&self.expiry_key)
                .arg(field)
                .arg(value)
                .arg(&leeway)
                .arg(lifetime)
                .invoke(con)
        })
    }

    /// Revokes a `jti` until `exp` (plus the leeway; `None`: no expiry). Applies to this process
    /// at once, then is stored and published; an `Err` means the other processes were not told
    /// (this one still refuses the token).
    pub fn revoke_jti(&self, jti: &str, exp: Option<f64>) -> Result<(), StoreError> {
        let now = self.now();
        let expires = exp.map_or(f64::INFINITY, |e| e + self.leeway);
        if expires <= now {
            return Ok(()); // expired already: nothing will accept it
        }
        self.list
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .revoke_jti(jti, expires, now);
        let value = if expires.is_finite() {
            secs_text(expires)
        } else {
            "0".to_owned()
        };
        self.store(&jti_field(jti), &value, "")?;
        let msg = serde_json::json!({"jti": jti, "expires": secs_value(expires)});
        self.redis.publish(CHANNEL, msg.to_string().as_bytes())?;
        Ok(())
    }

    /// Revokes every token of `sub` from `issuer` (see [`Self::subject_issuer`]) issued before
    /// `before` (default: Redis's clock plus the leeway); returns T.
    pub fn revoke_sub(
        &self,
        sub: &str,
        issuer: &str,
        before: Option<f64>,
    ) -> Result<f64, StoreError> {
        let now = self.now();
        let field = self.subject_field(Some(issuer), sub);
        // Until Redis answers, this process refuses by its own clock.
        let local = before.unwrap_or(now + self.leeway);
        self.list
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .revoke_sub(&field, local, self.subject_expiry(local), now);
        if before.is_some_and(|b| self.subject_expiry(b) <= now) {
            return Ok(local);
        }
        let lifetime = self
            .settings
            .subject_ttl
            .map_or_else(String::new, |d| secs_text(d.as_secs_f64()));
        let kept = self.store(
            &field,
            &before.map_or_else(String::new, secs_text),
            &lifetime,
        )?;
        let t = parse_secs(&kept)
            .ok_or_else(|| StoreError::Protocol(format!("revocation script returned {kept:?}")))?;
        let expires = self.subject_expiry(t);
        self.list
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .revoke_sub(&field, t, expires, now);
        let msg = serde_json::json!({"subject": field, "before": secs_value(t), "expires": secs_value(expires)});
        self.redis.publish(CHANNEL, msg.to_string().as_bytes())?;
        Ok(t)
    }

    /// A message from the channel: `{"jti", "expires"}` or `{"subject", "before", "expires"}`
    /// (`subject`: the subject's field, see [`Self::subject_field`]).
    pub fn apply_message(&self, payload: &[u8]) {
        let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(payload) else {
            return;
        };
        let now = self.now();
        let expires = m.get("expires").and_then(secs_of).unwrap_or(f64::INFINITY);
        let mut list = self.list.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(j) = m.get("jti").and_then(Value::as_str) {
            list.revoke_jti(j, expires, now);
        } else if let (Some(s), Some(t)) = (
            m.get("subject").and_then(Value::as_str),
            m.get("before").and_then(secs_of),
        ) {
            list.revoke_sub(s, t, expires, now);
        }
    }

    /// Loads every entry from Redis into the local copy (added to what it holds: revocations
    /// only ever end by expiring). Runs on the subscriber thread after each (re)connect.
    fn reload(&self, client: &RedisClient) {
        let Some(conn) = client.subscriber_connection() else {
            return;
        };
        // The circuit breaker may still be open from the outage the subscriber just came back
        // from: keep trying past its cooldown (one of these calls is then its probe), bounded.
        let cooldown = client.settings().breaker_cooldown;
        let give_up = Instant::now() + (cooldown * 3).max(Duration::from_secs(10));
        let mut delay = Duration::from_millis(50);
        loop {
            match self.fetch_all() {
                Ok((jtis, subs, overflow)) => {
                    let now = self.now();
                    let mut list = self.list.write().unwrap_or_else(PoisonError::into_inner);
                    for (j, expires) in jtis {
                        list.revoke_jti(&j, expires, now);
                    }
                    for (s, t) in subs {
                        list.revoke_sub(&s, t, self.subject_expiry(t), now);
                    }
                    drop(list);
                    self.overflow.store(overflow, Ordering::Release);
                    self.loaded_on.store(conn, Ordering::Release);
                    self.loaded_pid.store(std::process::id(), Ordering::Release);
                    return;
                }
                Err(_) if Instant::now() < give_up => {
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
                // Untrusted until the next (re)connect: `on_error` decides meanwhile.
                Err(_) => return,
            }
        }
    }

    /// Every jti entry (with its expiry) and subject entry (its field, with its T), at most
    /// `max_entries`; true when there were more. One `HSCAN` of the list's own hash: O(list).
    #[allow(clippy::type_complexity)]
    fn fetch_all(&self) -> Result<(Vec<(String, f64)>, Vec<(String, f64)>, bool), StoreError> {
        let max = self.settings.max_entries;
        let fields = self.redis.run(|con| {
            let mut out: Vec<(String, String)> = Vec::new();
            let mut cursor: u64 = 0;
            loop {
                let (next, page): (u64, Vec<(String, String)>) = redis::cmd("HSCAN")
                    .arg(&self.entries_key)
                    .arg(cursor)
                    .arg("COUNT")
                    .arg(SCAN_COUNT)
                    .query(con)?;
                out.extend(page);
                if next == 0 || out.len() > max {
                    return Ok(out);
                }
                cursor = next;
            }
        })?;
        let overflow = fields.len() > max;
        let (mut jtis, mut subs) = (Vec::new(), Vec::new());
        for (field, value) in fields.into_iter().take(max) {
            if let Some(jti) = field.strip_prefix("j:") {
                // "0" (or anything that is not a time) stands for "no expiry".
                let e = parse_secs(&value)
                    .filter(|e| *e > 0.0)
                    .unwrap_or(f64::INFINITY);
                jtis.push((jti.to_owned(), e));
            } else if let (true, Some(t)) = (field.starts_with("s:"), parse_secs(&value)) {
                subs.push((field, t));
            }
        }
        Ok((jtis, subs, overflow))
    }
}

/// The `jti` and `exp` of a token given to `revoke_token`, after checking its signature (a
/// forged token is refused anyway; its claims are not to be believed).
pub fn jti_of_token(verifier: &Verifier, token: &str) -> Result<(String, Option<f64>), TokenError> {
    let (_, payload) = verifier.check_jws(token)?;
    let claims: Map<String, Value> = match serde_json::from_slice(&payload) {
        Ok(Value::Object(m)) => m,
        _ => {
            return Err(TokenError::Decode(
                "the payload is not a JSON object".into(),
            ));
        }
    };
    let jti = match claims.get("jti") {
        Some(Value::String(j)) if !j.is_empty() => j.clone(),
        Some(_) => return Err(TokenError::InvalidClaim("\"jti\" must be a string".into())),
        None => return Err(TokenError::MissingClaim("jti".into())),
    };
    Ok((jti, claims.get("exp").and_then(Value::as_f64)))
}

/// Whether `s` is shaped like a JWS compact serialisation (three base64url segments, the first
/// a JSON object) rather than a bare `jti`.
#[must_use]
pub fn looks_like_jws(s: &str) -> bool {
    let mut parts = s.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(_), Some(_), None) => {
            super::keys::b64url(h).is_some_and(|b| b.first() == Some(&b'{'))
        }
        _ => false,
    }
}

fn parse_secs(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|x| x.is_finite())
}

fn secs_text(x: f64) -> String {
    format!("{x}")
}

/// An instant in a message: text, which Rust writes and reads back exactly (`serde_json`'s float
/// parsing may be one unit in the last place off, enough to move an expiry past `now`).
fn secs_value(x: f64) -> Value {
    if x.is_finite() {
        Value::from(secs_text(x))
    } else {
        Value::Null
    }
}

fn secs_of(v: &Value) -> Option<f64> {
    match v {
        Value::String(s) => parse_secs(s),
        other => other.as_f64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
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
