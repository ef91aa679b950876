//! The gate's auth stage: find the bearer token where the route allows it, verify it, check
//! scopes and claims, and answer 401/403 the RFC 6750 way when that fails.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::Arc;

use percent_encoding::percent_decode_str;
use serde_json::Value;

use super::revocation::{Refusal, Revocations};
use super::verifier::{Claims, Verified, Verifier};
use crate::blocking::Blocking;
use crate::http::Header;
use crate::issues::{Issues, join, show};
use crate::problem::{self, Problem};
use crate::request::Request;
use crate::response::Response;

/// Whether a route needs a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// No token is looked for (a token sent anyway is ignored).
    #[default]
    None,
    /// A token is used when present (and must then be valid); requests without one pass.
    Optional,
    /// A valid token is needed.
    Required,
}

/// Where a route accepts the token from. Only the header by default: cookies and query strings
/// leak into logs and cross-site requests, so each is opt-in per route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenLocation {
    Header,
    Cookie(String),
    Query(String),
}

/// A requirement on a claim.
#[derive(Debug, Clone, PartialEq)]
pub enum ClaimRule {
    /// The claim equals this value.
    Equals(Value),
    /// The claim (a list, or a space-delimited string) contains every one of these.
    Contains(Vec<String>),
}

/// A route's auth policy.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AuthPolicy {
    pub mode: Mode,
    pub scopes: Vec<String>,
    pub claims: Vec<(String, ClaimRule)>,
    pub locations: Vec<TokenLocation>,
    /// Methods on which a required token becomes optional (none unless configured; `["OPTIONS"]`
    /// for CORS preflights): a request without one passes, a token that is sent must still be
    /// valid and grant the scopes and claims. Not a default: the gate decides on the method it
    /// sees, and a layer inside it that rewrites the method (a method override) would turn an
    /// exempt request into one the gate never checked.
    pub exempt_methods: Vec<String>,
}

impl AuthPolicy {
    /// Parses `auth = "required" | "optional" | "none"` or a table
    /// `{ mode, scopes, claims, locations }`; a table without `mode` means required.
    pub fn parse(v: &Value, at: &str, issues: &mut Issues) -> Option<AuthPolicy> {
        const MODES: &[&str] = &["required", "optional", "none"];
        let mode_of = |s: &str| match s {
            "required" => Mode::Required,
            "optional" => Mode::Optional,
            _ => Mode::None,
        };
        if let Value::String(_) = v {
            let mode = issues.one_of(v, MODES, at)?;
            return Some(AuthPolicy {
                mode: mode_of(mode),
                locations: vec![TokenLocation::Header],
                ..Default::default()
            });
        }
        let map = issues.object(v, at)?;
        issues.unknown_keys(
            map,
            &["mode", "scopes", "claims", "locations", "exempt_methods"],
            at,
        );
        let mut p = AuthPolicy {
            mode: Mode::Required,
            locations: vec![TokenLocation::Header],
            ..Default::default()
        };
        if let Some(m) = map.get("exempt_methods") {
            p.exempt_methods = issues.methods(m, &join(at, "exempt_methods"))?;
        }
        if let Some(m) = map.get("mode") {
            p.mode = mode_of(issues.one_of(m, MODES, &join(at, "mode"))?);
        }
        if let Some(s) = map.get("scopes") {
            p.scopes = issues
                .strings(s, &join(at, "scopes"))?
                .into_iter()
                .map(str::to_owned)
                .collect();
            for (i, scope) in p.scopes.iter().enumerate() {
                if scope.is_empty()
                    || scope.contains(' ')
                    || scope.contains('"')
                    || scope.contains('\\')
                {
                    issues.push(
                        format!("{at}.scopes[{i}]"),
                        format!("not a scope token: {}", show(&Value::from(scope.as_str()))),
                    );
                }
            }
        }
        if let Some(c) = map.get("claims") {
            let cat = join(at, "claims");
            for (name, rule) in issues.object(c, &cat)? {
                let rule = match rule {
                    Value::Object(r) => {
                        let rat = join(&cat, name);
                        issues.unknown_keys(r, &["contains"], &rat);
                        let list = r.get("contains").and_then(|l| match l {
                            Value::String(s) => Some(vec![s.clone()]),
                            other => issues
                                .strings(other, &join(&rat, "contains"))
                                .map(|v| v.into_iter().map(str::to_owned).collect()),
                        });
                        ClaimRule::Contains(list?)
                    }
                    other => ClaimRule::Equals(other.clone()),
                };
                p.claims.push((name.clone(), rule));
            }
        }
        if let Some(l) = map.get("locations") {
            p.locations = parse_locations(l, &join(at, "locations"), issues)?;
        }
        Some(p)
    }

