//! The rate-limit parts of the gate config: top-level `limits` (named, shared), `client_ip`,
//! `rate_limit` (store settings), and the per-route / `defaults` policy key `limit`.
//!
//! ```toml
//! [rate_limit]
//! storage = "memory"          # or "host" (one file shared by this host's worker processes),
//!                             # "redis" ([redis] section) or a URL: "redis://host:6379/0"
//! host_path = "/run/app/limits.mdb"  # storage = "host": the file (default: per app, under
//!                             # $XDG_RUNTIME_DIR/ferrogate or <temp>/ferrogate-<uid>)
//! on_error = "local"          # Redis unreachable: "allow", "deny" (503) or "local" (in memory,
//!                             # each quota divided by `workers`); a limit may override it
//! workers = 4                 # processes sharing the quota (the Python side detects it)
//! batch = 0                   # > 0: lease this many requests' worth from Redis at a time
//! batch_ttl_ms = 1000         # an unused lease goes back to Redis after this long
//! legacy_headers = false      # also send X-RateLimit-Limit/Remaining/Reset
//! max_keys = 1_000_000        # per limiter
//!
//! [client_ip]
//! trusted_proxies = ["10.0.0.0/8"]   # or: trusted_hops = 1
//! header = "x-forwarded-for"         # or "forwarded" (RFC 7239)
//! ipv6_prefix = 64
//!
//! [limits.api]                        # a named limit, shared by every route that uses it
//! quota = "100/minute; 10000/day"
//! key = ["sub", "ip"]
//!
//! [[routes]]
//! path = "/login"
//! limit = "5/minute"                  # inline: counted for this route alone
//! [[routes]]
//! path = "/items/{id}"
//! limit = { use = "api", cost = 2, dry_run = true }
//! ```

use serde_json::{Map, Value};

use super::client_ip::{Cidr, ClientIp, ForwardedHeader, Trust};
use super::gcra::MAX_QUOTAS;
use super::limiter::DEFAULT_MAX_KEYS;
use super::quota::{Quota, parse_quotas};
use crate::issues::{Issues, join, show};

/// One part of a limit's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPart {
    /// The client address (see `client_ip`), masked to its prefix.
    Ip,
    /// The verified JWT `sub` claim.
    Subject,
    /// Any verified JWT claim.
    Claim(String),
    /// A request header, e.g. an API key (lower-case name).
    Header(String),
}

impl KeyPart {
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::Ip => "ip".into(),
            Self::Subject => "sub".into(),
            Self::Claim(c) => format!("claim:{c}"),
            Self::Header(h) => format!("header:{h}"),
        }
    }
}

/// Settings a route may override on a named limit.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LimitOptions {
    pub cost: Option<u64>,
    pub on_error: Option<OnError>,
    pub dry_run: Option<bool>,
    pub exempt_methods: Option<Vec<String>>,
    pub exempt_ips: Option<Vec<Cidr>>,
    pub exempt_subjects: Option<Vec<String>>,
}

impl LimitOptions {
    /// `self` over `base`.
    #[must_use]
    pub fn over(&self, base: &LimitOptions) -> LimitOptions {
        LimitOptions {
            cost: self.cost.or(base.cost),
            on_error: self.on_error.or(base.on_error),
            dry_run: self.dry_run.or(base.dry_run),
            exempt_methods: self
                .exempt_methods
                .clone()
                .or_else(|| base.exempt_methods.clone()),
            exempt_ips: self.exempt_ips.clone().or_else(|| base.exempt_ips.clone()),
            exempt_subjects: self
                .exempt_subjects
                .clone()
                .or_else(|| base.exempt_subjects.clone()),
        }
    }
}

/// A limit's definition: quotas, key, store bound and options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitDef {
    pub quota_text: String,
    pub quotas: Vec<Quota>,
    pub key: Vec<KeyPart>,
    pub max_keys: Option<usize>,
    pub options: LimitOptions,
}

/// What a route's `limit` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitRef {
    /// A `[limits.<name>]` entry, shared with every other route naming it.
    Named { name: String, options: LimitOptions },
    /// A limit of this route's own.
    Inline(LimitDef),
}

