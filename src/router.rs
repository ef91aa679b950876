//! Route matching on matchit, one radix tree per method.
//!
//! Per-method trees (rather than one tree with a method list per pattern) give the answer
//! werkzeug and Django give: `GET /users/new` with routes `GET /users/{id}` and `POST /users/new`
//! matches the GET route instead of answering 405. Routes declared without methods are inserted
//! in every tree; GET routes are also inserted in the HEAD tree unless an explicit HEAD route
//! claims the pattern.
//!
//! Paths are checked before matching (see [`normalize`]) and never rewritten in a way the framework
//! behind the gate would not rewrite them: a spelling both could read differently is refused.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use percent_encoding::percent_decode_str;

/// Index of a route in insertion order.
pub type RouteId = usize;

/// HTTP methods with a tree of their own; anything else shares [`Method::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
    Trace,
    Connect,
    Other,
}

impl Method {
    pub const ALL: [Method; 10] = [
        Method::Get,
        Method::Head,
        Method::Post,
        Method::Put,
        Method::Patch,
        Method::Delete,
        Method::Options,
        Method::Trace,
        Method::Connect,
        Method::Other,
    ];

    /// Parses a method token. Methods are case-sensitive (RFC 9110 §9.1): `get` is not GET.
    #[must_use]
    pub fn parse(s: &str) -> Method {
        match s {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            "TRACE" => Method::Trace,
            "CONNECT" => Method::Connect,
            _ => Method::Other,
        }
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Trace => "TRACE",
            Method::Connect => "CONNECT",
            Method::Other => "*",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// Whether `s` is a syntactically valid method token (RFC 9110 `token`).
    #[must_use]
    pub fn is_token(s: &str) -> bool {
        crate::http::is_token(s)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouterError {
    #[error("route {new:?} conflicts with route {existing:?}")]
    Conflict { new: String, existing: String },
    #[error("invalid route pattern {pattern:?}: {reason}")]
    InvalidPattern { pattern: String, reason: String },
    #[error("invalid method {0:?} (methods are upper-case RFC 9110 tokens such as GET)")]
    InvalidMethod(String),
    #[error("method {0:?} has no tree of its own; declare the route without methods to accept it")]
    UnsupportedMethod(String),
}

/// Why a request path cannot be matched at all. The gate answers these with 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    #[error("path must start with '/'")]
    NotAbsolute,
    #[error("path contains a '.' or '..' segment")]
    DotSegment,
    #[error("path contains a control character")]
    ControlCharacter,
    #[error("path contains a malformed percent-escape or is not UTF-8 once decoded")]
    BadEncoding,
    #[error("path contains an empty segment ('//'), which applications read in different ways")]
    EmptySegment,
}

/// What a path with an empty segment (`/a//b`) means to the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EmptySegments {
    /// Answer 400. For a gate in front of an app whose router it does not know: werkzeug matches
    /// such a path as sent and then redirects to the merged spelling, Django never merges, other
    /// routers merge silently; any rewrite here could check one route and forward to another.
    #[default]
    Refuse,
    /// Match the path exactly as sent (an empty segment is a segment). For the framework adapters,
    /// which confirm at dispatch that the framework resolved the route the gate matched.
    Match,
}

/// How the path handed to the router is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathEncoding {
    /// As on the wire (`/files/a%2Fb`): `%2F` stays inside a segment, params are decoded once
    /// after matching, escapes of unreserved characters are equivalent to the characters.
    Raw,
    /// Already decoded once by the server, as WSGI's `PATH_INFO` is. Nothing is decoded again,
    /// so `%252F` can never become `/`.
    Decoded,
}

