//! Revoking, and the list in Redis: the script that records a revocation (keeping the later of
//! two), publishing it to the other processes, applying what they publish, the full load on each
//! (re)connect, and reading the `jti` of a token given to revoke.

use std::sync::PoisonError;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::{CHANNEL, Revocations};
use crate::auth::error::TokenError;
use crate::auth::verifier::Verifier;
use crate::shared::{RedisClient, StoreError};

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
    /// One round trip: whether the jti is listed, and the subject's T (`sub`: its field).
    pub(super) fn ask(
        &self,
        jti: Option<&str>,
        sub: Option<&str>,
    ) -> Result<(bool, Option<f64>), StoreError> {
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
    pub(super) fn reload(&self, client: &RedisClient) {
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
            crate::auth::keys::b64url(h).is_some_and(|b| b.first() == Some(&b'{'))
        }
        _ => false,
    }
}

pub(super) fn parse_secs(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|x| x.is_finite())
}

pub(super) fn secs_text(x: f64) -> String {
    format!("{x}")
}

/// An instant in a message: text, which Rust writes and reads back exactly (`serde_json`'s float
/// parsing may be one unit in the last place off, enough to move an expiry past `now`).
pub(super) fn secs_value(x: f64) -> Value {
    if x.is_finite() {
        Value::from(secs_text(x))
    } else {
        Value::Null
    }
}

pub(super) fn secs_of(v: &Value) -> Option<f64> {
    match v {
        Value::String(s) => parse_secs(s),
        other => other.as_f64(),
    }
}
