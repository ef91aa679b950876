//! The cache stage's lookup: for each request, serve a fresh entry from L1 (or the Redis tier),
//! wait for a concurrent miss of the same resource, or forward with a [`Ticket`] for the response.

use std::sync::Arc;

use super::headers::{etag_matches, leak_name, vary_values};
use super::key;
use super::rules::CacheControl;
use super::settings::CachePolicy;
use super::shared::{Generation, Shared};
use super::stage::Stage;
use super::store::{Entry, Lookup};
use super::ticket::{Ticket, TicketKind};
use crate::blocking::Blocking;
use crate::http::Header;
use crate::json::Claims;
use crate::request::Request;
use crate::response::Response;

/// The stage's outcome for one request.
#[derive(Debug)]
pub enum Outcome {
    /// Not cached (no policy, or bypassed): forward; add these headers.
    Pass(Option<Header>),
    Respond(Response),
    Forward(Ticket),
}

impl Stage {
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
        Ticket::new(self.clone(), kind)
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
