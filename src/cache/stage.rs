//! The gate's cache stage: the L1 store, the settings, the header slots it reads and the Redis tier.
//! What it does per request is in `lookup.rs` (serve, coalesce, or forward with a ticket) and
//! `ticket.rs` (store the app's answer under RFC 9111's shared-cache rules).

use std::sync::Arc;
use std::time::Duration;

use super::settings::{CacheSettings, StatusStyle};
use super::shared::{Purge, Shared};
use super::store::Store;
use crate::clock::SharedClock;
use crate::http::Header;
use crate::request::Request;

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
/// working cache. The scheme the server received the request on (`wsgi.url_scheme`) is keyed
/// too, for the same reason as `Host`: a server that answers both `http` and `https` (nginx in
/// front of uWSGI passes `HTTPS`, not a header) must not serve `https` clients a body whose
/// absolute URLs say `http`.
pub const KEYED: &[&str] = &[
    crate::http::URL_SCHEME,
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
    /// Shared with the Redis tier's subscriber, which purges it on other processes' word.
    pub store: Arc<Store>,
    pub settings: CacheSettings,
    pub slots: Slots,
    /// The Redis tier, with `[cache] shared = "redis"`.
    pub shared: Option<Arc<Shared>>,
}

impl Stage {
    #[must_use]
    pub fn new(settings: CacheSettings, slots: Slots, clock: SharedClock) -> Self {
        let store = Arc::new(Store::new(
            settings.max_bytes,
            u64::try_from(settings.max_entry_bytes).unwrap_or(u64::MAX),
            Duration::from_secs(settings.default_ttl),
            clock,
        ));
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
        shared.subscribe(Arc::downgrade(&stage.store));
        stage
    }

    /// Purges this L1 and, with a shared tier, Redis and every other process's L1.
    // Purging is the point; the count is a by-product (clippy sees no interior mutability
    // through the store's Arc).
    #[allow(clippy::must_use_candidate)]
    pub fn purge(&self, p: Purge) -> usize {
        match &self.shared {
            Some(s) => s.purge(&self.store, p, true),
            None => p.apply(&self.store),
        }
    }

    /// Whether the L1 may answer: always without a shared tier; with one, only while its
    /// subscriber is connected and live (so no purge from elsewhere was missed).
    pub(super) fn l1_usable(&self) -> bool {
        self.shared.as_ref().is_none_or(|s| s.l1_usable())
    }

    /// A request header's value; an empty one counts as absent (Django's test client, for one,
    /// always sends an empty `Cookie`).
    pub(super) fn header<'a>(req: &Request<'a>, slot: usize) -> Option<&'a str> {
        req.headers.header(slot).filter(|v| !v.trim().is_empty())
    }

    pub(super) fn status_header(&self, what: &str, detail: Option<&str>) -> Header {
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
}

#[cfg(test)]
#[path = "stage_tests.rs"]
mod tests;
