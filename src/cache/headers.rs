//! Header helpers of the cache stage: interned names, `Vary` values, `ETag` matching, and the
//! hop-by-hop headers a stored response never keeps.

use std::sync::OnceLock;

/// How many distinct response header names a process keeps (see [`leak_name`]).
const NAME_CAP: usize = 4096;

/// Header names of stored responses are a small set; intern them as `&'static str` so a hit
/// allocates no names. Each new name is leaked once, up to [`NAME_CAP`] of them: an app that
/// makes names out of data gets its responses with further names served by the app itself
/// (None here), never under another name.
pub(super) fn leak_name(name: &str) -> Option<&'static str> {
    static NAMES: OnceLock<std::sync::Mutex<std::collections::HashSet<&'static str>>> =
        OnceLock::new();
    let set = NAMES.get_or_init(Default::default);
    let mut set = set
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    intern(&mut set, NAME_CAP, name)
}

pub(super) fn intern(
    set: &mut std::collections::HashSet<&'static str>,
    cap: usize,
    name: &str,
) -> Option<&'static str> {
    if let Some(n) = set.get(name) {
        return Some(n);
    }
    if set.len() >= cap {
        return None;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    set.insert(leaked);
    Some(leaked)
}

/// The request's values for the headers a stored response varies on, in the response's order.
pub(super) fn vary_values(
    names: &[String],
    request_vary: &[(String, Option<String>)],
) -> Vec<(String, Option<String>)> {
    names
        .iter()
        .map(|n| {
            (
                n.clone(),
                request_vary
                    .iter()
                    .find(|(k, _)| k == n)
                    .and_then(|(_, v)| v.clone()),
            )
        })
        .collect()
}

/// The values of every `name` header, in order (names compared without case).
pub(super) fn header_values<'h>(
    headers: &'h [(String, String)],
    name: &'h str,
) -> impl Iterator<Item = &'h str> {
    headers
        .iter()
        .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// `bytes` as a quoted lowercase hex string (a strong `ETag`), without a `fmt` call per byte.
pub(super) fn quoted_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2 + 2);
    out.push('"');
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out.push('"');
    out
}

/// `If-None-Match` uses the weak comparison (RFC 9110 §13.1.2): `W/` is ignored on both sides.
pub(super) fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    fn bare(t: &str) -> &str {
        t.trim().trim_start_matches("W/")
    }
    let target = bare(etag);
    if_none_match
        .split(',')
        .any(|t| t.trim() == "*" || bare(t) == target)
}

pub(super) const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];