    /// A short account for `explain`.
    #[must_use]
    pub fn describe(&self) -> String {
        let mode = match self.mode {
            Mode::None => return "none".into(),
            Mode::Optional => "optional",
            Mode::Required => "required",
        };
        let mut s = mode.to_owned();
        if !self.scopes.is_empty() {
            let _ = write!(s, "; scopes {}", self.scopes.join(" "));
        }
        for (name, _) in &self.claims {
            let _ = write!(s, "; claim {name}");
        }
        if self.mode == Mode::Required && !self.exempt_methods.is_empty() {
            let _ = write!(s, "; not on {}", self.exempt_methods.join(" "));
        }
        s
    }
}

/// `locations = ["header", "cookie:<name>", "query:<name>"]`; at least one.
fn parse_locations(l: &Value, lat: &str, issues: &mut Issues) -> Option<Vec<TokenLocation>> {
    let mut out = Vec::new();
    for (i, s) in issues.strings(l, lat)?.into_iter().enumerate() {
        let loc = if s == "header" {
            Some(TokenLocation::Header)
        } else if let Some(name) = s
            .strip_prefix("cookie:")
            .filter(|n| crate::http::is_header_name(n))
        {
            Some(TokenLocation::Cookie(name.to_owned()))
        } else if let Some(name) = s.strip_prefix("query:").filter(|n| !n.is_empty()) {
            Some(TokenLocation::Query(name.to_owned()))
        } else {
            issues.push(
                format!("{lat}[{i}]"),
                format!(
                    "expected \"header\", \"cookie:<name>\" or \"query:<name>\", got {}",
                    show(&Value::from(s))
                ),
            );
            None
        };
        out.extend(loc);
    }
    if out.is_empty() {
        issues.push(lat, "at least one location is needed");
    }
    Some(out)
}

/// Header slots the stage reads.
#[derive(Debug, Clone, Copy)]
pub struct Slots {
    pub authorization: usize,
    pub cookie: usize,
}

/// What a request carries for credentials.
enum Credentials<'r> {
    None,
    One(Result<Cow<'r, str>, ()>),
    /// In more than one place: refused, never chosen between.
    Several,
}

/// The stage: the gate's verifier and realm.
#[derive(Debug)]
pub struct Stage {
    pub verifier: Arc<Verifier>,
    pub realm: String,
    pub slots: Slots,
    /// `[jwt] revocation`: the shared revocation list.
    pub revocations: Option<Arc<Revocations>>,
}

