//! Strict JSON for token headers and claims: duplicate member names and deep nesting are errors.
//!
//! `serde_json` keeps the last of duplicate keys silently; RFC 7515 §5.2 lets a parser either reject
//! them or keep the last, and two parsers that choose differently disagree about what a token
//! says. We reject.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::map::Entry;
use serde_json::{Map, Number, Value};

/// Up to this many members, duplicates are found by scanning the names already read; larger
/// objects are checked once at the end by sorting, so a hostile token cannot make it quadratic.
const SCAN_LIMIT: usize = 32;

/// A JSON object as its members in document order.
///
/// Token headers and claims have a handful of members each: finding a name by comparing it with
/// a dozen short strings is cheaper than hashing it, and `serde_json::Map` (an `IndexMap` under
/// `preserve_order`) hashes every name with `SipHash` once to insert and again for each lookup.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Object(Vec<(Name, Value)>);

/// A verified token's claims: what the stages after auth read (the rate-limit key, the cache
/// key's principal) without depending on auth.
pub type Claims = Object;

/// A member name: the registered and usual names are static, so reading them allocates nothing.
type Name = Cow<'static, str>;

/// Calls the macro `$m` with the names that header and claim sets carry again and again
/// (RFC 7515 §4.1, RFC 7519 §4.1, `OpenID` Connect Core §2 and §5.1, RFC 8693 §4.2): the parser
/// keeps them as static strings, the Python binding as interned ones.
#[macro_export]
macro_rules! with_known_member_names {
    ($m:ident) => {
        $m!(
            "alg",
            "kid",
            "typ",
            "cty",
            "crit",
            "b64",
            "jwk",
            "jku",
            "x5u",
            "x5c",
            "x5t",
            "iss",
            "sub",
            "aud",
            "exp",
            "nbf",
            "iat",
            "jti",
            "scope",
            "scp",
            "azp",
            "client_id",
            "sid",
            "auth_time",
            "nonce",
            "acr",
            "amr",
            "email",
            "email_verified",
            "name",
            "roles",
            "groups"
        )
    };
}

fn known_name(name: &str) -> Option<&'static str> {
    macro_rules! known {
        ($($n:literal),*) => {
            match name {
                $($n => Some($n),)*
                _ => None,
            }
        };
    }
    with_known_member_names!(known)
}

impl Object {
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    #[must_use]
    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    #[must_use]
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v))
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// For tests and callers that build claims by hand; names are assumed distinct.
impl FromIterator<(String, Value)> for Object {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Self {
        Self(iter.into_iter().map(|(k, v)| (Cow::Owned(k), v)).collect())
    }
}

/// Why bytes are not a strict JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectError {
    /// Valid JSON, but not an object.
    NotAnObject,
    /// Not valid (strict) JSON.
    Invalid(String),
}