/// Checks a request path for matching, rewriting only what every framework reads the same way.
///
/// - An empty path is `/` (a WSGI app mounted at the root may see `PATH_INFO == ""`).
/// - Empty segments (`//`) are never merged: see [`EmptySegments`].
/// - `.` and `..` segments are refused rather than resolved. Clients resolve them before sending
///   (RFC 3986 §5.2.4); a request that still carries them is probing, and resolving them here while
///   the framework reads them differently is exactly how gateway policies get bypassed.
/// - Control characters are refused.
/// - In [`PathEncoding::Raw`] mode, escapes of unreserved characters (`%41` → `A`) are decoded
///   before matching (RFC 3986 §6.2.2.2) and a dot segment spelled `%2e%2e` is refused too.
/// - Matching is case-sensitive, as in werkzeug and Django: `/Admin` is not `/admin` in the app
///   either.
pub fn normalize(
    path: &str,
    encoding: PathEncoding,
    empty: EmptySegments,
) -> Result<Cow<'_, str>, PathError> {
    if path.is_empty() {
        return Ok(Cow::Borrowed("/"));
    }
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let bytes = path.as_bytes();
    let mut needs_rewrite = false;
    let mut prev_slash = false;
    for (i, &b) in bytes.iter().enumerate() {
        if b < 0x20 || b == 0x7f {
            return Err(PathError::ControlCharacter);
        }
        if b == b'/' {
            if prev_slash && empty == EmptySegments::Refuse {
                return Err(PathError::EmptySegment);
            }
            prev_slash = true;
        } else {
            prev_slash = false;
        }
        if b == b'%' && encoding == PathEncoding::Raw {
            let hex = bytes.get(i + 1..i + 3).ok_or(PathError::BadEncoding)?;
            let v = hex_pair(hex[0], hex[1]).ok_or(PathError::BadEncoding)?;
            if is_unreserved(v) {
                needs_rewrite = true;
            }
        }
    }
    let out: Cow<'_, str> = if needs_rewrite {
        Cow::Owned(rewrite(path, encoding))
    } else {
        Cow::Borrowed(path)
    };
    if out.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(PathError::DotSegment);
    }
    Ok(out)
}

/// The gate's reading of a WSGI `PATH_INFO` (decoded once by the server): checked as
/// [`normalize`] checks it and never rewritten, so the gate matches the very string the framework
/// routes on.
pub fn check_decoded(path: &str, empty: EmptySegments) -> Result<&str, PathError> {
    match normalize(path, PathEncoding::Decoded, empty)? {
        Cow::Borrowed(p) => Ok(p),
        // Decoded mode decodes and merges nothing; should it ever rewrite, refusing is safe.
        Cow::Owned(_) => Err(PathError::BadEncoding),
    }
}

fn rewrite(path: &str, encoding: PathEncoding) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' && encoding == PathEncoding::Raw {
            // Validated by the caller: two hex digits follow.
            if let Some(v) = hex_pair(bytes[i + 1], bytes[i + 2]).filter(|v| is_unreserved(*v)) {
                out.push(char::from(v));
                i += 3;
                continue;
            }
        }
        // Copy one whole UTF-8 character.
        let ch_len = utf8_len(b);
        out.push_str(&path[i..i + ch_len]);
        i += ch_len;
    }
    out
}

fn utf8_len(first: u8) -> usize {
    match first {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

fn hex_pair(a: u8, b: u8) -> Option<u8> {
    let h = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    Some(h(a)? << 4 | h(b)?)
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Decodes a matched parameter once (raw mode). Fails on invalid UTF-8 rather than guessing.
pub fn decode_param(raw: &str) -> Result<Cow<'_, str>, PathError> {
    percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| PathError::BadEncoding)
}

/// What a parameter must look like for the framework's converter to take it, when that is a
/// fixed character shape (werkzeug's `int` and `uuid`, Django's `int`, `uuid` and `slug`). Each
/// shape accepts a subset of what its converter accepts: a value outside it is left to the
/// framework's resolver, never enforced under this route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamShape {
    /// `[0-9]+`.
    Digits,
    /// `8-4-4-4-12` hexadecimal digits, either case.
    Uuid,
    /// The same, lower case only (Django's `uuid`).
    UuidLower,
    /// `[-a-zA-Z0-9_]+`.
    Slug,
}

impl ParamShape {
    pub const NAMES: [&'static str; 4] = ["digits", "uuid", "uuid_lower", "slug"];

    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "digits" => Self::Digits,
            "uuid" => Self::Uuid,
            "uuid_lower" => Self::UuidLower,
            "slug" => Self::Slug,
            _ => return None,
        })
    }

    #[must_use]
    pub fn admits(self, value: &str) -> bool {
        let uuid = |hex: fn(u8) -> bool| {
            let b = value.as_bytes();
            b.len() == 36
                && b.iter().enumerate().all(|(i, c)| {
                    if matches!(i, 8 | 13 | 18 | 23) {
                        *c == b'-'
                    } else {
                        hex(*c)
                    }
                })
        };
        match self {
            Self::Digits => !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()),
            Self::Uuid => uuid(|c| c.is_ascii_hexdigit()),
            Self::UuidLower => uuid(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)),
            Self::Slug => {
                !value.is_empty()
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            }
        }
    }
}

