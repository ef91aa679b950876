//! The values of the cache's shared tier: a compact binary encoding bound to its key.
//!
//! `MAGIC` (with the format version), a kind byte, a 128-bit SHA-256 tag over the key's digest
//! and the payload, then the payload. A value read under another key, truncated, altered or from
//! another version fails the check or the field checks: a miss, never a crash and never another
//! user's response. (The tag is no MAC: someone who can write to Redis can forge it, so every
//! field is checked as well, and no count allocates before it is known to fit.)

use std::fmt::Write as _;

use aws_lc_rs::digest;

/// Magic and format version at the start of every value.
const MAGIC: &[u8; 4] = b"FGC\x01";
const KIND_ENTRY: u8 = 1;
const KIND_VARY: u8 = 2;
/// Domain separation for the key hash (a new layout gets a new string).
const KEY_DOMAIN: &[u8] = b"ferrogate/cache/v1\0";
/// Bytes of the integrity tag (SHA-256 of key digest and payload, truncated).
const TAG_LEN: usize = 16;

/// One response as L2 holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub status: u16,
    pub stored_at: u64,
    pub fresh_until: u64,
    pub stale_until: u64,
    pub etag: String,
    pub path: String,
    pub tags: Vec<String>,
    pub vary: Vec<String>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What a value decodes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Entry(Record),
    /// Under a primary key whose responses vary: the request headers they vary on.
    Vary(Vec<String>),
}

/// Why a value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corrupt {
    Magic,
    Truncated,
    Tag,
    Field(&'static str),
}

/// SHA-256 of the domain and the variant key: names the Redis key and binds its value to it.
#[must_use]
pub fn digest_of(variant_key: &str) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(KEY_DOMAIN);
    ctx.update(variant_key.as_bytes());
    let d = ctx.finish();
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

pub(super) fn unhex(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn tag_of(key_digest: &[u8; 32], payload: &[u8]) -> [u8; TAG_LEN] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(key_digest);
    ctx.update(payload);
    let d = ctx.finish();
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(&d.as_ref()[..TAG_LEN]);
    out
}

struct Writer(Vec<u8>);

impl Writer {
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.0
            .extend_from_slice(&u32::try_from(b.len()).unwrap_or(u32::MAX).to_le_bytes());
        self.0.extend_from_slice(b);
    }
    fn list(&mut self, items: &[String]) {
        self.u16(u16::try_from(items.len()).unwrap_or(u16::MAX));
        for s in items.iter().take(usize::from(u16::MAX)) {
            self.bytes(s.as_bytes());
        }
    }
}

/// `MAGIC, kind, tag, payload`: the tag covers the key digest and the payload, so a value moved
/// under another key, or altered, fails the check.
fn seal(kind: u8, key_digest: &[u8; 32], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAGIC.len() + 1 + TAG_LEN + payload.len());
    out.extend_from_slice(MAGIC);
    out.push(kind);
    let mut tagged = Vec::with_capacity(payload.len() + 1);
    tagged.push(kind);
    tagged.extend_from_slice(payload);
    out.extend_from_slice(&tag_of(key_digest, &tagged));
    out.extend_from_slice(payload);
    out
}

/// Encodes an entry for the key whose digest is `key_digest`.
#[must_use]
pub fn encode(key_digest: &[u8; 32], r: &Record) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(
        r.body.len()
            + r.headers
                .iter()
                .map(|(k, v)| k.len() + v.len() + 8)
                .sum::<usize>()
            + 128,
    ));
    w.u16(r.status);
    w.u64(r.stored_at);
    w.u64(r.fresh_until);
    w.u64(r.stale_until);
    w.bytes(r.etag.as_bytes());
    w.bytes(r.path.as_bytes());
    w.list(&r.tags);
    w.list(&r.vary);
    w.u16(u16::try_from(r.headers.len()).unwrap_or(u16::MAX));
    for (k, v) in r.headers.iter().take(usize::from(u16::MAX)) {
        w.bytes(k.as_bytes());
        w.bytes(v.as_bytes());
    }
    w.bytes(&r.body);
    seal(KIND_ENTRY, key_digest, &w.0)
}