/// Parses `bytes` as a JSON object with the rules of [`parse_strict`].
pub fn parse_object(bytes: &[u8], max_depth: usize) -> Result<Object, ObjectError> {
    let starts_as_object = bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{');
    if !starts_as_object || max_depth == 0 {
        // Rare: let the general parser say whether it is JSON at all.
        return match parse_strict(bytes, max_depth) {
            Ok(_) => Err(ObjectError::NotAnObject),
            Err(e) => Err(ObjectError::Invalid(e)),
        };
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let object = ObjectSeed(Seed {
        depth: 1,
        max_depth,
    })
    .deserialize(&mut de)
    .map_err(|e| ObjectError::Invalid(strip_position(&e)))?;
    de.end()
        .map_err(|e| ObjectError::Invalid(strip_position(&e)))?;
    if object.len() > SCAN_LIMIT {
        let mut names: Vec<&str> = object.0.iter().map(|(k, _)| k.as_ref()).collect();
        names.sort_unstable();
        if let Some(name) = names
            .windows(2)
            .find_map(|p| (p[0] == p[1]).then_some(p[0]))
        {
            return Err(ObjectError::Invalid(format!("duplicate member {name:?}")));
        }
    }
    Ok(object)
}

/// Parses `bytes` as JSON with no duplicate keys at any level and at most `max_depth` levels of
/// arrays/objects.
pub fn parse_strict(bytes: &[u8], max_depth: usize) -> Result<Value, String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = Seed {
        depth: 0,
        max_depth,
    }
    .deserialize(&mut de)
    .map_err(|e| strip_position(&e))?;
    de.end().map_err(|e| strip_position(&e))?;
    Ok(v)
}

fn strip_position(e: &serde_json::Error) -> String {
    // serde_json's messages end with "at line L column C"; keep them, they help and leak nothing.
    e.to_string()
}

#[derive(Clone, Copy)]
struct Seed {
    depth: usize,
    max_depth: usize,
}

impl<'de> DeserializeSeed<'de> for Seed {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Seed {
    fn deeper<E: de::Error>(self) -> Result<Seed, E> {
        if self.depth >= self.max_depth {
            return Err(E::custom(format!(
                "JSON nested deeper than {} levels",
                self.max_depth
            )));
        }
        Ok(Seed {
            depth: self.depth + 1,
            max_depth: self.max_depth,
        })
    }
}

impl<'de> Visitor<'de> for Seed {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("non-finite number"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.deeper()?;
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(inner)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.deeper()?;
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let v = map.next_value_seed(inner)?;
            match out.entry(key) {
                Entry::Vacant(e) => {
                    e.insert(v);
                }
                Entry::Occupied(e) => {
                    return Err(de::Error::custom(format!("duplicate member {:?}", e.key())));
                }
            }
        }
        Ok(Value::Object(out))
    }
}

/// Reads a member name, borrowing the static copy when it is a known one.
struct NameSeed;

impl<'de> DeserializeSeed<'de> for NameSeed {
    type Value = Name;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Name, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for NameSeed {
    type Value = Name;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_str<E>(self, v: &str) -> Result<Name, E> {
        Ok(known_name(v).map_or_else(|| Cow::Owned(v.to_owned()), Cow::Borrowed))
    }

    fn visit_string<E>(self, v: String) -> Result<Name, E> {
        Ok(known_name(&v).map_or(Cow::Owned(v), Cow::Borrowed))
    }
}

/// The top level of a header or claims set: an object read into an [`Object`]; the `Seed` is
/// the one its members' values are read with.
struct ObjectSeed(Seed);

impl<'de> DeserializeSeed<'de> for ObjectSeed {
    type Value = Object;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Object, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ObjectSeed {
    type Value = Object;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Object, A::Error> {
        let mut out: Vec<(Name, Value)> = Vec::with_capacity(16);
        while let Some(key) = map.next_key_seed(NameSeed)? {
            if out.len() < SCAN_LIMIT && out.iter().any(|(k, _)| *k == key) {
                return Err(de::Error::custom(format!("duplicate member {key:?}")));
            }
            let v = map.next_value_seed(self.0)?;
            out.push((key, v));
        }
        Ok(Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_and_depth() {
        assert!(
            parse_strict(br#"{"a":1,"a":2}"#, 8)
                .unwrap_err()
                .contains("duplicate")
        );
        assert!(parse_strict(br#"{"a":{"b":1,"b":1}}"#, 8).is_err());
        assert!(
            parse_strict(b"[[[[1]]]]", 3)
                .unwrap_err()
                .contains("deeper")
        );
        assert_eq!(
            parse_strict(b"[[[1]]]", 3).unwrap(),
            serde_json::json!([[[1]]])
        );
        assert!(parse_strict(b"{} x", 3).is_err());
        assert_eq!(parse_strict(br#"{"exp": 1.5}"#, 3).unwrap()["exp"], 1.5);
    }

    #[test]
    fn objects() {
        let o = parse_object(br#" {"b": [1, {"c": null}], "a": "x"}"#, 3).unwrap();
        let names: Vec<&str> = o.iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["b", "a"], "document order is kept");
        assert_eq!(o.get("a"), Some(&Value::from("x")));
        assert!(!o.contains_key("c"));
        assert_eq!(parse_object(b"[1]", 3), Err(ObjectError::NotAnObject));
        assert_eq!(parse_object(b"\"{}\"", 3), Err(ObjectError::NotAnObject));
        assert!(matches!(
            parse_object(b"{", 3),
            Err(ObjectError::Invalid(_))
        ));
        assert!(matches!(
            parse_object(b"nope", 3),
            Err(ObjectError::Invalid(_))
        ));
        assert!(matches!(
            parse_object(b"{} {}", 3),
            Err(ObjectError::Invalid(_))
        ));
        assert!(
            matches!(parse_object(br#"{"a":1,"a":2}"#, 3), Err(ObjectError::Invalid(e)) if e.contains("duplicate"))
        );
        // Depth counts the object itself, as parse_strict does.
        assert!(parse_object(br#"{"a":[[1]]}"#, 3).is_ok());
        assert!(parse_object(br#"{"a":[[[1]]]}"#, 3).is_err());
        assert!(
            matches!(parse_object(b"{}", 0), Err(ObjectError::Invalid(e)) if e.contains("deeper than 0"))
        );
    }

    #[test]
    fn duplicates_past_the_scan_limit() {
        use std::fmt::Write as _;
        let members = |extra: &str| {
            let mut s = String::from("{");
            for i in 0..100 {
                let _ = write!(s, "\"m{i}\":{i},");
            }
            s.push_str(extra);
            s.push('}');
            s
        };
        assert_eq!(
            parse_object(members("\"z\":0").as_bytes(), 3)
                .unwrap()
                .len(),
            101
        );
        let dup = parse_object(members("\"m7\":0").as_bytes(), 3).unwrap_err();
        assert_eq!(dup, ObjectError::Invalid("duplicate member \"m7\"".into()));
        // Same verdict as the general parser, early or late.
        assert!(parse_strict(members("\"m7\":0").as_bytes(), 3).is_err());
        assert!(parse_object(members("\"m99\":0").as_bytes(), 3).is_err());
    }
}
