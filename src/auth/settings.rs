//! The gate config's `[jwt]` section: one verifier for the gate.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use super::alg::Algorithm;
use super::jwks::{Fetcher, Jwks, JwksTiming, Location};
use super::keys::{Key, keys_from_jwks};
use super::verifier::{TokenType, Validation, Verifier};
use crate::clock::SharedClock;
use crate::issues::{Issues, join, show};

pub const KEYS: &[&str] = &[
    "algorithms",
    "key",
    "keys",
    "jwks",
    "jwks_url",
    "issuer",
    "discovery",
    "audience",
    "leeway",
    "required_claims",
    "verify_exp",
    "require_exp",
    "token_type",
    "token_type_claim",
    "token_type_required",
    "max_token_bytes",
    "cache_size",
    "realm",
    "jwks_ttl",
    "kid_cooldown",
    "timeout",
    "revocation",
];

/// Whose defaults apply. The gate's `[jwt]` is strict by default (a token must expire, must not
/// be a refresh token, and an HMAC secret must be as long as its hash); `JWTVerifier` keeps
/// `PyJWT`'s defaults, where each of these is opt-in, so code ported from `PyJWT` behaves the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Defaults {
    Gate,
    Library,
}

/// What the `[jwt]` section builds.
#[derive(Debug)]
pub struct JwtSettings {
    pub verifier: Arc<Verifier>,
    pub realm: String,
    pub jwks: Option<Jwks>,
    /// `revocation`: built by the gate, which has the Redis client.
    pub revocation: Option<super::revocation::RevocationSettings>,
}

/// One key given as config: a PEM string, an HMAC secret string, or a JWK table.
pub fn key_from_value(v: &Value, at: &str, issues: &mut Issues) -> Option<Key> {
    let built = match v {
        Value::String(s) if s.trim_start().starts_with("-----BEGIN") => Key::from_pem(s, None),
        Value::String(s) => Key::hmac(s.as_bytes(), None),
        Value::Object(m) => Key::from_jwk(m),
        other => {
            issues.push(
                at,
                format!(
                    "expected a PEM string, an HMAC secret or a JWK table, got {}",
                    show(other)
                ),
            );
            return None;
        }
    };
    built.map_err(|e| issues.push(at, e.to_string())).ok()
}

fn string_or_list(v: &Value, at: &str, issues: &mut Issues) -> Option<Vec<String>> {
    match v {
        Value::String(s) => Some(vec![s.clone()]),
        other => issues
            .strings(other, at)
            .map(|l| l.into_iter().map(str::to_owned).collect()),
    }
}

fn seconds(
    map: &Map<String, Value>,
    name: &str,
    at: &str,
    issues: &mut Issues,
) -> Option<Duration> {
    let v = map.get(name)?;
    let s = issues.non_negative(v, &join(at, name))?;
    Duration::try_from_secs_f64(s).ok()
}

/// `token_type`, `token_type_claim`, `token_type_required`: `token_type = false` turns the
/// check off.
fn token_type(
    map: &Map<String, Value>,
    at: &str,
    defaults: Defaults,
    issues: &mut Issues,
) -> Option<TokenType> {
    let expected = match map.get("token_type") {
        None if defaults == Defaults::Gate => "access".to_owned(),
        None | Some(Value::Bool(false)) => return None,
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(other) => {
            issues.push(
                join(at, "token_type"),
                format!(
                    "expected a token type such as \"access\", or false, got {}",
                    show(other)
                ),
            );
            return None;
        }
    };
    // Under the gate's defaults, Flask-JWT-Extended's refresh tokens (`type = "refresh"`) are
    // refused as well, unless the config names the claim itself.
    let refresh_marker = (defaults == Defaults::Gate && !map.contains_key("token_type_claim"))
        .then(|| "type".to_owned());
    let claim = match map.get("token_type_claim") {
        None => "token_type".to_owned(),
        Some(c) => match issues.string(c, &join(at, "token_type_claim")) {
            Some(s) if !s.is_empty() => s.to_owned(),
            Some(_) => {
                issues.push(join(at, "token_type_claim"), "must not be empty");
                return None;
            }
            None => return None,
        },
    };
    let required = map
        .get("token_type_required")
        .and_then(|r| issues.boolean(r, &join(at, "token_type_required")))
        .unwrap_or(false);
    Some(TokenType {
        claim,
        expected,
        required,
        refresh_marker,
    })
}