/// Encodes a vary record for the primary key whose digest is `key_digest`.
#[must_use]
pub fn encode_vary(key_digest: &[u8; 32], names: &[String]) -> Vec<u8> {
    let mut w = Writer(Vec::new());
    w.list(names);
    seal(KIND_VARY, key_digest, &w.0)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Corrupt> {
        if self.0.len() < n {
            return Err(Corrupt::Truncated);
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u16(&mut self) -> Result<u16, Corrupt> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u64(&mut self) -> Result<u64, Corrupt> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    fn bytes(&mut self) -> Result<&'a [u8], Corrupt> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        let n = usize::try_from(u32::from_le_bytes(a)).map_err(|_| Corrupt::Truncated)?;
        self.take(n)
    }
    fn text(&mut self, what: &'static str) -> Result<String, Corrupt> {
        std::str::from_utf8(self.bytes()?)
            .map(str::to_owned)
            .map_err(|_| Corrupt::Field(what))
    }
    fn list(&mut self, what: &'static str) -> Result<Vec<String>, Corrupt> {
        let n = self.u16()?;
        // Each item takes at least its 4-byte length: a huge count on a short value is refused
        // before anything is allocated for it.
        if usize::from(n) * 4 > self.0.len() {
            return Err(Corrupt::Truncated);
        }
        (0..n).map(|_| self.text(what)).collect()
    }
}

/// Decodes and checks a value read under the key whose digest is `key_digest`.
pub fn decode(key_digest: &[u8; 32], value: &[u8]) -> Result<Value, Corrupt> {
    let rest = value.strip_prefix(MAGIC).ok_or(Corrupt::Magic)?;
    let (&kind, rest) = rest.split_first().ok_or(Corrupt::Truncated)?;
    if rest.len() < TAG_LEN {
        return Err(Corrupt::Truncated);
    }
    let (tag, payload) = rest.split_at(TAG_LEN);
    let mut tagged = Vec::with_capacity(payload.len() + 1);
    tagged.push(kind);
    tagged.extend_from_slice(payload);
    if tag_of(key_digest, &tagged)[..] != tag[..] {
        return Err(Corrupt::Tag);
    }
    let mut r = Reader(payload);
    let out = match kind {
        KIND_VARY => {
            let names = r.list("vary")?;
            if names.iter().any(|n| !crate::http::is_header_name(n)) {
                return Err(Corrupt::Field("vary"));
            }
            Value::Vary(names)
        }
        KIND_ENTRY => {
            let status = r.u16()?;
            if !(200..600).contains(&status) {
                return Err(Corrupt::Field("status"));
            }
            let stored_at = r.u64()?;
            let fresh_until = r.u64()?;
            let stale_until = r.u64()?;
            if fresh_until < stored_at || stale_until < fresh_until {
                return Err(Corrupt::Field("times"));
            }
            let etag = r.text("etag")?;
            let path = r.text("path")?;
            let tags = r.list("tags")?;
            let vary = r.list("vary")?;
            let n = r.u16()?;
            if usize::from(n) * 8 > r.0.len() {
                return Err(Corrupt::Truncated);
            }
            let mut headers = Vec::with_capacity(usize::from(n));
            for _ in 0..n {
                let k = r.text("header name")?;
                let v = r.text("header value")?;
                if !crate::http::is_header_name(&k) || v.contains(['\r', '\n', '\0']) {
                    return Err(Corrupt::Field("header"));
                }
                headers.push((k, v));
            }
            let body = r.bytes()?.to_vec();
            Value::Entry(Record {
                status,
                stored_at,
                fresh_until,
                stale_until,
                etag,
                path,
                tags,
                vary,
                headers,
                body,
            })
        }
        _ => return Err(Corrupt::Field("kind")),
    };
    if !r.0.is_empty() {
        return Err(Corrupt::Field("trailing bytes"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            status: 200,
            stored_at: 1_000_000_000_000,
            fresh_until: 1_030_000_000_000,
            stale_until: 1_060_000_000_000,
            etag: "\"abc\"".into(),
            path: "/items/1".into(),
            tags: vec!["items".into(), "item:1".into()],
            vary: vec!["accept".into()],
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("x-custom".into(), "ünïcode".into()),
            ],
            body: b"{\"id\": 1}".to_vec(),
        }
    }

    #[test]
    fn round_trip() {
        let d = digest_of("GET 1:/ |");
        let r = record();
        assert_eq!(decode(&d, &encode(&d, &r)), Ok(Value::Entry(r.clone())));
        let empty = Record {
            tags: vec![],
            vary: vec![],
            headers: vec![],
            body: vec![],
            etag: String::new(),
            ..r
        };
        assert_eq!(decode(&d, &encode(&d, &empty)), Ok(Value::Entry(empty)));
        let names = vec!["accept".to_owned(), "accept-language".to_owned()];
        assert_eq!(decode(&d, &encode_vary(&d, &names)), Ok(Value::Vary(names)));
    }

    #[test]
    fn corrupt_truncated_and_foreign_values_are_refused() {
        let d = digest_of("GET 1:/ |");
        let v = encode(&d, &record());
        // Every truncation, and every single-byte change, is refused (never a panic).
        for n in 0..v.len() {
            assert!(decode(&d, &v[..n]).is_err(), "truncated at {n}");
        }
        for i in 0..v.len() {
            let mut w = v.clone();
            w[i] ^= 0x5a;
            assert!(decode(&d, &w).is_err(), "byte {i} altered");
        }
        let mut longer = v.clone();
        longer.push(0);
        assert!(decode(&d, &longer).is_err());
        // The same value under another key (another user's, say) is refused.
        let other = digest_of("GET 1:/ 0: 5:alice |");
        assert_eq!(decode(&other, &v), Err(Corrupt::Tag));
        for junk in [
            &b""[..],
            b"FGC",
            b"FGC\x01",
            b"hello world",
            b"\xff\xff\xff\xff\xff",
        ] {
            assert!(decode(&d, junk).is_err());
        }
    }

    #[test]
    fn a_well_tagged_but_hostile_payload_is_refused() {
        // Someone with write access to Redis can forge the tag (it is no MAC): the fields are
        // still checked, and huge counts allocate nothing.
        let d = digest_of("k");
        let mut w = Writer(Vec::new());
        w.u16(200);
        w.u64(10);
        w.u64(5); // fresh_until before stored_at
        w.u64(20);
        assert_eq!(
            decode(&d, &seal(KIND_ENTRY, &d, &w.0)),
            Err(Corrupt::Field("times"))
        );
        let mut w = Writer(Vec::new());
        w.u16(u16::MAX);
        assert!(decode(&d, &seal(KIND_VARY, &d, &w.0)).is_err());
        let mut w = Writer(Vec::new());
        w.list(&["bad name".to_owned()]);
        assert_eq!(
            decode(&d, &seal(KIND_VARY, &d, &w.0)),
            Err(Corrupt::Field("vary"))
        );
        let mut r = record();
        r.headers = vec![("x".into(), "a\r\nset-cookie: x".into())];
        assert_eq!(decode(&d, &encode(&d, &r)), Err(Corrupt::Field("header")));
        r = record();
        r.status = 99;
        assert_eq!(decode(&d, &encode(&d, &r)), Err(Corrupt::Field("status")));
    }
}
