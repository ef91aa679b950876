//! The `[redis]` config section: where the shared store is and how long to wait for it.
//!
//! ```toml
//! [redis]
//! url = "redis://127.0.0.1:6379/0"  # rediss://... (TLS), unix:///run/redis.sock,
//!                                   # redis+cluster://h1:6379,h2:6379 (Redis Cluster)
//! prefix = "ferrogate:"             # every key and channel starts with it
//! connect_timeout_ms = 250
//! timeout_ms = 100                  # per command, read and write
//! pool_size = 32                    # idle connections kept for reuse
//! breaker_failures = 3              # consecutive failures that open the circuit breaker
//! breaker_cooldown_ms = 1000        # how long it stays open before one probe
//! tls_ca_file = "/etc/ssl/redis-ca.pem"  # rediss:// only: trust this CA instead of the system's
//! tls_cert_file = "client.pem"      # and mutual TLS: a client certificate and its key
//! tls_key_file = "client.key"
//! ```

use std::time::Duration;

use serde_json::{Map, Value};

use crate::issues::{Issues, join, show};

/// Where the store is: one server (TCP, TLS or a Unix socket) or a cluster's seed nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A URL the redis crate opens as it is.
    Single(String),
    /// Seed node URLs (`redis://host:port` or `rediss://...`).
    Cluster(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSettings {
    pub target: Target,
    /// The URL as configured, with any password replaced, for messages.
    pub display: String,
    pub prefix: String,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub pool_size: usize,
    pub breaker_failures: u32,
    pub breaker_cooldown: Duration,
    /// PEM files read at start-up, for `rediss://`.
    pub tls: Option<TlsFiles>,
}

/// TLS material, PEM bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsFiles {
    pub ca: Option<Vec<u8>>,
    /// Client certificate and key, for mutual TLS.
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

impl TlsFiles {
    #[must_use]
    pub fn certificates(&self) -> redis::TlsCertificates {
        redis::TlsCertificates {
            client_tls: self.client.as_ref().map(|(c, k)| redis::ClientTlsConfig {
                client_cert: c.clone(),
                client_key: k.clone(),
            }),
            root_cert: self.ca.clone(),
        }
    }
}

const KEYS: &[&str] = &[
    "url",
    "prefix",
    "connect_timeout_ms",
    "timeout_ms",
    "pool_size",
    "breaker_failures",
    "breaker_cooldown_ms",
    "tls_ca_file",
    "tls_cert_file",
    "tls_key_file",
];

impl RedisSettings {
    /// Settings for `url` with every default.
    pub fn from_url(url: &str) -> Result<Self, String> {
        Ok(Self {
            target: parse_url(url)?,
            display: redact(url),
            prefix: "ferrogate:".into(),
            connect_timeout: Duration::from_millis(250),
            timeout: Duration::from_millis(100),
            pool_size: 32,
            breaker_failures: 3,
            breaker_cooldown: Duration::from_secs(1),
            tls: None,
        })
    }

    /// `base`'s settings (timeouts, prefix, pool, breaker, TLS files; every default without one)
    /// for another server, `url`: a feature that keeps its data apart (`[cache] shared = URL`).
    pub fn with_url(base: Option<&Self>, url: &str) -> Result<Self, String> {
        let fresh = Self::from_url(url)?;
        let tls_url = ["rediss://", "rediss+cluster://", "valkeys://"]
            .iter()
            .any(|s| url.starts_with(s));
        Ok(match base {
            Some(b) => Self {
                target: fresh.target,
                display: fresh.display,
                // TLS files are for a TLS URL only (as in `[redis]` itself).
                tls: b.tls.clone().filter(|_| tls_url),
                ..b.clone()
            },
            None => fresh,
        })
    }

    /// Reads a `[redis]` table; `url_override` is a URL given elsewhere (`rate_limit.storage`).
    pub fn parse(
        v: Option<&Value>,
        url_override: Option<&str>,
        issues: &mut Issues,
    ) -> Option<Self> {
        let at = "redis";
        let empty = Map::new();
        let map = match v {
            Some(v) => issues.object(v, at)?,
            None => &empty,
        };
        issues.unknown_keys(map, KEYS, at);
        let url = match (map.get("url"), url_override) {
            (Some(u), _) => issues.string(u, &join(at, "url"))?,
            (None, Some(u)) => u,
            (None, None) => {
                issues.push(
                    join(at, "url"),
                    "missing (e.g. \"redis://127.0.0.1:6379/0\")",
                );
                return None;
            }
        };
        let mut out = match Self::from_url(url) {
            Ok(s) => s,
            Err(e) => {
                issues.push(join(at, "url"), e);
                return None;
            }
        };
        if let Some(p) = map.get("prefix") {
            let key = join(at, "prefix");
            match issues.string(p, &key) {
                Some(p) if p.len() <= 64 && !p.contains(['{', '}']) && !p.chars().any(char::is_whitespace) => {
                    p.clone_into(&mut out.prefix);
                }
                Some(p) => issues.push(
                    key,
                    format!(
                        "expected at most 64 characters without blanks or braces (braces are hash tags), got {}",
                        show(&Value::from(p))
                    ),
                ),
                None => {}
            }
        }
        let millis = |name: &str, max: u64, issues: &mut Issues| -> Option<Duration> {
            let v = map.get(name)?;
            let key = join(at, name);
            match v.as_u64() {
                Some(n) if (1..=max).contains(&n) => Some(Duration::from_millis(n)),
                _ => {
                    issues.push(
                        key,
                        format!("expected milliseconds, 1 to {max}, got {}", show(v)),
                    );
                    None
                }
            }
        };
        if let Some(d) = millis("connect_timeout_ms", 60_000, issues) {
            out.connect_timeout = d;
        }
        if let Some(d) = millis("timeout_ms", 60_000, issues) {
            out.timeout = d;
        }
        if let Some(d) = millis("breaker_cooldown_ms", 3_600_000, issues) {
            out.breaker_cooldown = d;
        }
        for (name, max) in [("pool_size", 1024u64), ("breaker_failures", 1000)] {
            if let Some(v) = map.get(name) {
                match v.as_u64() {
                    Some(n) if (1..=max).contains(&n) => {
                        if name == "pool_size" {
                            out.pool_size = usize::try_from(n).unwrap_or(1);
                        } else {
                            out.breaker_failures = u32::try_from(n).unwrap_or(1);
                        }
                    }
                    _ => issues.push(
                        join(at, name),
                        format!("expected an integer, 1 to {max}, got {}", show(v)),
                    ),
                }
            }
        }
        out.tls = parse_tls(map, url, issues);
        Some(out)
    }
}

fn parse_tls(map: &Map<String, Value>, url: &str, issues: &mut Issues) -> Option<TlsFiles> {
    let at = "redis";
    let names = ["tls_ca_file", "tls_cert_file", "tls_key_file"];
    if names.iter().all(|n| !map.contains_key(*n)) {
        return None;
    }
    if !url.starts_with("rediss://")
        && !url.starts_with("rediss+cluster://")
        && !url.starts_with("valkeys://")
    {
        for n in names.iter().filter(|n| map.contains_key(**n)) {
            issues.push(join(at, n), "TLS files need a rediss:// URL");
        }
        return None;
    }
    let mut read = |name: &str| -> Option<Vec<u8>> {
        let v = map.get(name)?;
        let key = join(at, name);
        let path = issues.string(v, &key)?;
        match std::fs::read(path) {
            Ok(bytes) if bytes.windows(11).any(|w| w == b"-----BEGIN ") => Some(bytes),
            Ok(_) => {
                issues.push(key, format!("{} is not a PEM file", show(v)));
                None
            }
            Err(e) => {
                issues.push(key, format!("cannot read {}: {e}", show(v)));
                None
            }
        }
    };
    let ca = read("tls_ca_file");
    let cert = read("tls_cert_file");
    let key = read("tls_key_file");
    let client = match (cert, key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => {
            issues.push(
                join(at, "tls_cert_file"),
                "mutual TLS needs both tls_cert_file and tls_key_file",
            );
            None
        }
    };
    Some(TlsFiles { ca, client })
}

/// Checks a URL's shape without connecting.
pub fn parse_url(url: &str) -> Result<Target, String> {
    let bad = |why: &str| format!("{why}: {}", show(&Value::from(redact(url))));
    if let Some(rest) = url
        .strip_prefix("redis+cluster://")
        .map(|r| ("redis", r))
        .or_else(|| url.strip_prefix("rediss+cluster://").map(|r| ("rediss", r)))
    {
        let (scheme, rest) = rest;
        let (auth, hosts) = match rest.rsplit_once('@') {
            Some((a, h)) => (format!("{a}@"), h),
            None => (String::new(), rest),
        };
        let hosts = hosts.trim_end_matches('/');
        let nodes: Vec<String> = hosts
            .split(',')
            .map(|h| format!("{scheme}://{auth}{}", h.trim()))
            .collect();
        if hosts.is_empty() || hosts.split(',').any(|h| h.trim().is_empty()) {
            return Err(bad(
                "a cluster URL lists host:port seed nodes separated by commas",
            ));
        }
        for n in &nodes {
            redis::Client::open(n.as_str())
                .map_err(|e| bad(&format!("invalid cluster node ({e})")))?;
        }
        return Ok(Target::Cluster(nodes));
    }
    let known = [
        "redis://",
        "rediss://",
        "unix://",
        "redis+unix://",
        "valkey://",
        "valkeys://",
    ];
    if !known.iter().any(|s| url.starts_with(s)) {
        return Err(bad(
            "expected a redis://, rediss://, unix:// or redis+cluster:// URL",
        ));
    }
    redis::Client::open(url).map_err(|e| bad(&format!("invalid Redis URL ({e})")))?;
    Ok(Target::Single(url.to_owned()))
}

/// The URL with its password (if any) replaced, so it can go into messages and logs.
#[must_use]
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.rsplit_once('@') {
        Some((auth, host)) => {
            let user = auth.split_once(':').map_or("", |(u, _)| u);
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("redis://127.0.0.1:6379/2").unwrap(),
            Target::Single("redis://127.0.0.1:6379/2".into())
        );
        assert!(matches!(
            parse_url("unix:///tmp/r.sock"),
            Ok(Target::Single(_))
        ));
        assert!(matches!(
            parse_url("rediss://h:6380"),
            Ok(Target::Single(_))
        ));
        assert_eq!(
            parse_url("redis+cluster://:pw@a:7000,b:7001/").unwrap(),
            Target::Cluster(vec![
                "redis://:pw@a:7000".into(),
                "redis://:pw@b:7001".into()
            ])
        );
        for bad in [
            "http://x",
            "redis+cluster://",
            "redis+cluster://a:1,,b:2",
            "memcached://x",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
        let e = parse_url("http://user:secret@x").unwrap_err();
        assert!(!e.contains("secret"), "{e}");
        assert_eq!(redact("redis://u:secret@h:1/0"), "redis://u:***@h:1/0");
    }

    #[test]
    fn section_reports_each_bad_value() {
        let mut issues = Issues::default();
        let v = serde_json::json!({"url": "redis://h", "prefix": "a{b}", "timeout_ms": 0,
                                   "pool_size": "many", "colour": 1});
        assert!(RedisSettings::parse(Some(&v), None, &mut issues).is_some());
        let e = issues.finish(()).unwrap_err();
        let keys: Vec<&str> = e.issues.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "redis.colour",
                "redis.prefix",
                "redis.timeout_ms",
                "redis.pool_size"
            ]
        );
        let mut issues = Issues::default();
        assert!(RedisSettings::parse(None, None, &mut issues).is_none());
        assert_eq!(issues.finish(()).unwrap_err().issues[0].key, "redis.url");
    }
}