/// RFC 7518 §3.2: an HMAC key shorter than the hash output weakens the MAC to brute force.
fn check_secret_lengths(keys: &[Key], validation: &Validation, at: &str, issues: &mut Issues) {
    let longest = validation
        .algorithms
        .iter()
        .filter_map(|a| a.hmac_output_len().map(|n| (*a, n)))
        .max_by_key(|(_, n)| *n);
    let Some((alg, needed)) = longest else { return };
    for k in keys {
        if let Some(len) = k.secret_len.filter(|len| *len < needed) {
            issues.push(
                at,
                format!(
                    "the HMAC secret is {len} bytes; {alg} needs at least {needed} (RFC 7518 \
                     §3.2). Use a random secret of {needed}+ bytes, e.g. \
                     secrets.token_urlsafe({needed})"
                ),
            );
        }
    }
}

/// Keys without a `kid` that could verify the same algorithm: a token without `kid` then has
/// several candidates and is refused (keys are never tried in turn), so every token would be.
/// Rotating a key means naming both with a `kid`.
fn check_ambiguous_keys(keys: &[Key], validation: &Validation, at: &str, issues: &mut Issues) {
    for alg in &validation.algorithms {
        let n = keys
            .iter()
            .filter(|k| k.kid.is_none() && k.accepts(*alg))
            .count();
        if n > 1 {
            issues.push(
                at,
                format!(
                    "{n} keys without a \"kid\" can verify {alg}: tokens are never tried against \
                     each key, so give every key a kid (a JWK table with \"kid\") and sign tokens \
                     with it"
                ),
            );
            return;
        }
    }
}