/// A route's resolved `limit` policy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LimitPolicy {
    /// No rate limit (`limit = false`, or nothing configured).
    #[default]
    Off,
    Limits(Vec<LimitRef>),
}

impl LimitPolicy {
    /// For `explain`.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::Off => "off".into(),
            Self::Limits(refs) => refs
                .iter()
                .map(|r| match r {
                    LimitRef::Named { name, .. } => format!("{name} (shared)"),
                    LimitRef::Inline(d) => format!(
                        "{} by {}",
                        d.quota_text,
                        d.key
                            .iter()
                            .map(KeyPart::describe)
                            .collect::<Vec<_>>()
                            .join("+")
                    ),
                })
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

/// Where counts live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Storage {
    /// In each process (counts multiply by the number of worker processes).
    #[default]
    Memory,
    /// In one file shared by every worker process on this host (LMDB), exact, with no server.
    Host,
    /// In Redis, shared by every process and host (the `[redis]` section).
    Redis,
}

/// What a shared-store limit does when its store cannot answer (Redis down, timing out, breaker
/// open; the host file failing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// Let the request through (and count it as failed open).
    Allow,
    /// Refuse with 503 problem+json.
    Deny,
    /// Count in this process's memory, each quota divided by `workers`, until the store is back.
    #[default]
    Local,
}

impl OnError {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::Local => "local",
        }
    }

    fn parse(v: &Value, at: &str, issues: &mut Issues) -> Option<Self> {
        match issues.one_of(v, &["allow", "deny", "local"], at)? {
            "allow" => Some(Self::Allow),
            "deny" => Some(Self::Deny),
            _ => Some(Self::Local),
        }
    }
}

/// Top-level rate-limit settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub named: Vec<(String, LimitDef)>,
    pub client_ip: ClientIp,
    pub legacy_headers: bool,
    pub max_keys: usize,
    pub storage: Storage,
    /// A URL given as `storage` (it stands for `[redis] url`).
    pub storage_url: Option<String>,
    /// `storage = "host"`: the file (None: the app's default file).
    pub host_path: Option<String>,
    pub on_error: OnError,
    /// Worker processes sharing each quota, for the `local` fallback's division.
    pub workers: u64,
    /// Requests' worth leased from Redis per round trip (0: every hit goes to Redis).
    pub batch: u64,
    pub batch_ttl_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            named: Vec::new(),
            client_ip: ClientIp::default(),
            legacy_headers: false,
            max_keys: DEFAULT_MAX_KEYS,
            storage: Storage::Memory,
            storage_url: None,
            host_path: None,
            on_error: OnError::Local,
            workers: 1,
            batch: 0,
            batch_ttl_ms: 1000,
        }
    }
}

/// Top-level keys this module reads.
pub const TOP_LEVEL_KEYS: &[&str] = &["limits", "client_ip", "rate_limit"];
/// Methods exempt unless a limit says otherwise: CORS preflights are not API calls.
pub const DEFAULT_EXEMPT_METHODS: &[&str] = &["OPTIONS"];

const DEF_KEYS: &[&str] = &[
    "quota",
    "burst",
    "key",
    "max_keys",
    "cost",
    "on_error",
    "dry_run",
    "exempt_methods",
    "exempt_ips",
    "exempt_subjects",
];
const REF_KEYS: &[&str] = &[
    "use",
    "cost",
    "on_error",
    "dry_run",
    "exempt_methods",
    "exempt_ips",
    "exempt_subjects",
];

/// A limit name: letters, digits, `_`, `-`, `.`, starting with a letter or `_`.
#[must_use]
pub fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && s.len() <= 64
}

impl Settings {
    /// Reads `limits`, `client_ip` and `rate_limit` from the config root.
    pub fn parse(root: &Map<String, Value>, issues: &mut Issues) -> Self {
        let mut out = Self::default();
        if let Some(v) = root.get("rate_limit") {
            out.parse_store(v, issues);
        }
        if let Some(v) = root.get("client_ip") {
            if let Some(c) = parse_client_ip(v, "client_ip", issues) {
                out.client_ip = c;
            }
        }
        if let Some(v) = root.get("limits") {
            if let Some(map) = issues.object(v, "limits") {
                for (name, def) in map {
                    let at = join("limits", name);
                    if !is_name(name) {
                        issues.push(
                            &at,
                            "a limit name is letters, digits, '_', '-' or '.', starting with a letter",
                        );
                        continue;
                    }
                    let def = match def {
                        Value::String(s) => parse_inline_string(s, &at, issues),
                        other => parse_def(other, &at, issues),
                    };
                    if let Some(d) = def {
                        out.named.push((name.clone(), d));
                    }
                }
            }
        }
        out
    }

