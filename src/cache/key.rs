//! Cache keys: method class, path, query, principal, and the request headers the response varies on.

use std::borrow::Cow;
use std::fmt::Write as _;

use crate::http::push_int;

/// Normalises a query string for the key: escapes of unreserved characters are decoded and hex
/// digits upper-cased (RFC 3986 §6.2.2), `+` stays distinct from `%20` (form decoding treats them
/// alike, but the key must not conflate what an app may read differently). Parameter order and
/// repetitions are kept: `a=1&b=2` and `b=2&a=1`, or `a=1&a=2` and `a=2&a=1`, are different keys,
/// because frameworks hand repeated parameters to the app in order.
#[must_use]
pub fn normalize_query(qs: &str) -> Cow<'_, str> {
    // Only percent-escapes are rewritten; most queries have none and are their own form.
    if !qs.contains('%') {
        return Cow::Borrowed(qs);
    }
    let bytes = qs.as_bytes();
    let mut out = String::with_capacity(qs.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' && i + 2 < bytes.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                #[allow(clippy::cast_possible_truncation)] // two hex digits
                let v = (h * 16 + l) as u8;
                if v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~') {
                    out.push(char::from(v));
                } else {
                    let _ = write!(out, "%{v:02X}");
                }
                i += 3;
                continue;
            }
        }
        // Copy one whole UTF-8 character.
        let len = match b {
            0x00..=0x7f => 1,
            0xc0..=0xdf => 2,
            0xe0..=0xef => 3,
            _ => 4,
        };
        let end = (i + len).min(bytes.len());
        out.push_str(qs.get(i..end).unwrap_or(""));
        i = end;
    }
    Cow::Owned(out)
}

/// The part of a key every variant of a resource shares: path, query, principal and the request
/// headers that are always keyed (`target`: `Host` and the forwarding headers, in a fixed order;
/// absent ones are left out). Fields are length-prefixed so no value can be crafted to collide
/// with another field layout.
#[must_use]
pub fn primary<'a>(
    path: &str,
    query: &str,
    principal: Option<&str>,
    target: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> String {
    let q = normalize_query(query);
    let p = principal.unwrap_or("");
    let mut key = String::with_capacity(path.len() + q.len() + p.len() + 48);
    // "GET {len}:{path} {len}:{query} {len}:{principal}", then " {name}={len}:{value}" per target.
    key.push_str("GET ");
    length_prefixed(&mut key, path);
    key.push(' ');
    length_prefixed(&mut key, &q);
    key.push(' ');
    length_prefixed(&mut key, p);
    for (name, value) in target {
        if let Some(v) = value {
            named(&mut key, name, v);
        }
    }
    key.push_str(" |");
    key
}

/// `{len}:{value}`: the length makes the fields unambiguous whatever they contain.
pub fn length_prefixed(key: &mut String, value: &str) {
    push_int(key, value.len());
    key.push(':');
    key.push_str(value);
}

/// ` {name}={len}:{value}`.
fn named(key: &mut String, name: &str, value: &str) {
    key.push(' ');
    key.push_str(name);
    key.push('=');
    length_prefixed(key, value);
}

/// The full key of one variant: the primary key plus the values of the `Vary` headers.
#[must_use]
pub fn variant(primary: &str, vary: &[(String, Option<String>)]) -> String {
    let mut key = String::with_capacity(primary.len() + 32);
    key.push_str(primary);
    for (name, value) in vary {
        match value {
            Some(v) => named(&mut key, name, v),
            None => {
                key.push(' ');
                key.push_str(name);
                key.push('-');
            }
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries() {
        assert_eq!(normalize_query("a=%41&b=%2f"), "a=A&b=%2F");
        assert_ne!(normalize_query("a=1&b=2"), normalize_query("b=2&a=1"));
        assert_ne!(normalize_query("a=1&a=2"), normalize_query("a=2&a=1"));
        assert_ne!(normalize_query("q=a+b"), normalize_query("q=a%20b"));
        assert_eq!(normalize_query("x=%"), "x=%");
        assert_eq!(normalize_query("x=%zz&é=1"), "x=%zz&é=1");
    }

    #[test]
    fn keys_do_not_collide_across_fields() {
        assert_ne!(primary("/a", "b", None, []), primary("/a b", "", None, []));
        assert_ne!(
            primary("/a", "", Some("x"), []),
            primary("/a", "", None, [])
        );
        let host = |h| [("host", Some(h)), ("x-forwarded-host", None)];
        assert_ne!(
            primary("/a", "", None, host("a.example")),
            primary("/a", "", None, host("b.example"))
        );
        assert_ne!(
            primary("/a", "", None, host("a")),
            primary(
                "/a",
                "",
                None,
                [("host", None), ("x-forwarded-host", Some("a"))]
            )
        );
        let p = primary("/a", "", None, []);
        assert_ne!(
            variant(&p, &[("accept".into(), None)]),
            variant(&p, &[("accept".into(), Some(String::new()))])
        );
    }
}
