//! The gate's cache stage: serve fresh entries from Rust, coalesce concurrent misses, and store
//! what the app answers under RFC 9111's shared-cache rules.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aws_lc_rs::digest;
use serde_json::Value;

use super::key;
use super::rules::{self, CacheControl, NotStored};
use super::shared::{Generation, Purge, Record, Shared};
use super::store::{Entry, Lookup, Store};
use crate::auth::stage::Blocking;
use crate::auth::verifier::Claims;
use crate::clock::SharedClock;
use crate::config::{Issues, join, show};
use crate::gate::{Request, Response};
use crate::http::Header;

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
                Some(n) if (200..600).contains(&n) && n != 206 => Some(n),
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
            max_entry_bytes: 1 << 20,
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
                        crate::config::show(x)
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

/// Header slots the stage reads.
#[derive(Debug, Clone, Default)]
pub struct Slots {
    pub authorization: usize,
    pub cookie: usize,
    pub cache_control: usize,
    pub if_none_match: usize,
    /// `(name, slot)` of every header responses may vary on.
    pub vary: Vec<(String, usize)>,
    /// `(name, slot)` of the headers that are always part of the key (see [`KEYED`]).
    pub keyed: Vec<(&'static str, usize)>,
    /// Where the app is mounted (`SCRIPT_NAME`): keys, indexes and purges use the full path, so
    /// two apps mounted on one host never share (or purge) each other's entries.
    pub script_name: usize,
}

/// Request headers that are always part of the key: `Host` (the target URI's authority, RFC 9111
/// §2: one app may serve several hosts, and `url_for(_external=True)` writes it into bodies) and
/// the headers that frameworks and proxy middleware (werkzeug's `ProxyFix`, Django's
/// `USE_X_FORWARDED_HOST`) turn into hosts, schemes, prefixes, URLs or methods: the classic
/// cache-poisoning vectors. Keyed rather than refused, a poisoned response is only ever served to
/// requests that carry the same values, and a proxy that sets them on every request still gets a
/// working cache.
pub const KEYED: &[&str] = &[
    "host",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-prefix",
    "x-forwarded-port",
    "x-forwarded-ssl",
    "x-url-scheme",
    "x-forwarded-server",
    "x-forwarded-scheme",
    "x-host",
    "x-original-url",
    "x-rewrite-url",
    "x-http-method-override",
    "forwarded",
];

/// The stage: the store plus settings.
#[derive(Debug)]
pub struct Stage {
    pub store: Store,
    pub settings: CacheSettings,
    pub slots: Slots,
    /// The Redis tier, with `[cache] shared = "redis"`.
    pub shared: Option<Arc<Shared>>,
}

/// What the app's response may become, handed back to [`Stage::store`] once it is known.
#[derive(Debug)]
pub struct Ticket {
    stage: Arc<Stage>,
    kind: TicketKind,
    ended: AtomicBool,
    /// `wants` said yes for the headers `store` will be given.
    wanted: AtomicBool,
    /// The framework dispatched the request to another route than the one this ticket was
    /// issued for: the response is never stored (see [`Ticket::cancel`]).
    cancelled: AtomicBool,
}

#[derive(Debug)]
enum TicketKind {
    /// A GET miss: store the response if the rules allow.
    Store {
        primary: String,
        path: String,
        /// Values of every varyable request header, to build the variant key later.
        request_vary: Vec<(String, Option<String>)>,
        /// Whether the key holds the principal.
        per_principal: bool,
        /// The request carried `Authorization` that the key does not account for.
        authorization: bool,
        ttl: u64,
        statuses: Option<Vec<u16>>,
        /// This request leads a flight others may be waiting on.
        leader: bool,
        /// With a shared tier: the purge generations read before the app ran.
        generation: Option<Generation>,
    },
    /// A successful unsafe request invalidates the path's entries.
    Invalidate { path: String },
}

/// The stage's outcome for one request.
#[derive(Debug)]
pub enum Outcome {
    /// Not cached (no policy, or bypassed): forward; add these headers.
    Pass(Option<Header>),
    Respond(Response),
    Forward(Ticket),
}

impl Stage {
    #[must_use]
    pub fn new(settings: CacheSettings, slots: Slots, clock: SharedClock) -> Self {
        let store = Store::new(
            settings.max_bytes,
            Duration::from_secs(settings.default_ttl),
            clock,
        );
        Self {
            store,
            settings,
            slots,
            shared: None,
        }
    }

    /// A stage with a shared tier in Redis: subscribes its L1 to other processes' purges.
    #[must_use]
    pub fn with_shared(
        settings: CacheSettings,
        slots: Slots,
        clock: SharedClock,
        client: Arc<crate::shared::RedisClient>,
    ) -> Arc<Self> {
        let limits = super::shared::Limits {
            max_entry_bytes: settings.shared_max_entry_bytes,
            max_bytes: settings.shared_max_bytes,
        };
        let mut stage = Self::new(settings, slots, clock.clone());
        let shared = Arc::new(Shared::new(client, limits, clock));
        stage.shared = Some(shared.clone());
        let stage = Arc::new(stage);
        shared.subscribe(Arc::downgrade(&stage));
        stage
    }

