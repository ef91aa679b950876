//! Token verification: our own parsing and header/claims validation around the signature check.
//!
//! Why not `jsonwebtoken::Validation`: it ignores `crit`, accepts a non-string `iss` and a
//! malformed `aud`, lets a missing `aud` pass when one is configured, accepts a token at exactly
//! `exp`, rounds fractional `exp`, defaults to 60 s of leeway with `nbf` unchecked, can overflow on
//! a large leeway and has no ES512. Signatures are checked by jsonwebtoken on the keys it loaded
//! (ES512 on aws-lc-rs, see [`super::keys::Material`]); everything else in a token is read here.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;

use super::alg::Algorithm;
use super::error::{KeyError, TokenError};
use super::keys::{Key, b64url};
use crate::bounded::Bounded;
use crate::clock::SharedClock;
use crate::json::{Object, ObjectError, parse_object};

pub use crate::json::Claims;

/// Where keys come from: a fixed set, or a JWKS endpoint that may refresh.
pub trait KeySource: Send + Sync + std::fmt::Debug {
    /// The current keys (possibly stale: stale keys beat no keys during an outage).
    fn keys(&self) -> Arc<Vec<Key>>;
    /// A token names a `kid` we do not have: refetch if the cooldown allows, and return the keys.
    fn refresh_for_unknown_kid(&self) -> Option<Arc<Vec<Key>>> {
        None
    }
    /// Changes whenever the key set changes (so refusals cached under old keys can be dropped).
    fn version(&self) -> u64 {
        0
    }
    /// Whether `keys` may do network I/O.
    fn may_fetch(&self) -> bool {
        false
    }
}

/// A fixed key set.
#[derive(Debug)]
pub struct StaticKeys(pub Arc<Vec<Key>>);

impl KeySource for StaticKeys {
    fn keys(&self) -> Arc<Vec<Key>> {
        self.0.clone()
    }
}

/// What is checked besides the signature.
#[derive(Debug, Clone)]
pub struct Validation {
    /// The verifier's allow-list; the token's `alg` must be in it. Never the token's choice.
    pub algorithms: Vec<Algorithm>,
    /// Accepted `iss` values; empty: `iss` is not checked.
    pub issuers: Vec<String>,
    /// Accepted `aud` values; empty: a token that carries `aud` is refused (RFC 7519 §4.1.3).
    pub audiences: Vec<String>,
    /// Seconds of clock skew allowed on `exp`, `nbf` and `iat`. Default 0.
    pub leeway: f64,
    pub required_claims: Vec<String>,
    pub verify_exp: bool,
    /// Refuse a token without `exp` (the gate's default: a token that never expires outlives
    /// every rotation and revocation list).
    pub require_exp: bool,
    /// Which kind of token this verifier accepts (an access token, never a refresh token).
    pub token_type: Option<TokenType>,
    pub max_token_bytes: usize,
    /// Verified-token cache entries (0 disables the cache).
    pub cache_size: u64,
}

impl Default for Validation {
    fn default() -> Self {
        Self {
            algorithms: Vec::new(),
            issuers: Vec::new(),
            audiences: Vec::new(),
            leeway: 0.0,
            required_claims: Vec::new(),
            verify_exp: true,
            require_exp: false,
            token_type: None,
            max_token_bytes: 8192,
            cache_size: 10_000,
        }
    }
}

/// The claim that says what a token is for, as simplejwt's `token_type` (`access`/`refresh`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenType {
    pub claim: String,
    pub expected: String,
    /// A token without the claim is refused (true when verifying refresh tokens); otherwise it
    /// passes, as tokens from most identity providers carry no such claim.
    pub required: bool,
    /// Another claim that names refresh tokens (`type = "refresh"`, as Flask-JWT-Extended
    /// writes): such a token is refused too. Set by the gate's defaults, so refresh tokens issued
    /// before a migration never become access tokens.
    pub refresh_marker: Option<String>,
}

/// Nesting allowed in a header and in claims.
const HEADER_DEPTH: usize = 4;
const CLAIMS_DEPTH: usize = 16;
/// The longest a verified token stays cached, whatever its `exp`.
const CACHE_TTL: Duration = Duration::from_secs(600);
/// How long a refusal is remembered.
const NEGATIVE_TTL: Duration = Duration::from_secs(60);