impl Stage {
    /// `Ok(None)`: no token and none needed. `Ok(Some)`: verified. `Err`: the 401/403 answer.
    pub fn check(
        &self,
        policy: &AuthPolicy,
        req: &Request<'_>,
        blocking: &dyn Blocking,
    ) -> Result<Option<Arc<Verified>>, Response> {
        if policy.mode == Mode::None {
            return Ok(None);
        }
        let required =
            policy.mode == Mode::Required && !policy.exempt_methods.iter().any(|m| m == req.method);
        let token = match self.find_token(policy, req) {
            Credentials::One(t) => t,
            Credentials::None if required => {
                return Err(self.unauthorized(None, "a bearer token is required"));
            }
            Credentials::None => return Ok(None),
            Credentials::Several => return Err(self.invalid_request()),
        };
        let malformed = || {
            self.unauthorized(
                Some("invalid_token"),
                "the credentials are not a well-formed bearer token",
            )
        };
        let Ok(token) = token else {
            return Err(malformed());
        };
        let now = self.verifier.now();
        let verified = match self.verifier.cached(&token, now) {
            // Only well-formed tokens get verified, so a cached outcome needs no second look at
            // the token's bytes; anything else is checked before it costs a verification.
            Some(r) => r,
            None if !is_token68(&token) => return Err(malformed()),
            None if !self.verifier.may_block() => self.verifier.verify_uncached(&token, now),
            None => {
                let mut out = None;
                let verifier = &self.verifier;
                let token_ref: &str = &token;
                blocking.run(&mut || out = Some(verifier.verify_uncached(token_ref, now)));
                out.unwrap_or(Err(super::TokenError::InvalidSignature))
            }
        };
        let verified =
            verified.map_err(|e| self.unauthorized(Some("invalid_token"), &e.to_string()))?;
        // After the cache: a cached verification is no excuse for a revoked token.
        if let Some(r) = &self.revocations {
            match r.check(&verified, now, blocking) {
                Ok(()) => {}
                Err(Refusal::Revoked) => {
                    return Err(self.unauthorized(
                        Some("invalid_token"),
                        &super::TokenError::Revoked.to_string(),
                    ));
                }
                Err(Refusal::Unavailable(_)) => return Err(revocation_unavailable()),
            }
        }
        if let Some(missing) = missing_scope(&verified.claims, &policy.scopes) {
            return Err(self.forbidden(
                &policy.scopes,
                &format!("the token lacks the scope {missing:?}"),
            ));
        }
        for (name, rule) in &policy.claims {
            if !claim_ok(verified.claims.get(name), rule) {
                return Err(self.forbidden(
                    &policy.scopes,
                    &format!("the token's {name:?} claim does not grant access"),
                ));
            }
        }
        Ok(Some(verified))
    }

    /// The token from the location that has credentials, not yet checked for its alphabet
    /// (`One(Err)` when a query parameter does not decode). Credentials in more than one place
    /// are `Several`: the configured locations, plus the two places RFC 6750 §2 defines whether
    /// configured or not (the `Authorization` header and an `access_token` query parameter),
    /// since a request that carries two tokens can be read two ways.
    fn find_token<'r>(&self, policy: &AuthPolicy, req: &Request<'r>) -> Credentials<'r> {
        let header = || {
            req.headers
                .header(self.slots.authorization)
                .and_then(bearer)
        };
        let mut found = None;
        let mut places = 0usize;
        let mut header_seen = false;
        let mut query_seen = false;
        for loc in &policy.locations {
            let (hit, count) = match loc {
                TokenLocation::Header => {
                    header_seen = true;
                    let h = header();
                    (h.map(|t| Ok(Cow::Borrowed(t))), usize::from(h.is_some()))
                }
                TokenLocation::Cookie(name) => {
                    let header = req.headers.header(self.slots.cookie);
                    let c = header.and_then(|c| cookie(c, name));
                    (
                        c.map(|v| Ok(Cow::Borrowed(v))),
                        header.map_or(0, |h| cookie_count(h, name)),
                    )
                }
                TokenLocation::Query(name) => {
                    query_seen |= name == "access_token";
                    (query(req.query, name), query_count(req.query, name))
                }
            };
            places += count;
            if found.is_none() {
                found = hit;
            }
        }
        if !header_seen && header().is_some() {
            places += 1;
        }
        if !query_seen {
            places += query_count(req.query, "access_token");
        }
        match found {
            _ if places > 1 => Credentials::Several,
            Some(t) => Credentials::One(t),
            None => Credentials::None,
        }
    }

    fn unauthorized(&self, error: Option<&str>, description: &str) -> Response {
        let mut challenge = format!("Bearer realm=\"{}\"", self.realm);
        if let Some(e) = error {
            let _ = write!(
                challenge,
                ", error=\"{e}\", error_description=\"{}\"",
                quoted(description)
            );
        }
        respond(401, description, vec![("www-authenticate", challenge)])
    }

    /// 400 (RFC 6750 §3.1): credentials in more than one place.
    fn invalid_request(&self) -> Response {
        let description = "the request carries a bearer token in more than one place";
        let challenge = format!(
            "Bearer realm=\"{}\", error=\"invalid_request\", error_description=\"{description}\"",
            self.realm
        );
        respond(400, description, vec![("www-authenticate", challenge)])
    }

    fn forbidden(&self, scopes: &[String], description: &str) -> Response {
        let mut challenge = format!(
            "Bearer realm=\"{}\", error=\"insufficient_scope\", error_description=\"{}\"",
            self.realm,
            quoted(description)
        );
        if !scopes.is_empty() {
            let _ = write!(challenge, ", scope=\"{}\"", scopes.join(" "));
        }
        respond(403, description, vec![("www-authenticate", challenge)])
    }
}