    /// Purges this L1 and, with a shared tier, Redis and every other process's L1.
    pub fn purge(&self, p: Purge) -> usize {
        match &self.shared {
            Some(s) => s.purge(&self.store, p, true),
            None => p.apply(&self.store),
        }
    }

    /// Whether the L1 may answer: always without a shared tier; with one, only while its
    /// subscriber is connected and live (so no purge from elsewhere was missed).
    fn l1_usable(&self) -> bool {
        self.shared.as_ref().is_none_or(|s| s.l1_usable())
    }

    /// A request header's value; an empty one counts as absent (Django's test client, for one,
    /// always sends an empty `Cookie`).
    fn header<'a>(req: &Request<'a>, slot: usize) -> Option<&'a str> {
        req.headers.header(slot).filter(|v| !v.trim().is_empty())
    }

    fn status_header(&self, what: &str, detail: Option<&str>) -> Header {
        match self.settings.style {
            StatusStyle::CacheStatus => {
                let mut v = String::with_capacity(64);
                v.push_str("ferrogate; ");
                v.push_str(what);
                if let Some(d) = detail {
                    v.push_str("; detail=");
                    v.push_str(d);
                }
                ("cache-status", v)
            }
            StatusStyle::XCache => {
                let word = if what.starts_with("hit") {
                    "HIT"
                } else if what.contains("bypass") {
                    "BYPASS"
                } else {
                    "MISS"
                };
                ("x-cache", word.to_owned())
            }
        }
    }

    /// The principal's part of the key: `iss` (when present) and every `principal_claims` value,
    /// as JSON, length-prefixed. `None` when a principal claim is missing or null: such a request
    /// is not per-user, and bypasses if it carries credentials.
    fn principal(&self, claims: &Claims) -> Option<String> {
        let mut out = String::new();
        let iss = claims.get("iss").filter(|v| !v.is_null());
        let names = self.settings.principal_claims.iter().map(String::as_str);
        for name in std::iter::once("iss").chain(names) {
            let value = if name == "iss" {
                iss
            } else {
                Some(claims.get(name).filter(|v| !v.is_null())?)
            };
            // serde_json's serializer, not `Display` (which goes through `core::fmt`).
            let json = value
                .and_then(|v| serde_json::to_string(v).ok())
                .unwrap_or_default();
            out.push_str(name);
            out.push('=');
            key::length_prefixed(&mut out, &json);
            out.push(';');
        }
        Some(out)
    }

    /// Decides the cache part of a request. `path` is normalised (`PATH_INFO`; the mount point,
    /// `SCRIPT_NAME`, goes before it); `claims` are the verified token's.
    #[allow(clippy::too_many_lines)] // the lookup order (L1, L2, flight, generations), in one place
    pub fn check(
        self: &Arc<Self>,
        policy: &CachePolicy,
        req: &Request<'_>,
        path: &str,
        claims: Option<&Claims>,
        blocking: &dyn Blocking,
    ) -> Outcome {
        let mounted;
        let path = match Self::header(req, self.slots.script_name).filter(|s| !s.is_empty()) {
            Some(script_name) => {
                mounted = [script_name, path].concat();
                mounted.as_str()
            }
            None => path,
        };
        match req.method {
            "GET" | "HEAD" if policy.enabled => {}
            // An unsafe request invalidates what is stored for its path, whichever route (and
            // method tree) it reached (RFC 9111 §4.4).
            // With a shared tier, other processes may hold entries this one does not know of.
            "POST" | "PUT" | "PATCH" | "DELETE"
                if self.shared.is_some() || self.store.has_path(path) =>
            {
                return Outcome::Forward(self.ticket(TicketKind::Invalidate {
                    path: path.to_owned(),
                }));
            }
            _ => return Outcome::Pass(None),
        }
        let request_cc = CacheControl::parse(Self::header(req, self.slots.cache_control));
        if request_cc.no_store {
            return Outcome::Pass(Some(
                self.status_header("fwd=bypass", Some("request-no-store")),
            ));
        }
        let authorization = Self::header(req, self.slots.authorization).is_some();
        let principal = if policy.public {
            None
        } else {
            claims.and_then(|c| self.principal(c))
        };
        if !policy.public {
            if Self::header(req, self.slots.cookie).is_some() {
                // The app may personalise on a session cookie the key cannot see.
                return Outcome::Pass(Some(self.status_header("fwd=bypass", Some("cookie"))));
            }
            if authorization && principal.is_none() {
                return Outcome::Pass(Some(
                    self.status_header("fwd=bypass", Some("authorization")),
                ));
            }
        }
        let target = self
            .slots
            .keyed
            .iter()
            .map(|(name, slot)| (*name, Self::header(req, *slot)));
        let primary = key::primary(path, req.query, principal.as_deref(), target);
        let request_vary: Vec<(String, Option<String>)> = self
            .slots
            .vary
            .iter()
            .map(|(name, slot)| (name.clone(), Self::header(req, *slot).map(str::to_owned)))
            .collect();
        let is_head = req.method == "HEAD";
        let l1 = self.l1_usable();
        if !request_cc.no_cache && l1 {
            if let Some(r) = self
                .find(&primary, &request_vary)
                .and_then(|hit| self.serve(&hit.0, hit.1, req))
            {
                return Outcome::Respond(r);
            }
        }
        if is_head {
            if !request_cc.no_cache {
                if let (Some(r), _) = self.find_shared(&primary, path, &request_vary, req, blocking)
                {
                    return Outcome::Respond(r);
                }
            }
            // HEAD is served from a GET entry but never fills one.
            return Outcome::Pass(Some(self.status_header("fwd=miss", Some("head"))));
        }
        let mut leader = self.store.begin_flight(&primary);
        let mut generation = None;
        let mut asked = false;
        if leader && !request_cc.no_cache && self.shared.is_some() {
            // The flight's leader asks L2, so concurrent misses in one process cost one GET.
            asked = true;
            match self.find_shared(&primary, path, &request_vary, req, blocking) {
                (Some(r), _) => {
                    self.store.end_flight(&primary);
                    return Outcome::Respond(r);
                }
                (None, g) => generation = g,
            }
        }
        if !leader && !request_cc.no_cache && l1 {
            // Another request is fetching this resource: wait for it (bounded), without the GIL.
            let timeout = self.settings.coalesce_timeout;
            let store = &self.store;
            let key: &str = &primary;
            blocking.run(&mut || store.wait_flight(key, timeout));
            if let Some(r) = self
                .find(&primary, &request_vary)
                .and_then(|hit| self.serve(&hit.0, hit.1, req))
            {
                return Outcome::Respond(r);
            }
            leader = self.store.begin_flight(&primary);
        }
        if let (Some(shared), false) = (&self.shared, asked) {
            // No lookup was made: the generations alone (a store without them is refused).
            blocking.run(&mut || generation = shared.generation(path));
        }
        Outcome::Forward(self.ticket(TicketKind::Store {
            primary,
            path: path.to_owned(),
            request_vary,
            per_principal: principal.is_some(),
            // A route declared public has said its responses are the same for everyone.
            authorization: authorization && !policy.public,
            ttl: policy.ttl.unwrap_or(self.settings.default_ttl),
            statuses: policy.statuses.clone(),
            leader,
            generation,
        }))
    }

    fn ticket(self: &Arc<Self>, kind: TicketKind) -> Ticket {
        Ticket {
            stage: self.clone(),
            kind,
            ended: AtomicBool::new(false),
            wanted: AtomicBool::new(false),
            cancelled: AtomicBool::new(false),
        }
    }

    /// Looks the request up in L2 (through `blocking`: the GIL is released meanwhile). A hit is
    /// promoted into L1 with what is left of its lifetime (never more than the Redis key's own
    /// PTTL), unless a purge went by during the round trip, and served when fresh. A stale hit
    /// is promoted (so others may be served it while this request revalidates) but not served.
    fn find_shared(
        &self,
        primary: &str,
        path: &str,
        request_vary: &[(String, Option<String>)],
        req: &Request<'_>,
        blocking: &dyn Blocking,
    ) -> (Option<Response>, Option<Generation>) {
        let Some(shared) = self.shared.as_ref() else {
            return (None, None);
        };
        let before = shared.seq();
        let known = self.store.vary_of(primary);
        let mut out = (None, None);
        blocking.run(&mut || out = shared.lookup(primary, path, known.as_deref(), request_vary));
        let (found, generation) = out;
        (
            found.and_then(|f| self.promote(shared, primary, before, f, req)),
            generation,
        )
    }

    fn promote(
        &self,
        shared: &Shared,
        primary: &str,
        before: u64,
        found: super::shared::Found,
        req: &Request<'_>,
    ) -> Option<Response> {
        let now = self.store.clock.now_nanos();
        let r = found.record;
        let cap = now.saturating_add(found.pttl_ms.saturating_mul(1_000_000));
        let stale_until = r.stale_until.min(cap);
        let fresh_until = r.fresh_until.min(stale_until);
        if now >= stale_until {
            return None;
        }
        let entry = Entry {
            status: r.status,
            headers: r.headers,
            body: Arc::from(r.body),
            etag: r.etag,
            path: r.path,
            tags: r.tags,
            stored_at: r.stored_at.min(now),
            fresh_until,
            stale_until,
            ext: OnceLock::new(),
        };
        let entry = if shared.seq() == before && self.l1_usable() {
            self.store.insert(primary, r.vary, found.variant_key, entry)
        } else {
            Arc::new(entry)
        };
        if now < fresh_until {
            self.serve(&entry, false, req)
        } else {
            None
        }
    }

    fn find(
        &self,
        primary: &str,
        request_vary: &[(String, Option<String>)],
    ) -> Option<(Arc<Entry>, bool)> {
        let lookup = match self.store.vary_of(primary) {
            Some(names) => {
                let values = vary_values(&names, request_vary);
                self.store
                    .lookup_variant(&key::variant(primary, &values), primary)
            }
            // Nothing that varies: the entry, if any, is under the primary key.
            None => self.store.lookup_variant(primary, primary),
        };
        match lookup {
            Lookup::Fresh(e) => Some((e, false)),
            Lookup::Stale(e) => Some((e, true)),
            Lookup::Miss => None,
        }
    }

    /// The response for a stored entry; None when one of its header names cannot be kept (see
    /// [`leak_name`]), and the request goes to the app.
    fn serve(&self, e: &Entry, stale: bool, req: &Request<'_>) -> Option<Response> {
        let now = self.store.clock.now_nanos();
        let mut headers: Vec<Header> = Vec::with_capacity(e.headers.len() + 3);
        let ttl_left = e.fresh_until.saturating_sub(now) / 1_000_000_000;
        let status = if stale {
            "hit; fwd=stale".to_owned()
        } else {
            format!("hit; ttl={ttl_left}")
        };
        if let Some(inm) = Self::header(req, self.slots.if_none_match) {
            if etag_matches(inm, &e.etag) {
                // 304 carries the validators and caching headers, not the body (RFC 9110 §15.4.5).
                for (k, v) in &e.headers {
                    let k = k.as_str();
                    if matches!(
                        k,
                        "cache-control" | "content-location" | "date" | "expires" | "vary"
                    ) {
                        headers.push((leak_name(k)?, v.clone()));
                    }
                }
                headers.push(("etag", e.etag.clone()));
                headers.push(("age", e.age(now).to_string()));
                headers.push(self.status_header(&status, None));
                return Some(Response {
                    status: 304,
                    headers,
                    body: Arc::from(&[][..]),
                });
            }
        }
        for (k, v) in &e.headers {
            headers.push((leak_name(k)?, v.clone()));
        }
        headers.push(("age", e.age(now).to_string()));
        headers.push(self.status_header(&status, None));
        Some(Response {
            status: e.status,
            headers,
            body: e.body.clone(),
        })
    }
}