/// Numbers [`Verified::id`].
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A verified token: its claims and time bounds, re-checked on every cache hit.
pub struct Verified {
    pub claims: Arc<Claims>,
    pub alg: Algorithm,
    /// The key-set version it was verified under: a rotation invalidates cached verifications.
    version: u64,
    exp: Option<f64>,
    nbf: Option<f64>,
    iat: Option<f64>,
    /// Unique in the process: what a binding keys its own rendering of the claims by (a Python
    /// dict), so the core holds nothing of the binding's.
    id: u64,
    uses: AtomicU32,
}

impl Verified {
    /// `exp`, when the token has one.
    #[must_use]
    pub fn exp(&self) -> Option<f64> {
        self.exp
    }

    /// `iat`, when the token has one.
    #[must_use]
    pub fn iat(&self) -> Option<f64> {
        self.iat
    }

    /// This verification's number, never reused in the process.
    #[must_use]
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Counts a use; true from the second use on (when a cached rendering starts to pay).
    pub fn seen_before(&self) -> bool {
        self.uses.fetch_add(1, Ordering::Relaxed) > 0
    }
}

impl std::fmt::Debug for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verified")
            .field("alg", &self.alg)
            .field("exp", &self.exp)
            .finish_non_exhaustive()
    }
}

/// Checks tokens. `Sync`: share one across threads.
pub struct Verifier {
    validation: Validation,
    source: Arc<dyn KeySource>,
    clock: SharedClock,
    /// Verified tokens, until their `exp` (at most `CACHE_TTL`). Keyed by the whole token:
    /// the caches hash with a per-process seed, as tokens are client input.
    cache: Option<Bounded<Arc<str>, Arc<Verified>>>,
    /// Refusals that time or new keys cannot change, for `NEGATIVE_TTL`.
    refused: Option<Bounded<Arc<str>, (u64, TokenError)>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("validation", &self.validation)
            .finish_non_exhaustive()
    }
}

/// Seconds on the verifier's clock as the caches' nanoseconds (saturating; before the epoch is 0).
fn nanos(secs: f64) -> u64 {
    if secs.is_nan() || secs <= 0.0 {
        0
    } else {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // saturating cast, >= 0
        let n = (secs * 1e9) as u64;
        n
    }
}

impl Verifier {
    pub fn new(
        validation: Validation,
        source: Arc<dyn KeySource>,
        clock: SharedClock,
    ) -> Result<Self, KeyError> {
        if validation.algorithms.is_empty() {
            return Err(KeyError::Options(
                "algorithms must name at least one algorithm".into(),
            ));
        }
        if !(validation.leeway.is_finite() && validation.leeway >= 0.0) {
            return Err(KeyError::Options(
                "leeway must be a finite number of seconds >= 0".into(),
            ));
        }
        if validation.max_token_bytes < 16 {
            return Err(KeyError::Options("max_token_bytes is too small".into()));
        }
        let cache = (validation.cache_size > 0).then(|| Bounded::new(validation.cache_size));
        let refused = (validation.cache_size > 0).then(|| Bounded::new(validation.cache_size));
        Ok(Self {
            validation,
            source,
            clock,
            cache,
            refused,
        })
    }

    /// A verifier over fixed keys; every allowed algorithm must have a key of its family, which
    /// catches configurations such as `HS256` with an RSA key before they meet a token.
    pub fn with_keys(
        validation: Validation,
        keys: Vec<Key>,
        clock: SharedClock,
    ) -> Result<Self, KeyError> {
        if keys.is_empty() {
            return Err(KeyError::Options("no key given".into()));
        }
        for alg in &validation.algorithms {
            if !keys.iter().any(|k| k.accepts(*alg)) {
                return Err(KeyError::Options(format!(
                    "algorithm {alg} is allowed but no key can verify it (an {:?} key is needed)",
                    alg.family()
                )));
            }
        }
        Self::new(validation, Arc::new(StaticKeys(Arc::new(keys))), clock)
    }

    /// Whether a check may be slow enough to run without the GIL: an asymmetric algorithm, or
    /// keys that may have to be fetched.
    #[must_use]
    pub fn may_block(&self) -> bool {
        self.source.may_fetch() || self.validation.algorithms.iter().any(|a| a.is_asymmetric())
    }