/// The outcome of a lookup.
#[derive(Debug)]
pub enum Lookup<'r, 'p, V> {
    Found {
        id: RouteId,
        value: &'r V,
        pattern: &'r str,
        params: matchit::Params<'r, 'p>,
    },
    /// The path matches routes, but none for this method. `allow` lists the methods that would match.
    MethodNotAllowed {
        allow: Vec<&'static str>,
    },
    NotFound,
}

struct Entry<V> {
    pattern: String,
    value: V,
}

/// A table of routes: matchit patterns (`/users/{id}`, `/files/{*path}`) with a value each.
pub struct Router<V> {
    entries: Vec<Entry<V>>,
    trees: Vec<matchit::Router<RouteId>>,
    /// Tree slots (method, pattern) that routes were inserted for.
    explicit: HashSet<(Method, String)>,
    /// Slots filled on a route's behalf (see [`implicit_slots`]); an explicit route takes them over.
    implicit: HashSet<(Method, String)>,
}

impl<V> Default for Router<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> fmt::Debug for Router<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field("routes", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl<V> Router<V> {
    #[must_use]
    pub fn new() -> Self {
        Self {
            entries: Vec::new(),
            trees: Method::ALL.iter().map(|_| matchit::Router::new()).collect(),
            explicit: HashSet::new(),
            implicit: HashSet::new(),
        }
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    #[must_use]
    pub fn pattern(&self, id: RouteId) -> &str {
        &self.entries[id].pattern
    }

    #[must_use]
    pub fn value(&self, id: RouteId) -> &V {
        &self.entries[id].value
    }

    pub fn iter(&self) -> impl Iterator<Item = (RouteId, &str, &V)> {
        self.entries
            .iter()
            .enumerate()
            .map(|(i, e)| (i, e.pattern.as_str(), &e.value))
    }

    /// Adds a route. `methods` empty means every method. Refuses a pattern that conflicts with an
    /// existing one for any of the same methods, naming both, and leaves the router unchanged.
    pub fn insert(
        &mut self,
        pattern: &str,
        methods: &[&str],
        value: V,
    ) -> Result<RouteId, RouterError> {
        let targets = self.check_insert(pattern, methods)?;
        let id = self.entries.len();
        let explicit: Vec<(Method, String)> =
            targets.iter().map(|&m| (m, pattern.to_owned())).collect();
        let implicit = implicit_slots(pattern, &targets);
        for (m, p) in explicit {
            let tree = &mut self.trees[m.index()];
            if self.implicit.remove(&(m, p.clone())) {
                let _ = tree.remove(p.as_str());
            }
            tree.insert(p.as_str(), id)
                .map_err(|e| insert_error(pattern, &e))?;
            self.explicit.insert((m, p));
        }
        for slot in implicit {
            if self.explicit.contains(&slot) || self.implicit.contains(&slot) {
                continue;
            }
            // A clash here is with a route that claimed the slot first; that route keeps it.
            if self.trees[slot.0.index()]
                .insert(slot.1.as_str(), id)
                .is_ok()
            {
                self.implicit.insert(slot);
            }
        }
        self.entries.push(Entry {
            pattern: pattern.to_owned(),
            value,
        });
        Ok(id)
    }

    /// Whether `insert(pattern, methods, _)` would succeed, without inserting; returns the
    /// methods the route would be inserted for. A conflict names the existing pattern.
    pub fn check_insert(
        &self,
        pattern: &str,
        methods: &[&str],
    ) -> Result<Vec<Method>, RouterError> {
        validate_pattern(pattern)?;
        let mut targets: Vec<Method> = Vec::new();
        if methods.is_empty() {
            targets.extend(Method::ALL);
        } else {
            for m in methods {
                if !Method::is_token(m) || m.bytes().any(|b| b.is_ascii_lowercase()) {
                    return Err(RouterError::InvalidMethod((*m).to_owned()));
                }
                let parsed = Method::parse(m);
                if parsed == Method::Other {
                    return Err(RouterError::UnsupportedMethod((*m).to_owned()));
                }
                if !targets.contains(&parsed) {
                    targets.push(parsed);
                }
            }
        }
        // An explicit route may take a slot an implicit entry holds; only explicit routes conflict
        // with each other. matchit has no "would conflict" query, so probe a clone (start-up only).
        for &m in &targets {
            let mut probe = self.trees[m.index()].clone();
            if self.implicit.contains(&(m, pattern.to_owned())) {
                let _ = probe.remove(pattern);
            }
            probe
                .insert(pattern, usize::MAX)
                .map_err(|e| insert_error(pattern, &e))?;
        }
        Ok(targets)
    }

    /// Looks up a normalised path (see [`normalize`]).
    #[must_use]
    pub fn lookup<'r, 'p>(&'r self, method: &str, path: &'p str) -> Lookup<'r, 'p, V> {
        let m = Method::parse(method);
        let tree = &self.trees[m.index()];
        if let Ok(found) = tree.at(path) {
            let id = *found.value;
            let entry = &self.entries[id];
            return Lookup::Found {
                id,
                value: &entry.value,
                pattern: &entry.pattern,
                params: found.params,
            };
        }
        let mut allow: Vec<&'static str> = Vec::new();
        for other in Method::ALL {
            if other == m || other == Method::Other {
                continue;
            }
            if self.trees[other.index()].at(path).is_ok() {
                allow.push(other.as_str());
            }
        }
        if allow.is_empty() {
            return Lookup::NotFound;
        }
        Lookup::MethodNotAllowed { allow }
    }
}

fn insert_error(pattern: &str, e: &matchit::InsertError) -> RouterError {
    match e {
        matchit::InsertError::Conflict { with } => RouterError::Conflict {
            new: pattern.to_owned(),
            existing: with.clone(),
        },
        other => RouterError::InvalidPattern {
            pattern: pattern.to_owned(),
            reason: other.to_string(),
        },
    }
}

/// Slots a route also answers for unless another route claims them:
/// - HEAD for a GET route (RFC 9110 §9.3.2: HEAD is GET without the body);
/// - `/prefix/` for a catch-all `/prefix/{*rest}`, which matchit (like werkzeug's `<path:rest>`)
///   would otherwise not match, so a policy on a subtree also covers the subtree's root.
fn implicit_slots(pattern: &str, targets: &[Method]) -> Vec<(Method, String)> {
    let mut methods: Vec<Method> = targets.to_vec();
    let mut slots = Vec::new();
    if targets.contains(&Method::Get) && !targets.contains(&Method::Head) {
        slots.push((Method::Head, pattern.to_owned()));
        methods.push(Method::Head);
    }
    if let Some(star) = pattern.rfind("/{*") {
        if pattern.ends_with('}') && !pattern[star + 1..].contains('/') {
            let root = &pattern[..=star];
            slots.extend(methods.iter().map(|&m| (m, root.to_owned())));
        }
    }
    slots
}

fn validate_pattern(pattern: &str) -> Result<(), RouterError> {
    let bad = |reason: &str| RouterError::InvalidPattern {
        pattern: pattern.to_owned(),
        reason: reason.to_owned(),
    };
    if !pattern.starts_with('/') {
        return Err(bad("must start with '/'"));
    }
    if pattern.contains("//") {
        return Err(bad(
            "contains '//', which normalised request paths never do",
        ));
    }
    if pattern.split('/').any(|s| s == "." || s == "..") {
        return Err(bad("contains a '.' or '..' segment"));
    }
    if pattern.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(bad("contains a control character"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(routes: &[(&str, &[&str])]) -> Router<String> {
        let mut r = Router::new();
        for (p, m) in routes {
            r.insert(p, m, format!("{} {}", m.join(","), p)).unwrap();
        }
        r
    }

    fn found(
        r: &Router<String>,
        method: &str,
        path: &str,
    ) -> Option<(String, Vec<(String, String)>)> {
        match r.lookup(method, path) {
            Lookup::Found { value, params, .. } => Some((
                value.clone(),
                params
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            )),
            _ => None,
        }
    }

    #[test]
    fn param_shapes_admit_only_their_characters() {
        use ParamShape::{Digits, Slug, Uuid, UuidLower};
        assert!(Digits.admits("0042"));
        for bad in ["", "4a", "-1", "٣", "1.5", " 1"] {
            assert!(!Digits.admits(bad), "{bad:?}");
        }
        let u = "123e4567-E89B-12d3-a456-426614174000";
        assert!(Uuid.admits(u));
        assert!(!UuidLower.admits(u));
        assert!(UuidLower.admits(&u.to_ascii_lowercase()));
        assert!(!Uuid.admits("123e4567e89b12d3a456426614174000"));
        assert!(Slug.admits("a-b_C9"));
        assert!(!Slug.admits("a b") && !Slug.admits("é") && !Slug.admits(""));
    }

    #[test]
    fn static_beats_param_beats_catch_all() {
        let r = router(&[
            ("/users/me", &[]),
            ("/users/{id}", &[]),
            ("/users/{id}/{*rest}", &[]),
        ]);
        assert_eq!(found(&r, "GET", "/users/me").unwrap().0, " /users/me");
        let (v, p) = found(&r, "GET", "/users/42").unwrap();
        assert_eq!(v, " /users/{id}");
        assert_eq!(p, vec![("id".into(), "42".into())]);
        let (v, p) = found(&r, "GET", "/users/42/repos/x").unwrap();
        assert_eq!(v, " /users/{id}/{*rest}");
        assert_eq!(
            p,
            vec![
                ("id".into(), "42".into()),
                ("rest".into(), "repos/x".into())
            ]
        );
    }

    #[test]
    fn per_method_trees_match_like_werkzeug() {
        let r = router(&[("/users/{id}", &["GET"]), ("/users/new", &["POST"])]);
        assert_eq!(found(&r, "GET", "/users/new").unwrap().0, "GET /users/{id}");
        assert_eq!(
            found(&r, "POST", "/users/new").unwrap().0,
            "POST /users/new"
        );
        match r.lookup("DELETE", "/users/new") {
            Lookup::MethodNotAllowed { allow } => assert_eq!(allow, vec!["GET", "HEAD", "POST"]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn head_matches_get_unless_declared() {
        let mut r = router(&[("/a", &["GET"])]);
        assert_eq!(found(&r, "HEAD", "/a").unwrap().0, "GET /a");
        r.insert("/a", &["HEAD"], "HEAD /a".into()).unwrap();
        assert_eq!(found(&r, "HEAD", "/a").unwrap().0, "HEAD /a");
        assert_eq!(found(&r, "GET", "/a").unwrap().0, "GET /a");
    }

    #[test]
    fn conflicts_name_both_patterns_and_leave_router_unchanged() {
        let mut r = router(&[("/users/{id}", &["GET"])]);
        let err = r
            .insert("/users/{name}", &["GET", "POST"], "x".into())
            .unwrap_err();
        assert_eq!(
            err,
            RouterError::Conflict {
                new: "/users/{name}".into(),
                existing: "/users/{id}".into()
            }
        );
        // POST was not half-inserted.
        assert!(matches!(
            r.lookup("POST", "/users/1"),
            Lookup::MethodNotAllowed { .. }
        ));
        // Same pattern, different methods: fine.
        r.insert("/users/{id}", &["DELETE"], "DELETE".into())
            .unwrap();
        let err = r
            .insert("/users/{id}", &["GET"], "again".into())
            .unwrap_err();
        assert!(matches!(err, RouterError::Conflict { .. }));
        // matchit refuses a catch-all where a parameter already sits.
        let err = r
            .insert("/users/{*rest}", &["GET"], "x".into())
            .unwrap_err();
        assert!(matches!(err, RouterError::Conflict { .. }), "{err:?}");
    }

    #[test]
    fn catch_all_covers_its_root_unless_a_route_claims_it() {
        let mut r = router(&[("/admin/{*rest}", &["GET"])]);
        let (v, p) = found(&r, "GET", "/admin/").unwrap();
        assert_eq!((v.as_str(), p.len()), ("GET /admin/{*rest}", 0));
        assert!(found(&r, "HEAD", "/admin/").is_some());
        assert!(
            found(&r, "GET", "/admin").is_none(),
            "a different resource, as in werkzeug"
        );
        // An explicit route takes the root over, in either order.
        r.insert("/admin/", &["GET"], "root".into()).unwrap();
        assert_eq!(found(&r, "GET", "/admin/").unwrap().0, "root");
        let r = router(&[("/files/", &[]), ("/files/{*p}", &[])]);
        assert_eq!(found(&r, "GET", "/files/").unwrap().0, " /files/");
    }

    #[test]
    fn bad_patterns_and_methods_are_refused() {
        let mut r: Router<()> = Router::new();
        assert!(matches!(
            r.insert("users", &[], ()),
            Err(RouterError::InvalidPattern { .. })
        ));
        assert!(matches!(
            r.insert("/a/../b", &[], ()),
            Err(RouterError::InvalidPattern { .. })
        ));
        assert!(matches!(
            r.insert("/a/{", &[], ()),
            Err(RouterError::InvalidPattern { .. })
        ));
        assert!(matches!(
            r.insert("/a", &["get"], ()),
            Err(RouterError::InvalidMethod(_))
        ));
        assert!(matches!(
            r.insert("/a", &["G ET"], ()),
            Err(RouterError::InvalidMethod(_))
        ));
        assert!(matches!(
            r.insert("/a", &["PURGE"], ()),
            Err(RouterError::UnsupportedMethod(_))
        ));
    }

    #[test]
    fn extension_methods_reach_routes_without_methods() {
        let r = router(&[("/any", &[]), ("/get", &["GET"])]);
        assert!(found(&r, "PURGE", "/any").is_some());
        assert!(matches!(
            r.lookup("PURGE", "/get"),
            Lookup::MethodNotAllowed { .. }
        ));
        assert!(matches!(r.lookup("GET", "/nope"), Lookup::NotFound));
    }

    #[test]
    fn normalisation() {
        use PathEncoding::{Decoded, Raw};
        let normalize = |p, e| super::normalize(p, e, EmptySegments::Refuse);
        assert_eq!(normalize("", Decoded).unwrap(), "/");
        assert_eq!(
            normalize("//admin///x/", Decoded),
            Err(PathError::EmptySegment)
        );
        assert_eq!(
            super::normalize("//admin///x/", Decoded, EmptySegments::Match).unwrap(),
            "//admin///x/"
        );
        assert_eq!(
            super::normalize("/us%65rs//x", Raw, EmptySegments::Match).unwrap(),
            "/users//x"
        );
        assert_eq!(
            normalize("/admin/../admin", Decoded),
            Err(PathError::DotSegment)
        );
        assert_eq!(normalize("/admin/.", Decoded), Err(PathError::DotSegment));
        assert_eq!(normalize("/a/%2e%2e/b", Raw), Err(PathError::DotSegment));
        assert_eq!(normalize("/a/%2E./b", Raw), Err(PathError::DotSegment));
        // Decoded mode never decodes again: %2e%2e is a literal name there, as the app sees it.
        assert_eq!(normalize("/a/%2e%2e/b", Decoded).unwrap(), "/a/%2e%2e/b");
        assert_eq!(normalize("/us%65rs", Raw).unwrap(), "/users");
        assert_eq!(normalize("/a%2Fb", Raw).unwrap(), "/a%2Fb");
        assert_eq!(normalize("/a%zz", Raw), Err(PathError::BadEncoding));
        assert_eq!(normalize("/a%2", Raw), Err(PathError::BadEncoding));
        assert_eq!(
            normalize("/a\0b", Decoded),
            Err(PathError::ControlCharacter)
        );
        assert_eq!(normalize("admin", Decoded), Err(PathError::NotAbsolute));
        assert_eq!(normalize("/..a/b.", Decoded).unwrap(), "/..a/b.");
        assert_eq!(normalize("/caf\u{e9}/x", Decoded).unwrap(), "/caf\u{e9}/x");
        assert!(matches!(
            normalize("/plain/path", Decoded).unwrap(),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn params_are_decoded_once() {
        assert_eq!(decode_param("a%2Fb").unwrap(), "a/b");
        assert_eq!(decode_param("a%252F").unwrap(), "a%2F");
        assert_eq!(decode_param("%ff"), Err(PathError::BadEncoding));
    }
}
