//! `ferrogate.ResponseCache`, the gate's cache tickets, and `ferrogate.cached` (memoize).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use super::errors::Error;
use super::release_if;
use crate::cache::clock_map::ClockMap;
use crate::cache::shared::Purge;
use crate::cache::stage::{Stage, Ticket};
use crate::cache::store::{Entry, Lookup, Store};
use crate::clock::{SharedClock, system};
use crate::config::ConfigError;

/// What to do with one app response: store it (GET miss) or invalidate (unsafe method).
#[pyclass(name = "CacheTicket", module = "ferrogate._native", frozen)]
pub struct PyCacheTicket {
    pub(super) inner: Ticket,
}

fn headers_vec(headers: &Bound<'_, PyAny>) -> PyResult<Vec<(String, String)>> {
    let mut out = Vec::new();
    for h in headers.try_iter()? {
        let (k, v): (String, String) = h?.extract()?;
        out.push((k, v));
    }
    Ok(out)
}

#[pymethods]
impl PyCacheTicket {
    /// True for a GET miss whose response may be stored; False for an unsafe request.
    #[getter]
    fn is_store(&self) -> bool {
        self.inner.is_store()
    }

    /// Whether a response with this status and these headers would be stored (so only those are buffered).
    fn wants(&self, status: u16, headers: &Bound<'_, PyAny>) -> PyResult<bool> {
        Ok(self.inner.wants(status, &headers_vec(headers)?))
    }

    /// Stores the response if the rules allow; returns the headers to send.
    fn store<'py>(
        &self,
        py: Python<'py>,
        status: u16,
        headers: &Bound<'py, PyAny>,
        body: &[u8],
    ) -> PyResult<Bound<'py, PyList>> {
        let headers = headers_vec(headers)?;
        let t = &self.inner;
        let out = release_if(py, t.may_block(), || t.store(status, headers, body));
        PyList::new(py, out.headers)
    }

    /// `store`, answered as `(add, remove)`: the headers to add to the app's and the names to
    /// take away from them.
    #[allow(clippy::type_complexity)] // the pair is the Python signature
    fn store_changes(
        &self,
        py: Python<'_>,
        status: u16,
        headers: &Bound<'_, PyAny>,
        body: &[u8],
    ) -> PyResult<(Vec<(String, String)>, Vec<String>)> {
        let headers = headers_vec(headers)?;
        let t = &self.inner;
        let changes = release_if(py, t.may_block(), || t.store_changes(status, headers, body));
        Ok((changes.add, changes.remove))
    }

    /// The app answered an unsafe request: a success invalidates the path's entries.
    fn unsafe_done(&self, py: Python<'_>, status: u16) -> usize {
        let t = &self.inner;
        release_if(py, t.may_block(), || t.unsafe_done(status))
    }

    /// Gives the ticket up (the app failed or the body was too large): waiting requests go on.
    fn end(&self) {
        self.inner.end();
    }

    /// Never store this request's response: the framework dispatched it to another route than
    /// the one the gate looked it up under.
    fn cancel(&self) {
        self.inner.cancel();
    }
}

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
            backing: Backing::Own(Box::new(Store::new(max_bytes, ttl, clock))),
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
            ext: std::sync::OnceLock::new(),
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
        self.store().purge_key(key)
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

/// One memoized call: the Python key (compared with `==` on a hash match), the value, the deadline.
struct MemoEntry {
    key: Py<PyAny>,
    value: Py<PyAny>,
    deadline: u64,
}

/// A memoized function (`@ferrogate.cached(...)`): thread-safe, bounded, per-entry TTL, in Rust.
/// `dict`: `ferrogate.cached` copies the function's `__name__`, `__doc__`... onto it, as
/// `functools.wraps` does.
#[pyclass(name = "CachedFunction", module = "ferrogate._native", frozen, dict)]
pub struct PyCachedFunction {
    func: Py<PyAny>,
    key_func: Option<Py<PyAny>>,
    /// Buckets of entries by Python hash, weighed by their length: colliding keys share one.
    cache: ClockMap<isize, Arc<Vec<MemoEntry>>>,
    ttl_nanos: Option<u64>,
    maxsize: u64,
    clock: SharedClock,
    hits: AtomicU64,
    misses: AtomicU64,
    kwargs_mark: Py<PyAny>,
}

impl PyCachedFunction {
    /// The key object for a call: `args`, or `(args, mark, sorted kwargs)` (the mark keeps a call
    /// with kwargs from ever equalling one without), or whatever `key(*args, **kwargs)` returns.
    fn key_of<'py>(
        &self,
        py: Python<'py>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if let Some(f) = &self.key_func {
            return f.bind(py).call(args, kwargs);
        }
        match kwargs {
            Some(kw) if !kw.is_empty() => {
                let items = kw.items();
                items.sort()?;
                Ok(PyTuple::new(
                    py,
                    [
                        args.clone().into_any(),
                        self.kwargs_mark.bind(py).clone(),
                        PyTuple::new(py, items)?.into_any(),
                    ],
                )?
                .into_any())
            }
            _ => Ok(args.clone().into_any()),
        }
    }

    fn lookup(
        &self,
        py: Python<'_>,
        hash: isize,
        key: &Bound<'_, PyAny>,
    ) -> PyResult<Option<Py<PyAny>>> {
        let now = self.clock.now_nanos();
        let Some(bucket) = self.cache.get(&hash, now) else {
            return Ok(None);
        };
        for e in bucket.iter() {
            if e.deadline > now && e.key.bind(py).eq(key)? {
                return Ok(Some(e.value.clone_ref(py)));
            }
        }
        Ok(None)
    }

    /// Stores a non-empty bucket: it lives as long as its longest-lived entry and weighs one per
    /// entry.
    fn put_bucket(&self, hash: isize, entries: Vec<MemoEntry>, now: u64) {
        let until = entries.iter().map(|e| e.deadline).max().unwrap_or(0);
        let weight = entries.len() as u64;
        self.cache
            .insert(hash, Arc::new(entries), until, weight, now);
    }
}