    #[must_use]
    pub fn validation(&self) -> &Validation {
        &self.validation
    }

    #[must_use]
    pub fn now(&self) -> f64 {
        self.clock.now_secs_f64()
    }

    /// A cached verification of `token`, if any (time claims re-checked against `now`).
    #[must_use]
    pub fn cached(&self, token: &str, now: f64) -> Option<Result<Arc<Verified>, TokenError>> {
        let version = self.source.version();
        let at = nanos(now);
        if let Some(v) = self.cache.as_ref().and_then(|c| c.get(token, at)) {
            if v.version == version {
                return Some(self.check_time(&v, now).map(|()| v));
            }
        }
        match self.refused.as_ref().and_then(|c| c.get(token, at)) {
            Some((v, e)) if v == version => Some(Err(e)),
            _ => None,
        }
    }

    /// Verifies `token` at `now` (seconds since the epoch), using the caches.
    pub fn verify(&self, token: &str, now: f64) -> Result<Arc<Verified>, TokenError> {
        if let Some(r) = self.cached(token, now) {
            return r;
        }
        self.verify_uncached(token, now)
    }

    /// Verifies without consulting the caches, then records the outcome in them.
    pub fn verify_uncached(&self, token: &str, now: f64) -> Result<Arc<Verified>, TokenError> {
        let version = self.source.version();
        let result = self.verify_fresh(token, now, version);
        match &result {
            Ok(v) => {
                if let Some(c) = &self.cache {
                    // No later than the token's exp (checked again on every hit anyway).
                    let until = v
                        .exp
                        .map_or(f64::INFINITY, |exp| exp + self.validation.leeway);
                    let deadline = nanos(until.min(now + CACHE_TTL.as_secs_f64()));
                    c.insert(token.into(), v.clone(), deadline, 1, nanos(now));
                }
            }
            // Refusals that time or new keys cannot change are remembered briefly.
            Err(
                e @ (TokenError::Decode(_)
                | TokenError::InvalidSignature
                | TokenError::Expired
                | TokenError::InvalidAudience(_)
                | TokenError::InvalidIssuer(_)
                | TokenError::MissingClaim(_)
                | TokenError::InvalidAlgorithm(_)
                | TokenError::InvalidClaim(_)),
            ) => {
                if let Some(c) = &self.refused {
                    if token.len() <= self.validation.max_token_bytes {
                        let deadline = nanos(now + NEGATIVE_TTL.as_secs_f64());
                        c.insert(token.into(), (version, e.clone()), deadline, 1, nanos(now));
                    }
                }
            }
            Err(_) => {}
        }
        result
    }

    fn verify_fresh(
        &self,
        token: &str,
        now: f64,
        version: u64,
    ) -> Result<Arc<Verified>, TokenError> {
        let (alg, payload) = self.check_jws(token)?;
        let claims = match parse_object(&payload, CLAIMS_DEPTH) {
            Ok(m) => m,
            Err(ObjectError::NotAnObject) => {
                return Err(TokenError::Decode(
                    "the payload is not a JSON object (not a JWT)".into(),
                ));
            }
            Err(ObjectError::Invalid(e)) => {
                return Err(TokenError::Decode(format!(
                    "the payload is not valid JSON: {e}"
                )));
            }
        };
        let v = Verified {
            exp: numeric_date(&claims, "exp")?,
            nbf: numeric_date(&claims, "nbf")?,
            iat: numeric_date(&claims, "iat")?,
            claims: Arc::new(claims),
            alg,
            version,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            uses: AtomicU32::new(0),
        };
        self.check_claims(&v.claims)?;
        self.check_time(&v, now)?;
        Ok(Arc::new(v))
    }