/// 503: `on_error = "deny"` and the revocation status cannot be established.
#[must_use]
pub fn revocation_unavailable() -> Response {
    respond(
        503,
        "the token's revocation status cannot be checked right now",
        vec![("retry-after", "1".to_owned())],
    )
}

fn respond(status: u16, detail: &str, mut headers: Vec<Header>) -> Response {
    let p = Problem::new(status, detail);
    headers.insert(0, ("content-type", problem::CONTENT_TYPE.to_owned()));
    Response {
        status,
        headers,
        body: p.to_body().into(),
    }
}

/// RFC 6750 §3: `error_description` is limited to %x20-21 / %x23-5B / %x5D-7E.
fn quoted(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c == '"' || c == '\\' || !(' '..='~').contains(&c) {
                '\''
            } else {
                c
            }
        })
        .collect()
}

/// `Authorization: Bearer <token>`: scheme case-insensitive, one or more spaces (RFC 6750 §2.1).
/// Another scheme (Basic, ...) is no bearer token at all.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    Some(rest.trim_start_matches(' ').trim_end())
}

/// RFC 7235 token68, what a JWS compact serialisation is made of:
/// `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="` (padding needs a body).
fn is_token68(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k.trim() == name).then(|| v.trim().trim_matches('"'))
    })
}

/// Whether a query parameter's name is `name` as the app reads it (frameworks decode names:
/// `access%5Ftoken` is `access_token` to the app).
fn is_param(k: &str, name: &str) -> bool {
    k == name
        || (k.contains(['%', '+'])
            && percent_decode_str(&k.replace('+', " "))
                .decode_utf8()
                .is_ok_and(|d| d == name))
}

/// How many times the query string carries `name` (each one a credential).
fn query_count(qs: &str, name: &str) -> usize {
    if qs.is_empty() {
        return 0;
    }
    qs.split('&')
        .map(|pair| pair.split_once('=').map_or(pair, |(k, _)| k))
        .filter(|k| is_param(k, name))
        .count()
}

/// How many times the `Cookie` header carries `name`: frameworks disagree on which of two
/// takes effect (werkzeug the first, Django the last), so two are two places.
fn cookie_count(header: &str, name: &str) -> usize {
    header
        .split(';')
        .filter(|pair| {
            pair.trim()
                .split_once('=')
                .is_some_and(|(k, _)| k.trim() == name)
        })
        .count()
}

fn query<'a>(qs: &'a str, name: &str) -> Option<Result<Cow<'a, str>, ()>> {
    qs.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if !is_param(k, name) {
            return None;
        }
        Some(
            match percent_decode_str(&v.replace('+', " ")).decode_utf8() {
                Ok(t) => Ok(Cow::Owned(t.into_owned())),
                Err(_) => Err(()),
            },
        )
    })
}

