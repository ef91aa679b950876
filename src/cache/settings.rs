//! The cache's settings: the `[cache]` section and the per-route `cache` policy key.

use std::time::Duration;

use serde_json::Value;

use crate::issues::{Issues, join, show};

/// A route's cache policy.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CachePolicy {
    pub enabled: bool,
    /// Seconds, when the response gives no `s-maxage`/`max-age`; `None`: the `[cache]` default.
    pub ttl: Option<u64>,
    /// The response is the same for everyone: no principal in the key, cookies and
    /// `Authorization` do not bypass.
    pub public: bool,
    /// Extra request headers responses may vary on (beyond the `[cache] vary` list).
    pub vary: Vec<String>,
    /// Statuses that may be stored (default `[cache] statuses`).
    pub statuses: Option<Vec<u16>>,
}

impl CachePolicy {
    /// `cache = false | <ttl seconds> | true | { ttl, public, vary, statuses }`.
    pub fn parse(v: &Value, at: &str, issues: &mut Issues) -> Option<CachePolicy> {
        match v {
            Value::Bool(b) => Some(CachePolicy {
                enabled: *b,
                ..Default::default()
            }),
            Value::Number(_) => {
                let ttl = issues.positive_int(v, at)?;
                Some(CachePolicy {
                    enabled: true,
                    ttl: Some(ttl),
                    ..Default::default()
                })
            }
            _ => {
                let map = issues.object(v, at)?;
                issues.unknown_keys(map, &["ttl", "public", "vary", "statuses"], at);
                let mut p = CachePolicy {
                    enabled: true,
                    ..Default::default()
                };
                if let Some(t) = map.get("ttl") {
                    p.ttl = issues.positive_int(t, &join(at, "ttl"));
                }
                if let Some(b) = map.get("public") {
                    p.public = issues.boolean(b, &join(at, "public")).unwrap_or(false);
                }
                if let Some(vl) = map.get("vary") {
                    let vat = join(at, "vary");
                    for (i, h) in issues
                        .strings(vl, &vat)
                        .unwrap_or_default()
                        .into_iter()
                        .enumerate()
                    {
                        if crate::http::is_header_name(h) {
                            p.vary.push(h.to_ascii_lowercase());
                        } else {
                            issues.push(
                                format!("{vat}[{i}]"),
                                format!("not a header name: {}", show(&Value::from(h))),
                            );
                        }
                    }
                }
                if let Some(s) = map.get("statuses") {
                    p.statuses = Some(statuses(s, &join(at, "statuses"), issues));
                }
                Some(p)
            }
        }
    }

    #[must_use]
    pub fn describe(&self) -> String {
        if !self.enabled {
            return "off".into();
        }
        let mut s = self
            .ttl
            .map_or_else(|| "default ttl".to_owned(), |t| format!("ttl {t}s"));
        if self.public {
            s.push_str(", public");
        }
        s
    }
}

fn statuses(v: &Value, at: &str, issues: &mut Issues) -> Vec<u16> {
    let Some(items) = v.as_array() else {
        issues.push(
            at,
            format!("expected a list of status codes, got {}", show(v)),
        );
        return Vec::new();
    };
    items
        .iter()
        .enumerate()
        .filter_map(
            |(i, s)| match s.as_u64().and_then(|n| u16::try_from(n).ok()) {
                // A partial content or a not-modified answer is not the resource's representation:
                // stored, it would be served whole to every request.
                Some(n) if (200..600).contains(&n) && !matches!(n, 206 | 304) => Some(n),
                _ => {
                    issues.push(
                        format!("{at}[{i}]"),
                        format!("not a cacheable status code: {}", show(s)),
                    );
                    None
                }
            },
        )
        .collect()
}

/// How the cache says what it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusStyle {
    /// RFC 9211 `Cache-Status`.
    CacheStatus,
    /// `X-Cache: HIT | MISS | BYPASS`.
    XCache,
}

/// `[cache] max_entry_bytes`'s default; also what a standalone `ResponseCache`'s shards are sized
/// for.
pub const MAX_ENTRY_BYTES: usize = 1 << 20;

/// The `[cache]` section.
#[derive(Debug, Clone)]
pub struct CacheSettings {
    pub max_bytes: u64,
    pub default_ttl: u64,
    pub statuses: Vec<u16>,
    pub vary: Vec<String>,
    pub tags_header: String,
    pub style: StatusStyle,
    pub max_entry_bytes: usize,
    pub coalesce_timeout: Duration,
    /// The claims that identify a user (default `sub`); all must be present for a per-user entry.
    /// `iss` is always added to the key when the token has one (OIDC: `sub` is unique per issuer).
    pub principal_claims: Vec<String>,
    /// `shared = "redis"` (the `[redis]` server) or a URL: a second tier in Redis, shared by
    /// every process. It always has a client (pool, breaker) of its own, so its failures never
    /// open the breaker of the limits or the revocation list.
    pub shared: bool,
    /// `shared = "redis://..."`: the tier's own server (or database), apart from the limits'.
    pub shared_url: Option<String>,
    /// Larger entries stay in L1 only (they are still indexed in Redis, so purges reach them).
    pub shared_max_entry_bytes: usize,
    /// The tier's memory budget in Redis; `None`: 64 MiB, or a quarter of the server's
    /// `maxmemory` when that is smaller.
    pub shared_max_bytes: Option<u64>,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            max_bytes: 64 << 20,
            default_ttl: 60,
            statuses: vec![200],
            vary: vec![
                "accept".into(),
                "accept-encoding".into(),
                "accept-language".into(),
            ],
            tags_header: "x-cache-tags".into(),
            style: StatusStyle::CacheStatus,
            max_entry_bytes: MAX_ENTRY_BYTES,
            coalesce_timeout: Duration::from_secs(5),
            principal_claims: vec!["sub".into()],
            shared: false,
            shared_url: None,
            shared_max_entry_bytes: 256 << 10,
            shared_max_bytes: None,
        }
    }
}