#[pymethods]
impl PyCachedFunction {
    #[new]
    #[pyo3(signature = (func, *, ttl=None, maxsize=1024, key=None))]
    fn new(
        py: Python<'_>,
        func: Py<PyAny>,
        ttl: Option<f64>,
        maxsize: u64,
        key: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        if maxsize == 0 {
            return Err(Error::from(ConfigError::single("maxsize", "must be at least 1")).into());
        }
        let ttl_nanos = match ttl {
            None => None,
            Some(t) if t.is_finite() && t > 0.0 => Some(
                u64::try_from(Duration::from_secs_f64(t.min(1e9)).as_nanos()).unwrap_or(u64::MAX),
            ),
            Some(t) => {
                return Err(Error::from(ConfigError::single(
                    "ttl",
                    format!("must be a positive number of seconds, got {t}"),
                ))
                .into());
            }
        };
        let kwargs_mark = py.import("builtins")?.getattr("object")?.call0()?.unbind();
        Ok(Self {
            func,
            key_func: key,
            cache: ClockMap::new(maxsize),
            ttl_nanos,
            maxsize,
            clock: system(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            kwargs_mark,
        })
    }

    #[pyo3(signature = (*args, **kwargs))]
    fn __call__(
        &self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let key = self.key_of(py, args, kwargs)?;
        let hash = key.hash()?;
        if let Some(v) = self.lookup(py, hash, &key)? {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(v);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let value = self.func.bind(py).call(args, kwargs)?.unbind();
        let deadline = self
            .ttl_nanos
            .map_or(u64::MAX, |t| self.clock.now_nanos().saturating_add(t));
        let now = self.clock.now_nanos();
        // Rebuild the bucket: drop expired entries and any older value for an equal key.
        let mut entries: Vec<MemoEntry> = Vec::new();
        if let Some(old) = self.cache.get(&hash, now) {
            for e in old.iter() {
                if e.deadline > now && !e.key.bind(py).eq(&key)? {
                    entries.push(MemoEntry {
                        key: e.key.clone_ref(py),
                        value: e.value.clone_ref(py),
                        deadline: e.deadline,
                    });
                }
            }
        }
        entries.push(MemoEntry {
            key: key.unbind(),
            value: value.clone_ref(py),
            deadline,
        });
        self.put_bucket(hash, entries, now);
        Ok(value)
    }

    /// Drops the cached value for these arguments. Returns whether there was one.
    #[pyo3(signature = (*args, **kwargs))]
    fn invalidate(
        &self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<bool> {
        let key = self.key_of(py, args, kwargs)?;
        let hash = key.hash()?;
        let now = self.clock.now_nanos();
        let Some(old) = self.cache.get(&hash, now) else {
            return Ok(false);
        };
        let mut kept = Vec::new();
        let mut found = false;
        for e in old.iter() {
            if e.key.bind(py).eq(&key)? {
                found = true;
            } else {
                kept.push(MemoEntry {
                    key: e.key.clone_ref(py),
                    value: e.value.clone_ref(py),
                    deadline: e.deadline,
                });
            }
        }
        if kept.is_empty() {
            self.cache.remove(&hash);
        } else {
            self.put_bucket(hash, kept, now);
        }
        Ok(found)
    }

    fn cache_clear(&self) {
        self.cache.clear();
        self.hits.store(0, Ordering::Relaxed);
        self.misses.store(0, Ordering::Relaxed);
    }

    /// `CacheInfo(hits, misses, maxsize, currsize)`, the named tuple `functools.lru_cache`
    /// reports.
    fn cache_info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        static CACHE_INFO: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        let class = CACHE_INFO.get_or_try_init(py, || -> PyResult<_> {
            Ok(py.import("ferrogate.memo")?.getattr("CacheInfo")?.unbind())
        })?;
        class.bind(py).call1((
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
            self.maxsize,
            self.cache.live_weight(self.clock.now_nanos()),
        ))
    }

    #[getter]
    fn __wrapped__(&self, py: Python<'_>) -> Py<PyAny> {
        self.func.clone_ref(py)
    }

    /// A descriptor, as functions are: on a class, `obj.method(x)` calls with `obj` first (and
    /// `obj` is part of the key, as with `functools.lru_cache`).
    fn __get__<'py>(
        slf: &Bound<'py, Self>,
        obj: Option<&Bound<'py, PyAny>>,
        _owner: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        match obj {
            Some(o) if !o.is_none() => {
                static METHOD_TYPE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
                let py = slf.py();
                let method = METHOD_TYPE.get_or_try_init(py, || -> PyResult<_> {
                    Ok(py.import("types")?.getattr("MethodType")?.unbind())
                })?;
                method.bind(py).call1((slf, o))
            }
            _ => Ok(slf.clone().into_any()),
        }
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyCacheTicket>()?;
    m.add_class::<PyResponseCache>()?;
    m.add_class::<PyCachedFunction>()
}