    fn parse_store(&mut self, v: &Value, issues: &mut Issues) {
        let at = "rate_limit";
        let Some(map) = issues.object(v, at) else {
            return;
        };
        issues.unknown_keys(
            map,
            &[
                "storage",
                "host_path",
                "legacy_headers",
                "max_keys",
                "on_error",
                "workers",
                "batch",
                "batch_ttl_ms",
            ],
            at,
        );
        if let Some(s) = map.get("storage") {
            let key = join(at, "storage");
            match s.as_str() {
                Some("memory") => self.storage = Storage::Memory,
                Some("host") => self.storage = Storage::Host,
                Some("redis") => self.storage = Storage::Redis,
                Some(url) if url.contains("://") => {
                    // Checked with the rest of the [redis] settings.
                    self.storage = Storage::Redis;
                    self.storage_url = Some(url.to_owned());
                }
                _ => issues.push(
                    key,
                    format!(
                        "expected \"memory\", \"host\", \"redis\" or a redis:// URL, got {}",
                        show(s)
                    ),
                ),
            }
        }
        if let Some(p) = map.get("host_path") {
            let key = join(at, "host_path");
            match p.as_str() {
                Some(s) if !s.is_empty() && !s.contains('\0') => {
                    self.host_path = Some(s.to_owned());
                }
                _ => issues.push(
                    key.clone(),
                    format!("expected a file path, got {}", show(p)),
                ),
            }
            if self.storage != Storage::Host {
                issues.push(
                    key,
                    "is the file of storage = \"host\"; storage is not \"host\"",
                );
            }
        }
        if let Some(v) = map.get("on_error") {
            if let Some(m) = OnError::parse(v, &join(at, "on_error"), issues) {
                self.on_error = m;
            }
        }
        for (name, max, slot) in [
            ("workers", 4096u64, &mut self.workers),
            ("batch", 1_000_000, &mut self.batch),
            ("batch_ttl_ms", 3_600_000, &mut self.batch_ttl_ms),
        ] {
            if let Some(v) = map.get(name) {
                let min = u64::from(name != "batch");
                match v.as_u64() {
                    Some(n) if (min..=max).contains(&n) => *slot = n,
                    _ => issues.push(
                        join(at, name),
                        format!("expected an integer, {min} to {max}, got {}", show(v)),
                    ),
                }
            }
        }
        if self.batch > 0 && self.storage != Storage::Redis {
            issues.push(
                join(at, "batch"),
                "batching leases counts from Redis; it needs storage = \"redis\"",
            );
        }
        if let Some(b) = map.get("legacy_headers") {
            if let Some(b) = issues.boolean(b, &join(at, "legacy_headers")) {
                self.legacy_headers = b;
            }
        }
        if let Some(n) = map.get("max_keys") {
            if let Some(n) = positive_usize(n, &join(at, "max_keys"), issues) {
                self.max_keys = n;
            }
        }
    }