impl CacheSettings {
    /// `shared`, `shared_max_entry_bytes`, `shared_max_bytes`: the Redis tier.
    fn parse_shared(
        &mut self,
        map: &serde_json::Map<String, Value>,
        at: &str,
        issues: &mut Issues,
    ) {
        if let Some(x) = map.get("shared") {
            match x.as_str() {
                Some("redis") => self.shared = true,
                // Checked when the gate builds the tier's client.
                Some(url) if url.contains("://") => {
                    self.shared = true;
                    self.shared_url = Some(url.to_owned());
                }
                _ => issues.push(
                    join(at, "shared"),
                    format!(
                        "expected \"redis\" (the [redis] server) or a redis:// URL, got {}",
                        crate::issues::show(x)
                    ),
                ),
            }
        }
        if let Some(x) = map.get("shared_max_bytes") {
            self.shared_max_bytes = issues.positive_int(x, &join(at, "shared_max_bytes"));
        }
        if let Some(x) = map.get("shared_max_entry_bytes") {
            self.shared_max_entry_bytes = issues
                .positive_int(x, &join(at, "shared_max_entry_bytes"))
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(self.shared_max_entry_bytes);
        }
    }

    pub fn parse(v: &Value, at: &str, issues: &mut Issues) -> CacheSettings {
        let mut s = CacheSettings::default();
        let Some(map) = issues.object(v, at) else {
            return s;
        };
        issues.unknown_keys(
            map,
            &[
                "max_bytes",
                "default_ttl",
                "statuses",
                "vary",
                "tags_header",
                "status_header",
                "max_entry_bytes",
                "coalesce_timeout",
                "principal_claims",
                "shared",
                "shared_max_entry_bytes",
                "shared_max_bytes",
            ],
            at,
        );
        s.parse_shared(map, at, issues);
        if let Some(x) = map.get("max_bytes") {
            s.max_bytes = issues
                .positive_int(x, &join(at, "max_bytes"))
                .unwrap_or(s.max_bytes);
        }
        if let Some(x) = map.get("default_ttl") {
            s.default_ttl = issues
                .positive_int(x, &join(at, "default_ttl"))
                .unwrap_or(s.default_ttl);
        }
        if let Some(x) = map.get("statuses") {
            s.statuses = statuses(x, &join(at, "statuses"), issues);
        }
        if let Some(x) = map.get("vary") {
            s.vary = issues
                .strings(x, &join(at, "vary"))
                .unwrap_or_default()
                .into_iter()
                .map(str::to_ascii_lowercase)
                .collect();
        }
        if let Some(x) = map.get("tags_header") {
            match issues.string(x, &join(at, "tags_header")) {
                Some(h) if crate::http::is_header_name(h) => s.tags_header = h.to_ascii_lowercase(),
                Some(h) => issues.push(
                    join(at, "tags_header"),
                    format!("not a header name: {}", show(&Value::from(h))),
                ),
                None => {}
            }
        }
        if let Some(x) = map.get("status_header") {
            s.style =
                match issues.one_of(x, &["cache-status", "x-cache"], &join(at, "status_header")) {
                    Some("x-cache") => StatusStyle::XCache,
                    _ => StatusStyle::CacheStatus,
                };
        }
        if let Some(x) = map.get("max_entry_bytes") {
            s.max_entry_bytes = issues
                .positive_int(x, &join(at, "max_entry_bytes"))
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(s.max_entry_bytes);
        }
        if let Some(x) = map.get("principal_claims") {
            let pat = join(at, "principal_claims");
            if let Some(names) = issues.strings(x, &pat) {
                if names.is_empty() {
                    issues.push(pat, "at least one claim is needed");
                } else {
                    s.principal_claims = names.into_iter().map(str::to_owned).collect();
                }
            }
        }
        if let Some(x) = map.get("coalesce_timeout") {
            if let Some(secs) = issues.non_negative(x, &join(at, "coalesce_timeout")) {
                s.coalesce_timeout =
                    Duration::try_from_secs_f64(secs.min(60.0)).unwrap_or(s.coalesce_timeout);
            }
        }
        s
    }
}