/// How many distinct response header names a process keeps (see [`leak_name`]).
const NAME_CAP: usize = 4096;

/// Header names of stored responses are a small set; intern them as `&'static str` so a hit
/// allocates no names. Each new name is leaked once, up to [`NAME_CAP`] of them: an app that
/// makes names out of data gets its responses with further names served by the app itself
/// (None here), never under another name.
fn leak_name(name: &str) -> Option<&'static str> {
    static NAMES: OnceLock<std::sync::Mutex<std::collections::HashSet<&'static str>>> =
        OnceLock::new();
    let set = NAMES.get_or_init(Default::default);
    let mut set = set
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    intern(&mut set, NAME_CAP, name)
}

fn intern(
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
fn header_values<'h>(
    headers: &'h [(String, String)],
    name: &'h str,
) -> impl Iterator<Item = &'h str> {
    headers
        .iter()
        .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// `bytes` as a quoted lowercase hex string (a strong `ETag`), without a `fmt` call per byte.
fn quoted_hex(bytes: &[u8]) -> String {
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
fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    fn bare(t: &str) -> &str {
        t.trim().trim_start_matches("W/")
    }
    let target = bare(etag);
    if_none_match
        .split(',')
        .any(|t| t.trim() == "*" || bare(t) == target)
}

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// What `Ticket::store` decided.
#[derive(Debug)]
pub struct Stored {
    /// Headers to send to the client (tags removed, `ETag` and cache status added).
    pub headers: Vec<(String, String)>,
    pub stored: bool,
}