    /// The named limit called `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&LimitDef> {
        self.named.iter().find(|(n, _)| n == name).map(|(_, d)| d)
    }

    /// The key of the first of `policy`'s limits whose every part only a verified token can
    /// supply (`sub`, `claim:<name>`), as written in the config. (A compound key with `ip` or a
    /// header still tells clients apart without a token.)
    #[must_use]
    pub fn token_only_key(&self, policy: &LimitPolicy) -> Option<String> {
        let LimitPolicy::Limits(refs) = policy else {
            return None;
        };
        refs.iter()
            .filter_map(|r| match r {
                LimitRef::Inline(d) => Some(d),
                LimitRef::Named { name, .. } => self.get(name),
            })
            .find(|d| {
                !d.key.is_empty()
                    && d.key
                        .iter()
                        .all(|k| matches!(k, KeyPart::Subject | KeyPart::Claim(_)))
            })
            .map(|d| {
                d.key
                    .iter()
                    .map(KeyPart::describe)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
    }

    /// Checks that every limit a policy names exists and that its cost fits every burst.
    pub fn check_policy(&self, policy: Option<&LimitPolicy>, at: &str, issues: &mut Issues) {
        let Some(LimitPolicy::Limits(refs)) = policy else {
            return;
        };
        let at = join(at, "limit");
        for (i, r) in refs.iter().enumerate() {
            let here = if refs.len() > 1 {
                format!("{at}[{i}]")
            } else {
                at.clone()
            };
            let (def, options) = match r {
                LimitRef::Inline(d) => (d, &d.options),
                LimitRef::Named { name, options } => {
                    let Some(d) = self.get(name) else {
                        let known: Vec<&str> = self.named.iter().map(|(n, _)| n.as_str()).collect();
                        issues.push(
                            here,
                            format!(
                                "no limit named {} in [limits] (known: {})",
                                show(&Value::from(name.as_str())),
                                if known.is_empty() {
                                    "none".to_owned()
                                } else {
                                    known.join(", ")
                                }
                            ),
                        );
                        continue;
                    };
                    (d, options)
                }
            };
            let cost = options.cost.or(def.options.cost).unwrap_or(1);
            if let Some(q) = def.quotas.iter().find(|q| q.burst < cost) {
                issues.push(
                    join(&here, "cost"),
                    format!(
                        "cost {cost} is above the burst of quota {} ({}): no request could ever pass",
                        show(&Value::from(q.to_string())),
                        q.burst
                    ),
                );
            }
        }
    }
}

fn positive_usize(v: &Value, at: &str, issues: &mut Issues) -> Option<usize> {
    issues
        .positive_int(v, at)
        .and_then(|n| usize::try_from(n).ok())
}

fn parse_client_ip(v: &Value, at: &str, issues: &mut Issues) -> Option<ClientIp> {
    let map = issues.object(v, at)?;
    issues.unknown_keys(
        map,
        &[
            "trusted_proxies",
            "trusted_hops",
            "trust_unix_socket",
            "header",
            "ipv4_prefix",
            "ipv6_prefix",
        ],
        at,
    );
    let mut out = ClientIp::default();
    match (map.get("trusted_proxies"), map.get("trusted_hops")) {
        (Some(_), Some(_)) => issues.push(at, "set trusted_proxies or trusted_hops, not both"),
        (Some(list), None) => {
            if let Some(cidrs) = parse_cidrs(list, &join(at, "trusted_proxies"), issues) {
                out.trust = Trust::Proxies(cidrs);
            }
        }
        (None, Some(n)) => {
            let key = join(at, "trusted_hops");
            if let Some(n) = issues.positive_int(n, &key) {
                match u32::try_from(n) {
                    Ok(n) if n <= 64 => out.trust = Trust::Hops(n),
                    _ => issues.push(key, format!("expected 1 to 64 proxies, got {n}")),
                }
            }
        }
        (None, None) => {}
    }
    if let Some(u) = map.get("trust_unix_socket") {
        let key = join(at, "trust_unix_socket");
        out.unix_socket = issues.boolean(u, &key).unwrap_or(false);
        if out.unix_socket && !matches!(out.trust, Trust::Proxies(_)) {
            issues.push(
                key,
                "goes with trusted_proxies (with trusted_hops a unix-socket peer is always a hop)",
            );
        }
    }
    if let Some(h) = map.get("header") {
        match issues.one_of(h, &["x-forwarded-for", "forwarded"], &join(at, "header")) {
            Some("forwarded") => out.header = ForwardedHeader::Forwarded,
            Some(_) => out.header = ForwardedHeader::XForwardedFor,
            None => {}
        }
    }
    for (key, max, slot) in [
        ("ipv4_prefix", 32u8, &mut out.ipv4_prefix),
        ("ipv6_prefix", 128u8, &mut out.ipv6_prefix),
    ] {
        if let Some(v) = map.get(key) {
            match v.as_u64() {
                Some(n) if (1..=u64::from(max)).contains(&n) => {
                    *slot = u8::try_from(n).unwrap_or(max);
                }
                _ => issues.push(
                    join(at, key),
                    format!("expected a prefix length 1 to {max}, got {}", show(v)),
                ),
            }
        }
    }
    Some(out)
}

fn parse_cidrs(v: &Value, at: &str, issues: &mut Issues) -> Option<Vec<Cidr>> {
    let list = issues.strings(v, at)?;
    let mut out = Vec::with_capacity(list.len());
    let mut ok = true;
    for (i, s) in list.iter().enumerate() {
        match Cidr::parse(s) {
            Ok(c) => out.push(c),
            Err(e) => {
                issues.push(format!("{at}[{i}]"), e.to_string());
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// A `limit` value: `false`, a quota or limit name, a table, or a list of those.
pub fn parse_limit(v: &Value, at: &str, issues: &mut Issues) -> Option<LimitPolicy> {
    match v {
        Value::Bool(false) => Some(LimitPolicy::Off),
        Value::Array(items) => {
            let mut refs = Vec::with_capacity(items.len());
            let mut ok = true;
            for (i, item) in items.iter().enumerate() {
                match parse_ref(item, &format!("{at}[{i}]"), issues) {
                    Some(r) => refs.push(r),
                    None => ok = false,
                }
            }
            if refs.is_empty() && ok {
                return Some(LimitPolicy::Off);
            }
            ok.then_some(LimitPolicy::Limits(refs))
        }
        Value::String(_) | Value::Object(_) => {
            parse_ref(v, at, issues).map(|r| LimitPolicy::Limits(vec![r]))
        }
        other => {
            issues.push(
                at,
                format!(
                    "expected false, a quota such as \"100/minute\", a limit name, a table or a list, got {}",
                    show(other)
                ),
            );
            None
        }
    }
}

fn parse_ref(v: &Value, at: &str, issues: &mut Issues) -> Option<LimitRef> {
    match v {
        Value::String(s) if is_name(s) => Some(LimitRef::Named {
            name: s.clone(),
            options: LimitOptions::default(),
        }),
        Value::String(s) => parse_inline_string(s, at, issues).map(LimitRef::Inline),
        Value::Object(map) if map.contains_key("use") => {
            issues.unknown_keys(map, REF_KEYS, at);
            let name = map
                .get("use")
                .and_then(|n| issues.string(n, &join(at, "use")))?;
            if !is_name(name) {
                issues.push(
                    join(at, "use"),
                    format!("not a limit name: {}", show(&Value::from(name))),
                );
                return None;
            }
            let options = parse_options(map, at, issues)?;
            Some(LimitRef::Named {
                name: name.to_owned(),
                options,
            })
        }
        Value::Object(_) => parse_def(v, at, issues).map(LimitRef::Inline),
        other => {
            issues.push(
                at,
                format!(
                    "expected a quota, a limit name or a table, got {}",
                    show(other)
                ),
            );
            None
        }
    }
}

fn parse_inline_string(s: &str, at: &str, issues: &mut Issues) -> Option<LimitDef> {
    match parse_quotas(s) {
        Ok(quotas) => check_count(quotas, at, issues).map(|quotas| LimitDef {
            quota_text: s.to_owned(),
            quotas,
            key: vec![KeyPart::Ip],
            max_keys: None,
            options: LimitOptions::default(),
        }),
        Err(e) => {
            issues.push(at, e.to_string());
            None
        }
    }
}

fn check_count(quotas: Vec<Quota>, at: &str, issues: &mut Issues) -> Option<Vec<Quota>> {
    if quotas.len() > MAX_QUOTAS {
        issues.push(at, format!("at most {MAX_QUOTAS} quotas per limit"));
        return None;
    }
    Some(quotas)
}

fn parse_def(v: &Value, at: &str, issues: &mut Issues) -> Option<LimitDef> {
    let map = issues.object(v, at)?;
    issues.unknown_keys(map, DEF_KEYS, at);
    let Some(q) = map.get("quota") else {
        issues.push(
            join(at, "quota"),
            "missing (a quota such as \"100/minute\", or `use = \"<name>\"` for a named limit)",
        );
        return None;
    };
    let qat = join(at, "quota");
    let text = issues.string(q, &qat)?;
    let mut quotas = match parse_quotas(text) {
        Ok(qs) => check_count(qs, &qat, issues)?,
        Err(e) => {
            issues.push(qat, e.to_string());
            return None;
        }
    };
    if let Some(b) = map.get("burst") {
        let bat = join(at, "burst");
        let burst = issues.positive_int(b, &bat)?;
        if quotas.len() != 1 {
            issues.push(
                bat,
                "burst applies to a single quota; with several, write \"... burst N\" inside each",
            );
            return None;
        }
        let q = quotas.first()?;
        match Quota::with_burst(q.count, q.period_secs, burst) {
            Ok(q) => quotas = vec![q],
            Err(e) => {
                issues.push(bat, e.to_string());
                return None;
            }
        }
    }
    let key = match map.get("key") {
        None => vec![KeyPart::Ip],
        Some(k) => parse_key(k, &join(at, "key"), issues)?,
    };
    let max_keys = match map.get("max_keys") {
        None => None,
        Some(n) => Some(positive_usize(n, &join(at, "max_keys"), issues)?),
    };
    let options = parse_options(map, at, issues)?;
    Some(LimitDef {
        quota_text: text.to_owned(),
        quotas,
        key,
        max_keys,
        options,
    })
}

fn parse_options(map: &Map<String, Value>, at: &str, issues: &mut Issues) -> Option<LimitOptions> {
    let mut out = LimitOptions::default();
    let mut ok = true;
    if let Some(c) = map.get("cost") {
        out.cost = issues.positive_int(c, &join(at, "cost"));
        ok &= out.cost.is_some();
    }
    if let Some(d) = map.get("dry_run") {
        out.dry_run = issues.boolean(d, &join(at, "dry_run"));
        ok &= out.dry_run.is_some();
    }
    if let Some(m) = map.get("on_error") {
        out.on_error = OnError::parse(m, &join(at, "on_error"), issues);
        ok &= out.on_error.is_some();
    }
    if let Some(m) = map.get("exempt_methods") {
        out.exempt_methods = issues.methods(m, &join(at, "exempt_methods"));
        ok &= out.exempt_methods.is_some();
    }
    if let Some(c) = map.get("exempt_ips") {
        out.exempt_ips = parse_cidrs(c, &join(at, "exempt_ips"), issues);
        ok &= out.exempt_ips.is_some();
    }
    if let Some(s) = map.get("exempt_subjects") {
        out.exempt_subjects = issues
            .strings(s, &join(at, "exempt_subjects"))
            .map(|l| l.into_iter().map(str::to_owned).collect());
        ok &= out.exempt_subjects.is_some();
    }
    ok.then_some(out)
}

fn parse_key(v: &Value, at: &str, issues: &mut Issues) -> Option<Vec<KeyPart>> {
    let parts: Vec<(&str, String)> = match v {
        Value::String(s) => vec![(s.as_str(), at.to_owned())],
        Value::Array(items) if !items.is_empty() => {
            let list = issues.strings(v, at)?;
            list.into_iter()
                .enumerate()
                .map(|(i, s)| (s, format!("{at}[{i}]")))
                .collect()
        }
        other => {
            issues.push(
                at,
                format!(
                    "expected \"ip\", \"sub\", \"claim:<name>\", \"header:<name>\" or a list of them, got {}",
                    show(other)
                ),
            );
            return None;
        }
    };
    let mut out = Vec::with_capacity(parts.len());
    let mut ok = true;
    for (s, here) in parts {
        let part = match s.split_once(':') {
            None if s == "ip" => Some(KeyPart::Ip),
            None if s == "sub" => Some(KeyPart::Subject),
            Some(("claim", c)) if !c.is_empty() => Some(KeyPart::Claim(c.to_owned())),
            Some(("header", h)) if crate::http::is_header_name(h) => {
                Some(KeyPart::Header(h.to_ascii_lowercase()))
            }
            _ => None,
        };
        if let Some(p) = part {
            out.push(p);
        } else {
            issues.push(
                here,
                format!(
                    "unknown key part {} (expected \"ip\", \"sub\", \"claim:<name>\" or \"header:<name>\")",
                    show(&Value::from(s))
                ),
            );
            ok = false;
        }
    }
    ok.then_some(out)
}

#[cfg(test)]
#[path = "settings_tests.rs"]
mod tests;