/// Scopes from `scope` (space-delimited string, RFC 8693 §4.2) and `scp` (list or string).
fn missing_scope<'a>(claims: &Claims, needed: &'a [String]) -> Option<&'a str> {
    if needed.is_empty() {
        return None;
    }
    let mut have: Vec<&str> = Vec::new();
    for name in ["scope", "scp"] {
        match claims.get(name) {
            Some(Value::String(s)) => have.extend(s.split(' ').filter(|x| !x.is_empty())),
            Some(Value::Array(a)) => have.extend(a.iter().filter_map(Value::as_str)),
            _ => {}
        }
    }
    needed
        .iter()
        .map(String::as_str)
        .find(|n| !have.contains(n))
}

fn claim_ok(value: Option<&Value>, rule: &ClaimRule) -> bool {
    match rule {
        ClaimRule::Equals(expected) => value == Some(expected),
        ClaimRule::Contains(needed) => {
            let have: Vec<&str> = match value {
                Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
                Some(Value::String(s)) => s.split(' ').collect(),
                _ => return false,
            };
            needed.iter().all(|n| have.contains(&n.as_str()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer("Bearer abc.def.ghi"), Some("abc.def.ghi"));
        assert_eq!(bearer("bearer    abc"), Some("abc"));
        assert_eq!(bearer("BEARER abc"), Some("abc"));
        assert_eq!(bearer("Basic dXNlcjpwYXNz"), None);
        // Found, and refused by the alphabet check.
        assert_eq!(bearer("Bearer a b"), Some("a b"));
        assert!(!is_token68("a b"));
        assert_eq!(bearer("Bearer "), Some(""));
        assert!(!is_token68(""));
        assert_eq!(bearer("Bearer\"x"), None);
    }

    #[test]
    fn query_credentials_are_counted_under_every_spelling() {
        assert_eq!(query_count("", "access_token"), 0);
        assert_eq!(query_count("a=1&access_token=x", "access_token"), 1);
        assert_eq!(
            query_count("access_token=x&access_token=y", "access_token"),
            2
        );
        assert_eq!(
            query_count("access%5Ftoken=x&access_token", "access_token"),
            2
        );
        assert_eq!(
            query_count("access_tokens=x&xaccess_token=y", "access_token"),
            0
        );
    }

    #[test]
    fn token68_admits_exactly_its_alphabet() {
        for b in 0..=255u8 {
            let expected = b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
            let s = [b'a', b, b'z'];
            assert_eq!(
                std::str::from_utf8(&s).is_ok_and(is_token68),
                expected && b.is_ascii(),
                "byte {b:#04x}"
            );
        }
        assert!(is_token68("abc=="));
        assert!(!is_token68("ab=c"));
        assert!(!is_token68(""));
        assert!(!is_token68("=="), "padding alone is not token68");
    }

    #[test]
    fn cookies_queries_and_scopes() {
        assert_eq!(cookie("a=1; token=xyz; b=2", "token"), Some("xyz"));
        assert_eq!(cookie("tokenx=1", "token"), None);
        assert_eq!(
            query("a=1&access_token=abc.def", "access_token"),
            Some(Ok("abc.def".into()))
        );
        // Decoded, then refused by the alphabet check; bytes that are not UTF-8 fail decoding.
        assert_eq!(
            query("access_token=a%20b", "access_token"),
            Some(Ok("a b".into()))
        );
        assert_eq!(query("access_token=%ff", "access_token"), Some(Err(())));
        let claims =
            crate::json::parse_object(br#"{"scope":"read write","scp":["admin"]}"#, 4).unwrap();
        assert_eq!(
            missing_scope(&claims, &["read".into(), "admin".into()]),
            None
        );
        assert_eq!(missing_scope(&claims, &["delete".into()]), Some("delete"));
        assert!(claim_ok(
            Some(&serde_json::json!(["a", "b"])),
            &ClaimRule::Contains(vec!["b".into()])
        ));
        assert!(!claim_ok(
            Some(&serde_json::json!("ab")),
            &ClaimRule::Contains(vec!["a".into()])
        ));
        assert!(claim_ok(
            Some(&serde_json::json!(true)),
            &ClaimRule::Equals(serde_json::json!(true))
        ));
        assert_eq!(quoted("a \"b\" \\ é"), "a 'b' ' '");
    }
}
