//! `ferrogate.cached` (memoize): `CachedFunction`, a bounded per-function cache of results.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple};

use super::errors::Error;
use crate::clock::{SharedClock, system};
use crate::clock_map::ClockMap;
use crate::issues::ConfigError;

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
    m.add_class::<PyCachedFunction>()
}
