//! The gate's cache stage: serve fresh entries from Rust, coalesce concurrent misses, and store
//! what the app answers under RFC 9111's shared-cache rules.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aws_lc_rs::digest;

use super::headers::{HOP_BY_HOP, etag_matches, header_values, leak_name, quoted_hex, vary_values};
use super::key;
use super::rules::{self, CacheControl, NotStored};
use super::settings::{CachePolicy, CacheSettings, StatusStyle};
use super::shared::{Generation, Purge, Record, Shared};
use super::store::{Entry, Lookup, Store};
use crate::auth::stage::Blocking;
use crate::auth::verifier::Claims;
use crate::clock::SharedClock;
use crate::gate::{Request, Response};
use crate::http::Header;

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
#[path = "stage_tests.rs"]
mod tests;
