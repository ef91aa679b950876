//! `ferrogate.ResponseCache`: a response store on its own, or the gate's (`gate.cache`) for
//! lookups, purges and stats from Python.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use super::errors::Error;
use super::ticket::headers_vec;
use crate::cache::settings::MAX_ENTRY_BYTES;
use crate::cache::shared::Purge;
use crate::cache::stage::Stage;
use crate::cache::store::{Entry, Lookup, Store};
use crate::clock::{SharedClock, system};
use crate::issues::ConfigError;

enum Backing {
    Own(Box<Store>),
    Gate(Arc<Stage>),
}

/// A response cache: standalone (`ResponseCache(max_bytes=..., default_ttl=...)`), or the gate's
/// own (`gate.cache`).
#[pyclass(name = "ResponseCache", module = "ferrogate._native", frozen)]
pub struct PyResponseCache {
    backing: Backing,
}

impl PyResponseCache {
    fn store(&self) -> &Store {
        match &self.backing {
            Backing::Own(s) => s,
            Backing::Gate(stage) => &stage.store,
        }
    }

    /// Applies a purge: to this L1, and with a shared tier to Redis and every process's L1
    /// (without the GIL: a Redis round trip).
    fn purge_with(&self, py: Python<'_>, p: Purge) -> usize {
        match &self.backing {
            Backing::Own(s) => p.apply(s),
            Backing::Gate(stage) => py.detach(|| stage.purge(p)),
        }
    }

    pub fn for_gate(stage: Arc<Stage>) -> Self {
        Self {
            backing: Backing::Gate(stage),
        }
    }
}

#[pymethods]
impl PyResponseCache {
    #[new]
    #[pyo3(signature = (max_bytes=64 * 1024 * 1024, default_ttl=60.0))]
    fn new(max_bytes: u64, default_ttl: f64) -> PyResult<Self> {
        if max_bytes == 0 {
            return Err(Error::from(ConfigError::single("max_bytes", "must be at least 1")).into());
        }
        let ttl = Duration::try_from_secs_f64(default_ttl)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                Error::from(ConfigError::single(
                    "default_ttl",
                    format!("must be a positive number of seconds, got {default_ttl}"),
                ))
            })?;
        let clock: SharedClock = system();
        Ok(Self {
            backing: Backing::Own(Box::new(Store::new(
                max_bytes,
                MAX_ENTRY_BYTES as u64,
                ttl,
                clock,
            ))),
        })
    }

    /// Stores `(status, headers, body)` under `key` for `ttl` seconds (default: `default_ttl`).
    #[pyo3(signature = (key, status, headers, body, *, ttl=None, tags=None))]
    fn put(
        &self,
        key: &str,
        status: u16,
        headers: &Bound<'_, PyAny>,
        body: &[u8],
        ttl: Option<f64>,
        tags: Option<Vec<String>>,
    ) -> PyResult<()> {
        let store = self.store();
        let ttl = match ttl {
            None => store.default_ttl,
            Some(t) => Duration::try_from_secs_f64(t).map_err(|_| {
                Error::from(ConfigError::single("ttl", format!("must be >= 0, got {t}")))
            })?,
        };
        let now = store.clock.now_nanos();
        let until = now.saturating_add(u64::try_from(ttl.as_nanos()).unwrap_or(u64::MAX));
        let entry = Entry {
            status,
            headers: headers_vec(headers)?,
            body: Arc::from(body),
            etag: String::new(),
            path: key.to_owned(),
            tags: tags.unwrap_or_default(),
            stored_at: now,
            fresh_until: until,
            stale_until: until,
        };
        store.insert(key, Vec::new(), key.to_owned(), entry);
        Ok(())
    }

    /// `(status, headers, body)` for a fresh entry under `key`, or None.
    fn get<'py>(&self, py: Python<'py>, key: &str) -> PyResult<Option<Bound<'py, PyTuple>>> {
        match self.store().lookup(key) {
            Lookup::Fresh(e) | Lookup::Stale(e) => {
                let headers =
                    PyList::new(py, e.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
                Ok(Some(PyTuple::new(
                    py,
                    [
                        e.status.into_pyobject(py)?.into_any(),
                        headers.into_any(),
                        PyBytes::new(py, &e.body).into_any(),
                    ],
                )?))
            }
            Lookup::Miss => Ok(None),
        }
    }

    /// Removes one key (standalone cache) — returns whether it was there.
    fn purge(&self, key: &str) -> bool {
        // A key `put` stored is its own primary key (a gate's keys are internal: its entries
        // are purged by path, prefix or tag).
        self.store().purge_key(key, key)
    }

    /// Removes every entry for `path` (all queries, principals and variants); for a standalone
    /// cache, the entry under that key.
    fn purge_path(&self, py: Python<'_>, path: &str) -> usize {
        self.purge_with(py, Purge::Path(path.to_owned()))
    }

    /// Removes every entry whose path (standalone: key) starts with `prefix`.
    fn purge_prefix(&self, py: Python<'_>, prefix: &str) -> usize {
        self.purge_with(py, Purge::Prefix(prefix.to_owned()))
    }

    /// Removes every entry stored with `tag`.
    fn purge_tag(&self, py: Python<'_>, tag: &str) -> usize {
        self.purge_with(py, Purge::Tag(tag.to_owned()))
    }

    /// Empties the cache (with a shared tier: Redis's entries and every process's L1 too).
    fn clear(&self, py: Python<'_>) {
        self.purge_with(py, Purge::All);
    }

    /// `{"hits", "misses", "stores", "evictions", "bytes", "entries", "max_bytes"}`.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let store = self.store();
        let (bytes, entries) = store.usage();
        let d = PyDict::new(py);
        let st = &store.stats;
        d.set_item("hits", st.hits.load(Ordering::Relaxed))?;
        d.set_item("misses", st.misses.load(Ordering::Relaxed))?;
        d.set_item("stores", st.stores.load(Ordering::Relaxed))?;
        d.set_item("evictions", st.evictions.load(Ordering::Relaxed))?;
        d.set_item("bytes", bytes)?;
        d.set_item("entries", entries)?;
        d.set_item("max_bytes", store.max_bytes)?;
        if let Backing::Gate(stage) = &self.backing {
            if let Some(s) = &stage.shared {
                let l2 = &s.stats;
                let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
                d.set_item("l2_hits", get(&l2.hits))?;
                d.set_item("l2_misses", get(&l2.misses))?;
                d.set_item("l2_errors", get(&l2.errors))?;
                d.set_item("l2_stores", get(&l2.stores))?;
                d.set_item("l2_too_large", get(&l2.too_large))?;
                d.set_item("l2_corrupt", get(&l2.corrupt))?;
                d.set_item("l2_purges_received", get(&l2.purges_received))?;
                d.set_item("l2_l1_resets", get(&l2.l1_resets))?;
                d.set_item("l2_purged_meanwhile", get(&l2.purged_meanwhile))?;
                d.set_item("l2_over_budget", get(&l2.over_budget))?;
                d.set_item("l2_budget_bytes", get(&l2.budget))?;
                d.set_item("l2_breaker", s.client().stats().breaker.as_str())?;
                d.set_item("l2_pending_purges", s.pending())?;
                d.set_item("l2_connected", s.l1_usable())?;
            }
        }
        Ok(d)
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyResponseCache>()
}