/// Parses `[jwt]`. `fetcher` serves `jwks_url` and `discovery`.
#[allow(clippy::too_many_lines)] // one block per key of the table, in the order docs/configuration.md lists them
pub fn parse(
    v: &Value,
    at: &str,
    clock: &SharedClock,
    fetcher: Option<&Arc<dyn Fetcher>>,
    defaults: Defaults,
    issues: &mut Issues,
) -> Option<JwtSettings> {
    let map = issues.object(v, at)?;
    issues.unknown_keys(map, KEYS, at);
    let revocation = map.get("revocation").and_then(|r| {
        super::revocation::RevocationSettings::parse(r, &join(at, "revocation"), issues)
    });
    let before = issues.len();
    let mut validation = Validation::default();
    match map.get("algorithms") {
        None => issues.push(
            join(at, "algorithms"),
            "missing: list the algorithms you accept, e.g. [\"RS256\"]",
        ),
        Some(a) => {
            let aat = join(at, "algorithms");
            for (i, name) in issues
                .strings(a, &aat)
                .unwrap_or_default()
                .into_iter()
                .enumerate()
            {
                match Algorithm::from_str(name) {
                    Ok(alg) if !validation.algorithms.contains(&alg) => {
                        validation.algorithms.push(alg);
                    }
                    Ok(_) => {}
                    Err(()) => issues.push(
                        format!("{aat}[{i}]"),
                        format!(
                            "unknown algorithm {} (supported: {})",
                            show(&Value::from(name)),
                            Algorithm::ALL.map(Algorithm::as_str).join(", ")
                        ),
                    ),
                }
            }
            if validation.algorithms.is_empty() {
                issues.push(aat, "at least one algorithm is needed");
            }
        }
    }
    if let Some(iss) = map.get("issuer") {
        validation.issuers = string_or_list(iss, &join(at, "issuer"), issues).unwrap_or_default();
    }
    if let Some(aud) = map.get("audience") {
        validation.audiences =
            string_or_list(aud, &join(at, "audience"), issues).unwrap_or_default();
    }
    if let Some(l) = map.get("leeway") {
        validation.leeway = issues.non_negative(l, &join(at, "leeway")).unwrap_or(0.0);
    }
    if let Some(r) = map.get("required_claims") {
        validation.required_claims = issues
            .strings(r, &join(at, "required_claims"))
            .unwrap_or_default()
            .into_iter()
            .map(str::to_owned)
            .collect();
    }
    if let Some(b) = map.get("verify_exp") {
        validation.verify_exp = issues.boolean(b, &join(at, "verify_exp")).unwrap_or(true);
    }
    validation.require_exp = match map.get("require_exp") {
        Some(b) => issues.boolean(b, &join(at, "require_exp")).unwrap_or(true),
        None => defaults == Defaults::Gate,
    };
    validation.token_type = token_type(map, at, defaults, issues);
    if let Some(n) = map.get("max_token_bytes") {
        validation.max_token_bytes = issues
            .positive_int(n, &join(at, "max_token_bytes"))
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(8192);
    }
    if let Some(n) = map.get("cache_size") {
        validation.cache_size = match n.as_u64() {
            Some(x) => x,
            None => {
                issues.push(
                    join(at, "cache_size"),
                    format!("expected an integer >= 0, got {}", show(n)),
                );
                0
            }
        };
    }
    let realm = match map.get("realm") {
        Some(r) => match issues.string(r, &join(at, "realm")) {
            Some(s)
                if s.chars()
                    .all(|c| (' '..='~').contains(&c) && c != '"' && c != '\\') =>
            {
                s.to_owned()
            }
            Some(s) => {
                issues.push(
                    join(at, "realm"),
                    format!("not a valid realm: {}", show(&Value::from(s))),
                );
                String::new()
            }
            None => String::new(),
        },
        None => "api".to_owned(),
    };
    let mut timing = JwksTiming::default();
    if let Some(d) = seconds(map, "jwks_ttl", at, issues) {
        timing.default_ttl = d;
    }
    if let Some(d) = seconds(map, "kid_cooldown", at, issues) {
        timing.kid_cooldown = d;
    }
    if let Some(d) = seconds(map, "timeout", at, issues) {
        timing.timeout = d;
    }
    let sources: Vec<&str> = ["key", "keys", "jwks", "jwks_url"]
        .into_iter()
        .filter(|k| map.contains_key(*k))
        .collect();
    let discovery = match map.get("discovery") {
        Some(d) => issues.boolean(d, &join(at, "discovery")).unwrap_or(false),
        None => false,
    };
    if sources.len() + usize::from(discovery) != 1 {
        issues.push(
            at,
            "give exactly one key source: key, keys, jwks, jwks_url, or discovery = true with an issuer",
        );
        return None;
    }
    if issues.len() > before {
        return None;
    }
    let mut jwks = None;
    let verifier = if map.contains_key("jwks_url") || discovery {
        let location = if discovery {
            match validation.issuers.as_slice() {
                [one] => Location::Issuer(one.clone()),
                _ => {
                    issues.push(join(at, "issuer"), "discovery needs exactly one issuer");
                    return None;
                }
            }
        } else {
            match map
                .get("jwks_url")
                .and_then(|u| issues.string(u, &join(at, "jwks_url")))
            {
                Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
                    Location::Url(u.to_owned())
                }
                Some(u) => {
                    issues.push(
                        join(at, "jwks_url"),
                        format!("expected an http(s) URL, got {}", show(&Value::from(u))),
                    );
                    return None;
                }
                None => return None,
            }
        };
        let Some(fetcher) = fetcher else {
            issues.push(
                at,
                "fetching keys needs an HTTP fetcher (the Python package provides one)",
            );
            return None;
        };
        let source = Jwks::new(location, fetcher.clone(), clock.clone(), timing);
        jwks = Some(source.clone());
        Verifier::new(validation, Arc::new(source), clock.clone())
    } else {
        let keys = if let Some(k) = map.get("key") {
            key_from_value(k, &join(at, "key"), issues)
                .into_iter()
                .collect()
        } else if let Some(list) = map.get("keys") {
            let kat = join(at, "keys");
            match list {
                Value::Array(items) => items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, k)| key_from_value(k, &format!("{kat}[{i}]"), issues))
                    .collect(),
                other => {
                    issues.push(kat, format!("expected a list of keys, got {}", show(other)));
                    Vec::new()
                }
            }
        } else {
            match map.get("jwks").map(keys_from_jwks) {
                Some(Ok(keys)) => keys,
                Some(Err(e)) => {
                    issues.push(join(at, "jwks"), e.to_string());
                    Vec::new()
                }
                None => Vec::new(),
            }
        };
        if defaults == Defaults::Gate {
            let kat = ["key", "keys", "jwks"]
                .into_iter()
                .find(|k| map.contains_key(*k))
                .unwrap_or("key");
            check_secret_lengths(&keys, &validation, &join(at, kat), issues);
            check_ambiguous_keys(&keys, &validation, &join(at, kat), issues);
        }
        if issues.len() > before {
            return None;
        }
        Verifier::with_keys(validation, keys, clock.clone())
    };
    match verifier {
        Ok(v) => Some(JwtSettings {
            verifier: Arc::new(v),
            realm,
            jwks,
            revocation,
        }),
        Err(e) => {
            issues.push(at, e.to_string());
            None
        }
    }
}