    /// Checks a JWS (header and signature, not claims) and returns its algorithm and payload.
    pub fn check_jws(&self, token: &str) -> Result<(Algorithm, Vec<u8>), TokenError> {
        if token.len() > self.validation.max_token_bytes {
            return Err(TokenError::Decode(format!(
                "the token is larger than {} bytes",
                self.validation.max_token_bytes
            )));
        }
        let mut parts = token.split('.');
        let (Some(h64), Some(p64), Some(s64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            let n = token.split('.').count();
            return Err(TokenError::Decode(if n == 5 {
                "encrypted tokens (JWE) are not accepted".into()
            } else {
                format!("a JWS has 3 dot-separated segments, this has {n}")
            }));
        };
        let header_bytes = b64url(h64)
            .ok_or_else(|| TokenError::Decode("the header is not canonical base64url".into()))?;
        let header = match parse_object(&header_bytes, HEADER_DEPTH) {
            Ok(m) => m,
            Err(ObjectError::NotAnObject) => {
                return Err(TokenError::Decode("the header is not a JSON object".into()));
            }
            Err(ObjectError::Invalid(e)) => {
                return Err(TokenError::Decode(format!(
                    "the header is not valid JSON: {e}"
                )));
            }
        };
        let alg = self.check_header(&header)?;
        let signature = b64url(s64)
            .ok_or_else(|| TokenError::Decode("the signature is not canonical base64url".into()))?;
        let payload = b64url(p64)
            .ok_or_else(|| TokenError::Decode("the payload is not canonical base64url".into()))?;
        let message = &token.as_bytes()[..h64.len() + 1 + p64.len()];
        let kid = header.get("kid").and_then(Value::as_str);
        self.check_signature(alg, kid, message, &signature)?;
        Ok((alg, payload))
    }

    fn check_header(&self, header: &Object) -> Result<Algorithm, TokenError> {
        let alg_name = match header.get("alg") {
            Some(Value::String(s)) => s.as_str(),
            Some(_) => return Err(TokenError::Decode("\"alg\" must be a string".into())),
            None => return Err(TokenError::Decode("the header has no \"alg\"".into())),
        };
        let Ok(alg) = Algorithm::from_str(alg_name) else {
            return Err(TokenError::InvalidAlgorithm(
                if alg_name.eq_ignore_ascii_case("none") {
                    "unsigned tokens (alg \"none\") are never accepted".into()
                } else {
                    "the token's algorithm is not supported".into()
                },
            ));
        };
        if !self.validation.algorithms.contains(&alg) {
            return Err(TokenError::InvalidAlgorithm(format!(
                "the algorithm {alg} is not allowed"
            )));
        }
        // A key carried inside the token is refused. `jku`/`x5u` only point at a key: the key
        // never comes from the token here, so they are ignored (some identity providers send
        // them).
        for embedded in ["jwk", "x5c"] {
            if header.contains_key(embedded) {
                return Err(TokenError::Decode(format!(
                    "header parameter {embedded:?} (a key source inside the token) is not accepted"
                )));
            }
        }
        if let Some(crit) = header.get("crit") {
            // We implement no JWS extension, so any critical one must be refused (RFC 7515 §4.1.11).
            let valid_shape = crit
                .as_array()
                .is_some_and(|a| !a.is_empty() && a.iter().all(Value::is_string));
            return Err(TokenError::Decode(if valid_shape {
                "the token requires extensions (\"crit\") this verifier does not implement".into()
            } else {
                "\"crit\" must be a non-empty list of names".into()
            }));
        }
        if header.get("b64").is_some_and(|b| b != &Value::Bool(true)) {
            return Err(TokenError::Decode(
                "unencoded payloads (\"b64\") are not accepted".into(),
            ));
        }
        for name in ["kid", "typ", "cty"] {
            if header.get(name).is_some_and(|v| !v.is_string()) {
                return Err(TokenError::Decode(format!("{name:?} must be a string")));
            }
        }
        Ok(alg)
    }

    fn check_signature(
        &self,
        alg: Algorithm,
        kid: Option<&str>,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), TokenError> {
        let mut keys = self.source.keys();
        if let Some(kid) = kid {
            let known = |keys: &[Key]| {
                keys.iter()
                    .any(|k| k.kid.as_deref() == Some(kid) || k.kid.is_none())
            };
            if !known(&keys) {
                // Rotation: refetch once per cooldown; a storm of unknown kids costs one fetch.
                if let Some(fresh) = self.source.refresh_for_unknown_kid() {
                    keys = fresh;
                }
            }
            // A key named by `kid` is the only candidate; keys without a `kid` (a key given
            // directly) stand for any `kid`, as in PyJWT.
            if let Some(key) = keys.iter().find(|k| k.kid.as_deref() == Some(kid)) {
                if !key.accepts(alg) {
                    return Err(TokenError::InvalidAlgorithm(format!(
                        "the key named by \"kid\" cannot verify {alg}"
                    )));
                }
                return if key.verify(alg, message, signature) {
                    Ok(())
                } else {
                    Err(TokenError::InvalidSignature)
                };
            }
            if !keys.iter().any(|k| k.kid.is_none()) {
                return Err(TokenError::NoKey(
                    "no verification key has the token's \"kid\"".into(),
                ));
            }
        }
        // Without a `kid` naming one key, exactly one key may fit: trying each of several would
        // let a token signed by any of them (a staging key, a retired one) pass, and costs one
        // signature check per key on every forged token.
        let mut candidates = keys
            .iter()
            .filter(|k| (kid.is_none() || k.kid.is_none()) && k.accepts(alg));
        match (candidates.next(), candidates.next()) {
            (None, _) => Err(TokenError::NoKey(format!("no verification key for {alg}"))),
            (Some(_), Some(_)) => Err(TokenError::NoKey(format!(
                "the token names no \"kid\" and several keys could verify {alg}"
            ))),
            (Some(key), None) if key.verify(alg, message, signature) => Ok(()),
            (Some(_), None) => Err(TokenError::InvalidSignature),
        }
    }

    fn check_claims(&self, claims: &Claims) -> Result<(), TokenError> {
        let v = &self.validation;
        if !v.issuers.is_empty() {
            match claims.get("iss") {
                None => return Err(TokenError::MissingClaim("iss".into())),
                Some(Value::String(iss)) if v.issuers.iter().any(|i| i == iss) => {}
                Some(Value::String(_)) => {
                    return Err(TokenError::InvalidIssuer(
                        "the issuer is not accepted".into(),
                    ));
                }
                Some(_) => {
                    return Err(TokenError::InvalidIssuer("\"iss\" must be a string".into()));
                }
            }
        } else if claims.get("iss").is_some_and(|i| !i.is_string()) {
            return Err(TokenError::InvalidIssuer("\"iss\" must be a string".into()));
        }
        match claims.get("aud") {
            None if v.audiences.is_empty() => {}
            None => return Err(TokenError::MissingClaim("aud".into())),
            Some(aud) => {
                let values: Vec<&str> = match aud {
                    Value::String(s) => vec![s.as_str()],
                    Value::Array(items)
                        if !items.is_empty() && items.iter().all(Value::is_string) =>
                    {
                        items.iter().filter_map(Value::as_str).collect()
                    }
                    _ => {
                        return Err(TokenError::InvalidAudience(
                            "\"aud\" must be a string or a non-empty list of strings".into(),
                        ));
                    }
                };
                if v.audiences.is_empty() {
                    return Err(TokenError::InvalidAudience(
                        "the token is for an audience, and this verifier expects none".into(),
                    ));
                }
                if !values.iter().any(|a| v.audiences.iter().any(|x| x == a)) {
                    return Err(TokenError::InvalidAudience(
                        "the token is not for this audience".into(),
                    ));
                }
            }
        }
        if claims.get("sub").is_some_and(|s| !s.is_string()) {
            return Err(TokenError::InvalidClaim("\"sub\" must be a string".into()));
        }
        if claims.get("jti").is_some_and(|s| !s.is_string()) {
            return Err(TokenError::InvalidClaim("\"jti\" must be a string".into()));
        }
        if v.require_exp && !claims.contains_key("exp") {
            return Err(TokenError::MissingClaim("exp".into()));
        }
        if let Some(t) = &v.token_type {
            if let Some(marker) = &t.refresh_marker {
                if claims.get(marker.as_str()).and_then(Value::as_str) == Some("refresh") {
                    return Err(TokenError::InvalidClaim(format!(
                        "{marker:?} says this is a refresh token, not an access token"
                    )));
                }
            }
            match claims.get(t.claim.as_str()) {
                None if t.required => return Err(TokenError::MissingClaim(t.claim.clone())),
                None => {}
                Some(Value::String(s)) if *s == t.expected => {}
                Some(_) => {
                    return Err(TokenError::InvalidClaim(format!(
                        "{:?} is not {:?}: this is not an {} token",
                        t.claim, t.expected, t.expected
                    )));
                }
            }
        }
        for name in &v.required_claims {
            if !claims.contains_key(name) {
                return Err(TokenError::MissingClaim(name.clone()));
            }
        }
        Ok(())
    }

    fn check_time(&self, v: &Verified, now: f64) -> Result<(), TokenError> {
        let leeway = self.validation.leeway;
        if self.validation.verify_exp {
            if let Some(exp) = v.exp {
                // Valid only strictly before exp (RFC 7519 §4.1.4); no rounding of fractions.
                if now >= exp + leeway {
                    return Err(TokenError::Expired);
                }
            }
        }
        if let Some(nbf) = v.nbf {
            if now + leeway < nbf {
                return Err(TokenError::Immature("nbf"));
            }
        }
        if let Some(iat) = v.iat {
            if iat > now + leeway {
                return Err(TokenError::Immature("iat is in the future"));
            }
        }
        Ok(())
    }
}

/// A `NumericDate` claim (RFC 7519 §2): a JSON number; a string, even of digits, is not one.
fn numeric_date(claims: &Claims, name: &str) -> Result<Option<f64>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(x) if x.is_finite() => Ok(Some(x)),
            _ => Err(TokenError::InvalidClaim(format!(
                "{name:?} is out of range"
            ))),
        },
        Some(_) => Err(TokenError::InvalidClaim(format!(
            "{name:?} must be a number (NumericDate)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use serde_json::{Map, json};

    fn verifier(cache_size: u64) -> Verifier {
        let validation = Validation {
            algorithms: vec![Algorithm::HS256],
            cache_size,
            ..Default::default()
        };
        let key = Key::hmac(b"k", None).unwrap();
        Verifier::with_keys(validation, vec![key], Arc::new(ManualClock::from_secs(0))).unwrap()
    }

    fn token(claims: &Value, secret: &[u8]) -> String {
        let Value::Object(claims) = claims else {
            panic!("claims must be an object")
        };
        crate::auth::encode::encode(claims, secret, Algorithm::HS256, &Map::new()).unwrap()
    }

    #[test]
    fn a_verified_token_is_cached_until_its_exp() {
        let v = verifier(100);
        let t = token(&json!({"sub": "ann", "exp": 1500}), b"k");
        assert!(v.cached(&t, 1000.0).is_none());
        let first = v.verify(&t, 1000.0).unwrap();
        let hit = v.cached(&t, 1499.0).expect("cached").unwrap();
        assert!(
            Arc::ptr_eq(&first, &hit),
            "a hit hands back the same verification"
        );
        assert!(v.cached(&t, 1500.0).is_none(), "gone at exp");
        assert!(matches!(v.verify(&t, 1500.0), Err(TokenError::Expired)));
    }

    #[test]
    fn a_token_without_exp_stays_at_most_the_cache_ttl() {
        let v = verifier(100);
        let t = token(&json!({"sub": "ann"}), b"k");
        v.verify(&t, 1000.0).unwrap();
        let ttl = CACHE_TTL.as_secs_f64();
        assert!(v.cached(&t, 1000.0 + ttl - 1.0).is_some());
        assert!(v.cached(&t, 1000.0 + ttl).is_none());
    }

    #[test]
    fn a_refusal_is_remembered_for_the_negative_ttl() {
        let v = verifier(100);
        let forged = token(&json!({"sub": "eve"}), b"not-the-key");
        assert!(matches!(
            v.verify(&forged, 1000.0),
            Err(TokenError::InvalidSignature)
        ));
        let ttl = NEGATIVE_TTL.as_secs_f64();
        assert!(matches!(
            v.cached(&forged, 1000.0 + ttl - 1.0),
            Some(Err(TokenError::InvalidSignature))
        ));
        assert!(v.cached(&forged, 1000.0 + ttl).is_none());
    }

    #[test]
    fn the_caches_stay_within_cache_size() {
        let v = verifier(8);
        let hot = token(&json!({"sub": "hot"}), b"k");
        v.verify(&hot, 1000.0).unwrap();
        for i in 0..100 {
            assert!(v.cached(&hot, 1000.0).is_some(), "hot token lost at {i}");
            let sub = format!("user-{i}");
            v.verify(&token(&json!({ "sub": sub }), b"k"), 1000.0)
                .unwrap();
            v.verify(&token(&json!({ "sub": sub }), b"x"), 1000.0)
                .unwrap_err();
        }
        assert!(v.cache.as_ref().unwrap().len() <= 8);
        assert!(v.refused.as_ref().unwrap().len() <= 8);
        let off = verifier(0);
        off.verify(&hot, 1000.0).unwrap();
        assert!(
            off.cached(&hot, 1000.0).is_none(),
            "cache_size 0 turns the cache off"
        );
    }

    fn with(validation: Validation, keys: Vec<Key>) -> Verifier {
        let validation = Validation {
            algorithms: vec![Algorithm::HS256],
            ..validation
        };
        Verifier::with_keys(validation, keys, Arc::new(ManualClock::from_secs(0))).unwrap()
    }

    #[test]
    fn without_a_kid_exactly_one_key_may_fit() {
        let two = || {
            vec![
                Key::hmac(b"k", None).unwrap(),
                Key::hmac(b"retired", None).unwrap(),
            ]
        };
        let v = with(Validation::default(), two());
        // Signed with the second key: trying each key would accept it.
        let t = token(&json!({"sub": "ann"}), b"retired");
        let err = v.verify(&t, 1000.0).unwrap_err();
        assert!(
            matches!(&err, TokenError::NoKey(m) if m.contains("several keys")),
            "{err:?}"
        );
        // An unknown kid falls back on the kid-less keys: still two, still refused.
        let mut header = Map::new();
        header.insert("kid".into(), json!("other"));
        let Value::Object(claims) = json!({"sub": "ann"}) else {
            unreachable!()
        };
        let named = crate::auth::encode::encode(&claims, b"k", Algorithm::HS256, &header).unwrap();
        assert!(matches!(
            v.verify(&named, 1000.0),
            Err(TokenError::NoKey(_))
        ));
        // Two keys, one of them bound to another algorithm: one candidate.
        let mut keys = two();
        keys[1].alg = Some(Algorithm::HS512);
        let v = with(Validation::default(), keys);
        v.verify(&token(&json!({"sub": "ann"}), b"k"), 1000.0)
            .unwrap();
    }

    #[test]
    fn require_exp_refuses_a_token_that_never_expires() {
        let v = with(
            Validation {
                require_exp: true,
                ..Default::default()
            },
            vec![Key::hmac(b"k", None).unwrap()],
        );
        let err = v
            .verify(&token(&json!({"sub": "ann"}), b"k"), 1000.0)
            .unwrap_err();
        assert!(matches!(&err, TokenError::MissingClaim(c) if c == "exp"));
        v.verify(&token(&json!({"sub": "ann", "exp": 2000}), b"k"), 1000.0)
            .unwrap();
    }

    #[test]
    fn the_token_type_claim_must_match_when_present_or_required() {
        let kind = |required| TokenType {
            claim: "token_type".into(),
            expected: "access".into(),
            required,
            refresh_marker: None,
        };
        let v = with(
            Validation {
                token_type: Some(kind(false)),
                ..Default::default()
            },
            vec![Key::hmac(b"k", None).unwrap()],
        );
        let refresh = token(&json!({"sub": "ann", "token_type": "refresh"}), b"k");
        assert!(matches!(
            v.verify(&refresh, 1000.0),
            Err(TokenError::InvalidClaim(_))
        ));
        let odd = token(&json!({"sub": "ann", "token_type": ["access"]}), b"k");
        assert!(v.verify(&odd, 1000.0).is_err());
        v.verify(
            &token(&json!({"sub": "ann", "token_type": "access"}), b"k"),
            1000.0,
        )
        .unwrap();
        v.verify(&token(&json!({"sub": "ann"}), b"k"), 1000.0)
            .unwrap();
        let strict = with(
            Validation {
                token_type: Some(kind(true)),
                ..Default::default()
            },
            vec![Key::hmac(b"k", None).unwrap()],
        );
        assert!(matches!(
            strict.verify(&token(&json!({"sub": "ann"}), b"k"), 1000.0),
            Err(TokenError::MissingClaim(_))
        ));
    }
}
