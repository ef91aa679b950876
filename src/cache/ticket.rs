//! The cache ticket: what a forwarded request's response may become. The stage issues one per
//! cacheable miss or unsafe request; the adapter hands the app's response back to it once, and it
//! stores the response under RFC 9111's shared-cache rules, or invalidates the path.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use aws_lc_rs::digest;

use super::headers::{HOP_BY_HOP, header_values, quoted_hex, vary_values};
use super::key;
use super::rules::{self, CacheControl, NotStored};
use super::shared::{Generation, Purge, Record};
use super::stage::Stage;
use super::store::Entry;

/// What the app's response may become, handed back to [`Ticket::store`] once it is known.
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
pub(super) enum TicketKind {
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
    pub(super) fn new(stage: Arc<Stage>, kind: TicketKind) -> Self {
        Self {
            stage,
            kind,
            ended: AtomicBool::new(false),
            wanted: AtomicBool::new(false),
            cancelled: AtomicBool::new(false),
        }
    }
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
        if values("content-type").any(|v| {
            let media = v.split(';').next().unwrap_or("").trim();
            media.eq_ignore_ascii_case("text/event-stream")
        }) {
            return Some(NotStored::EventStream);
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
        self.refuse(headers, NotStored::TooLarge)
    }

    /// The response will not be stored, for a reason the caller found (`why`): ends the ticket
    /// and returns the headers to send (tags header removed, cache status added).
    pub fn refuse(&self, headers: Vec<(String, String)>, why: NotStored) -> Vec<(String, String)> {
        let (mut out, _) = self.split_tags(headers);
        let (k, v) = self.stage.status_header("fwd=miss", Some(why.as_str()));
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
            };
            stage
                .store
                .insert(primary, record.vary.clone(), variant_key.clone(), entry);
            if let Err(why) = shared.store(primary, &variant_key, &record, generation.as_ref()) {
                stage.store.purge_key(primary, &variant_key);
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