/// What `Ticket::store` did to the app's headers, as changes to apply to them.
#[derive(Debug)]
pub struct Changes {
    /// Headers to add (cache status, a computed `ETag`).
    pub add: Vec<(String, String)>,
    /// Header names to take away (the tags header, which is never sent).
    pub remove: Vec<String>,
    pub stored: bool,
}

impl Ticket {
    /// `store`, answered as changes to the app's headers. For response objects that re-check
    /// every header they are given (Django's), applying two changes beats rewriting the list.
    pub fn store_changes(
        &self,
        status: u16,
        headers: Vec<(String, String)>,
        body: &[u8],
    ) -> Changes {
        let tags_header = self.stage.settings.tags_header.as_str();
        let remove: Vec<String> = headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(tags_header))
            .map(|(k, _)| k.clone())
            .collect();
        let kept = headers.len() - remove.len();
        // `store` keeps the app's other headers, in order, as the prefix of what it returns.
        let mut out = self.store(status, headers, body);
        let add = out.headers.split_off(kept.min(out.headers.len()));
        Changes {
            add,
            remove,
            stored: out.stored,
        }
    }

    /// Whether a response with these status and headers would be stored (the body aside), so the
    /// caller buffers only responses that may be stored.
    #[must_use]
    pub fn wants(&self, status: u16, headers: &[(String, String)]) -> bool {
        let wanted = match &self.kind {
            TicketKind::Store { .. } => self.refusal(status, headers).is_none(),
            TicketKind::Invalidate { .. } => false,
        };
        self.wanted.store(wanted, Ordering::Relaxed);
        wanted
    }

    /// The response will not be stored whatever it says: the route that produced it is not the
    /// one the cache looked the request up under. Waiters on this ticket's flight are woken and
    /// go to the app themselves. An unsafe request still invalidates its path.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        if self.is_store() {
            self.end();
        }
    }

    fn refusal(&self, status: u16, headers: &[(String, String)]) -> Option<NotStored> {
        if self.cancelled.load(Ordering::SeqCst) {
            return Some(NotStored::RouteMismatch);
        }
        let TicketKind::Store {
            per_principal,
            authorization,
            statuses,
            ..
        } = &self.kind
        else {
            return Some(NotStored::Status);
        };
        let allowed = statuses.as_ref().unwrap_or(&self.stage.settings.statuses);
        if !allowed.contains(&status) {
            return Some(NotStored::Status);
        }
        let values = |name: &'static str| header_values(headers, name);
        let cc = CacheControl::parse(values("cache-control"));
        if cc.no_store {
            return Some(NotStored::NoStore);
        }
        if cc.private {
            return Some(NotStored::Private);
        }
        if cc.no_cache {
            return Some(NotStored::NoCache);
        }
        if values("set-cookie").next().is_some() {
            return Some(NotStored::SetCookie);
        }
        // A declared length over the limit is refused before anything is buffered.
        if values("content-length")
            .next()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|n| n > self.max_body() as u64)
        {
            return Some(NotStored::TooLarge);
        }
        for v in values("vary") {
            for name in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                if name == "*" {
                    return Some(NotStored::VaryStar);
                }
                let lower = name.to_ascii_lowercase();
                if !self.stage.slots.vary.iter().any(|(n, _)| *n == lower) {
                    return Some(NotStored::VaryUnknown);
                }
            }
        }
        if *authorization && !rules::authorization_allows(&cc, *per_principal) {
            return Some(NotStored::Authorization);
        }
        None
    }

    /// The largest body that may be stored: the caller buffers no more than this.
    #[must_use]
    pub fn max_body(&self) -> usize {
        self.stage.settings.max_entry_bytes
    }

    /// Splits the tags header off the app's headers (it is never sent).
    fn split_tags(&self, headers: Vec<(String, String)>) -> (Vec<(String, String)>, Vec<String>) {
        let tags_header = self.stage.settings.tags_header.as_str();
        let mut tags = Vec::new();
        let mut out: Vec<(String, String)> = Vec::with_capacity(headers.len() + 2);
        for (k, v) in headers {
            if k.eq_ignore_ascii_case(tags_header) {
                tags.extend(
                    v.split(',')
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(str::to_owned),
                );
            } else {
                out.push((k, v));
            }
        }
        (out, tags)
    }

    /// The body outgrew [`Ticket::max_body`] while being buffered: it is streamed, not stored.
    /// Returns the headers to send (tags header removed, cache status added).
    pub fn too_large(&self, headers: Vec<(String, String)>) -> Vec<(String, String)> {
        let (mut out, _) = self.split_tags(headers);
        let (k, v) = self
            .stage
            .status_header("fwd=miss", Some(NotStored::TooLarge.as_str()));
        out.push((k.to_owned(), v));
        self.end();
        out
    }

    /// The app's response, once: stores it when the rules allow, and returns the headers to send.
    #[allow(clippy::too_many_lines)] // the RFC 9111 storing steps, in order
    pub fn store(&self, status: u16, headers: Vec<(String, String)>, body: &[u8]) -> Stored {
        let stage = &self.stage;
        let (mut out, tags) = self.split_tags(headers);
        let status_of = |what: &str, detail: Option<&str>| {
            let (k, v) = stage.status_header(what, detail);
            (k.to_owned(), v)
        };
        let TicketKind::Store {
            primary,
            path,
            request_vary,
            ttl,
            generation,
            ..
        } = &self.kind
        else {
            self.end();
            return Stored {
                headers: out,
                stored: false,
            };
        };
        // `wants` already applied the rules to these headers (the tags header aside, which they
        // do not read): no need to parse them twice on the miss path.
        let checked = self.wanted.load(Ordering::Relaxed) && !self.cancelled.load(Ordering::SeqCst);
        let refusal = if checked {
            None
        } else {
            self.refusal(status, &out)
        }
        .or_else(|| (body.len() > stage.settings.max_entry_bytes).then_some(NotStored::TooLarge));
        let cc = CacheControl::parse(header_values(&out, "cache-control"));
        let lifetime = rules::freshness(&cc, *ttl);
        let refusal = refusal.or_else(|| (lifetime == 0).then_some(NotStored::ZeroTtl));
        if let Some(why) = refusal {
            out.push(status_of("fwd=miss", Some(why.as_str())));
            self.end();
            return Stored {
                headers: out,
                stored: false,
            };
        }
        let own_etag = header_values(&out, "etag").next().map(str::to_owned);
        let etag = match own_etag {
            Some(e) => e,
            None => {
                let d = digest::digest(&digest::SHA256, body);
                let e = quoted_hex(&d.as_ref()[..16]);
                out.push(("etag".into(), e.clone()));
                e
            }
        };
        let vary_names: Vec<String> = header_values(&out, "vary")
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_ascii_lowercase)
            .collect();
        let vary_values = vary_values(&vary_names, request_vary);
        let now = stage.store.clock.now_nanos();
        let fresh_until = now.saturating_add(lifetime.saturating_mul(1_000_000_000));
        let stale_until = fresh_until.saturating_add(
            cc.stale_while_revalidate
                .unwrap_or(0)
                .saturating_mul(1_000_000_000),
        );
        let stored_headers: Vec<(String, String)> = out
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .filter(|(k, _)| {
                // Content-Length is set by whoever sends the body (a 304 from the cache has none).
                !HOP_BY_HOP.contains(&k.as_str())
                    && !matches!(
                        k.as_str(),
                        "age" | "cache-status" | "x-cache" | "content-length"
                    )
            })
            .map(|(k, v)| (k, v.clone()))
            .collect();
        let variant_key = key::variant(primary, &vary_values);
        if let Some(shared) = &stage.shared {
            let record = Record {
                status,
                stored_at: now,
                fresh_until,
                stale_until,
                etag,
                path: path.clone(),
                tags,
                vary: vary_names,
                headers: stored_headers,
                body: body.to_vec(),
            };
            // Into L1 first (the flight's waiters find it there), then Redis; if Redis fails,
            // the L1 copy goes too: a purge from another process could not find it.
            let entry = Entry {
                status,
                headers: record.headers.clone(),
                body: Arc::from(body),
                etag: record.etag.clone(),
                path: record.path.clone(),
                tags: record.tags.clone(),
                stored_at: now,
                fresh_until,
                stale_until,
                ext: OnceLock::new(),
            };
            stage
                .store
                .insert(primary, record.vary.clone(), variant_key.clone(), entry);
            if let Err(why) = shared.store(primary, &variant_key, &record, generation.as_ref()) {
                stage.store.purge_key(&variant_key);
                out.push(status_of("fwd=miss", Some(why.as_str())));
                self.end();
                return Stored {
                    headers: out,
                    stored: false,
                };
            }
            out.push(status_of("fwd=miss; stored", None));
            self.end();
            return Stored {
                headers: out,
                stored: true,
            };
        }
        stage.store.insert(
            primary,
            vary_names,
            variant_key,
            Entry {
                status,
                headers: stored_headers,
                body: Arc::from(body),
                etag,
                path: path.clone(),
                tags,
                stored_at: now,
                fresh_until,
                stale_until,
                ext: OnceLock::new(),
            },
        );
        out.push(status_of("fwd=miss; stored", None));
        self.end();
        Stored {
            headers: out,
            stored: true,
        }
    }

    /// The app answered an unsafe request with `status`: a success invalidates the path.
    pub fn unsafe_done(&self, status: u16) -> usize {
        let n = match &self.kind {
            TicketKind::Invalidate { path } if (200..400).contains(&status) => {
                match &self.stage.shared {
                    // Published only when Redis indexed something for the path: every L1 copy
                    // anywhere is indexed, so nothing else can hold one.
                    Some(s) => s.purge(&self.stage.store, Purge::Path(path.clone()), false),
                    None => self.stage.store.purge_path(path),
                }
            }
            _ => 0,
        };
        self.end();
        n
    }

    /// Whether finishing this ticket may wait on the network (a shared tier): only then is it
    /// worth releasing the GIL, which costs more than an in-memory store.
    #[must_use]
    pub fn may_block(&self) -> bool {
        self.stage.shared.is_some()
    }

    /// Whether this ticket stores (GET) rather than invalidates.
    #[must_use]
    pub fn is_store(&self) -> bool {
        matches!(self.kind, TicketKind::Store { .. })
    }

    /// Gives up (the app failed): wakes any request waiting on this one.
    pub fn end(&self) {
        if self.ended.swap(true, Ordering::SeqCst) {
            return;
        }
        if let TicketKind::Store {
            primary,
            leader: true,
            ..
        } = &self.kind
        {
            self.stage.store.end_flight(primary);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bare `GET path` (no query, no headers: `none` has one `None` per header slot).
    fn get<'s>(
        gate: &'s crate::gate::Gate,
        none: &'s (dyn crate::gate::HeaderSource + 's),
        path: &'s str,
    ) -> crate::gate::Decision<'s> {
        let req = Request {
            method: "GET",
            path,
            query: "",
            remote_addr: None,
            headers: none,
        };
        gate.check(&req)
    }

    #[test]
    fn stale_while_revalidate_serves_stale_only_during_a_revalidation() {
        use crate::clock::ManualClock;
        let clock = Arc::new(ManualClock::from_secs(100));
        let store = Store::new(1 << 20, Duration::from_secs(60), clock.clone());
        let now = crate::clock::Clock::now_nanos(&*clock);
        store.insert(
            "p",
            vec![],
            "k".into(),
            Entry {
                status: 200,
                headers: vec![],
                body: Arc::from(&b"x"[..]),
                etag: String::new(),
                path: "/".into(),
                tags: vec![],
                stored_at: now,
                fresh_until: now + 10_000_000_000,
                stale_until: now + 40_000_000_000,
                ext: OnceLock::new(),
            },
        );
        clock.advance_nanos(15_000_000_000);
        assert!(
            matches!(store.lookup("k"), Lookup::Miss),
            "first request after expiry revalidates"
        );
        assert!(store.begin_flight("k"));
        assert!(
            matches!(store.lookup("k"), Lookup::Stale(_)),
            "others get the stale entry meanwhile"
        );
        clock.advance_nanos(30_000_000_000);
        assert!(
            matches!(store.lookup("k"), Lookup::Miss),
            "past stale-while-revalidate"
        );
    }

    /// Freshness through the whole gate on a `ManualClock`: `s-maxage` over `max-age` over the
    /// route TTL, `Age`, and stale-while-revalidate, with no sleeping.
    #[test]
    fn ttl_through_the_gate_on_a_manual_clock() {
        enum Out {
            Hit(Response),
            Miss(Option<Ticket>),
        }
        use crate::clock::ManualClock;
        use crate::gate::{Decision, Gate, GateOptions};
        let clock = Arc::new(ManualClock::from_secs(1_000));
        let gate = Gate::from_value_with(
            &serde_json::json!({"routes": [{"path": "/{*p}", "cache": 30}]}),
            &GateOptions {
                clock: clock.clone(),
                fetcher: None,
            },
        )
        .unwrap();
        let none: Vec<Option<&str>> = vec![None; gate.header_keys().len()];
        let check = |path: &str| -> Out {
            match get(&gate, &none, path) {
                Decision::Respond(r) => Out::Hit(r),
                Decision::Forward(f) => Out::Miss(f.cache),
            }
        };
        let store = |path: &str, cc: Option<&str>| {
            let Out::Miss(Some(ticket)) = check(path) else {
                panic!("{path}: expected a miss")
            };
            let headers = cc
                .map(|v| vec![("cache-control".to_owned(), v.to_owned())])
                .unwrap_or_default();
            assert!(ticket.store(200, headers, b"x").stored);
        };
        let age = |path: &str| -> Option<String> {
            match check(path) {
                Out::Hit(r) => r
                    .headers
                    .iter()
                    .find(|(k, _)| *k == "age")
                    .map(|(_, v)| v.clone()),
                Out::Miss(_) => None,
            }
        };
        store("/route-ttl", None);
        store("/max-age", Some("max-age=10"));
        store("/s-maxage", Some("max-age=10, s-maxage=20"));
        store("/swr", Some("max-age=10, stale-while-revalidate=30"));
        clock.advance_nanos(9_999_999_999);
        assert_eq!(age("/max-age").as_deref(), Some("9"));
        clock.advance_nanos(1);
        assert_eq!(age("/max-age"), None, "stale exactly at max-age");
        assert_eq!(age("/s-maxage").as_deref(), Some("10"));
        clock.advance_nanos(10_000_000_000);
        assert_eq!(age("/s-maxage"), None, "stale exactly at s-maxage");
        assert_eq!(age("/route-ttl").as_deref(), Some("20"));
        clock.advance_nanos(10_000_000_000);
        assert_eq!(age("/route-ttl"), None, "stale exactly at the route TTL");
        // /swr is 30 s old: stale, within stale-while-revalidate. The first request revalidates;
        // while it is out, others get the stale entry.
        let Out::Miss(Some(leader)) = check("/swr") else {
            panic!("the first request after expiry revalidates")
        };
        assert_eq!(age("/swr").as_deref(), Some("30"));
        assert!(leader.store(200, vec![], b"y").stored);
        assert_eq!(age("/swr").as_deref(), Some("0"));
    }

    /// `store_changes` is `store` as a diff: applying it to the app's headers gives what `store`
    /// returns, for a stored response, one the rules refuse, and one with an `ETag` of its own.
    #[test]
    fn header_names_past_the_cap_are_refused_not_renamed() {
        let mut set = std::collections::HashSet::new();
        let a = intern(&mut set, 2, "x-a").unwrap();
        assert_eq!(intern(&mut set, 2, "x-b"), Some("x-b"));
        assert_eq!(intern(&mut set, 2, "x-c"), None);
        assert!(std::ptr::eq(intern(&mut set, 2, "x-a").unwrap(), a));
    }

    #[test]
    fn store_changes_applied_to_the_headers_give_what_store_returns() {
        use crate::gate::{Decision, Gate};
        let gate =
            Gate::from_value(&serde_json::json!({"routes": [{"path": "/{*p}", "cache": 30}]}))
                .unwrap();
        let none: Vec<Option<&str>> = vec![None; gate.header_keys().len()];
        let ticket = |path: &str| match get(&gate, &none, path) {
            Decision::Forward(f) => f.cache.expect("a cacheable miss"),
            Decision::Respond(_) => panic!("{path}: expected a miss"),
        };
        let h = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let cases = [
            h(&[("Content-Type", "text/plain"), ("X-Cache-Tags", "a, b")]),
            h(&[("Cache-Control", "no-store"), ("x-cache-tags", "a")]),
            h(&[("ETag", "\"v1\""), ("Content-Type", "text/plain")]),
        ];
        for (i, headers) in cases.into_iter().enumerate() {
            let whole = ticket(&format!("/whole/{i}")).store(200, headers.clone(), b"body");
            let changes =
                ticket(&format!("/changes/{i}")).store_changes(200, headers.clone(), b"body");
            assert_eq!(changes.stored, whole.stored, "case {i}");
            let mut applied: Vec<(String, String)> = headers
                .into_iter()
                .filter(|(k, _)| !changes.remove.contains(k))
                .collect();
            applied.extend(changes.add);
            assert_eq!(applied, whole.headers, "case {i}");
        }
    }

    /// A shared tier whose Redis is unreachable: every request is forwarded (a miss, never an
    /// error), nothing is kept in L1 (its subscriber never connected, and a store Redis did not
    /// index is dropped), and purges are queued, not raised.
    #[test]
    fn a_dead_redis_is_a_miss_and_keeps_nothing() {
        use crate::gate::{Decision, Gate};
        let gate = Gate::from_value(&serde_json::json!({
            "redis": {"url": "redis://127.0.0.1:1/0", "connect_timeout_ms": 50},
            "cache": {"shared": "redis"},
            "routes": [{"path": "/a", "cache": 60}],
        }))
        .unwrap();
        let none: Vec<Option<&str>> = vec![None; gate.header_keys().len()];
        let req = Request {
            method: "GET",
            path: "/a",
            query: "",
            remote_addr: None,
            headers: &none,
        };
        for _ in 0..5 {
            let Decision::Forward(f) = gate.check(&req) else {
                panic!("a dead Redis must not answer for the app")
            };
            let stored = f.cache.expect("a store ticket").store(200, vec![], b"x");
            assert!(!stored.stored);
            assert!(
                stored
                    .headers
                    .iter()
                    .any(|(k, v)| k == "cache-status" && v.contains("shared-unavailable")),
                "{:?}",
                stored.headers
            );
        }
        let stage = gate.cache().unwrap();
        assert_eq!(stage.store.usage().1, 0, "nothing left in L1");
        stage.purge(Purge::Tag("t".into()));
        let shared = stage.shared.as_ref().unwrap();
        assert_eq!(shared.pending(), 1);
        assert!(shared.stats.errors.load(Ordering::Relaxed) >= 5);
        // The unsafe path too: forwarded, invalidation queued.
        let post = Request {
            method: "POST",
            ..req
        };
        let Decision::Forward(f) = gate.check(&post) else {
            panic!()
        };
        f.cache.unwrap().unsafe_done(200);
        assert_eq!(shared.pending(), 2);
    }

    #[test]
    fn shared_needs_redis() {
        let e = crate::gate::Gate::from_value(&serde_json::json!({
            "cache": {"shared": "redis"},
        }))
        .unwrap_err();
        assert_eq!(e.issues[0].key, "cache.shared");
        let e = crate::gate::Gate::from_value(&serde_json::json!({
            "redis": {"url": "redis://127.0.0.1:1/0"},
            "cache": {"shared": "valkey", "shared_max_entry_bytes": 0},
        }))
        .unwrap_err();
        let keys: Vec<&str> = e.issues.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["cache.shared", "cache.shared_max_entry_bytes"]);
    }

    #[test]
    fn etags() {
        assert!(etag_matches("\"a\"", "\"a\""));
        assert!(etag_matches("W/\"a\", \"b\"", "\"a\""));
        assert!(etag_matches("*", "\"a\""));
        assert!(!etag_matches("\"b\"", "\"a\""));
    }
}
