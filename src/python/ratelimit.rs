//! `ferrogate.RateLimiter` and `RateLimitResult`: the core keyed GCRA limiter with Python values.
//!
//! Time: the limiter reads the system clock unless a call passes `now=` (seconds since the
//! epoch, float). Tests drive time with `now=` and never sleep; the same `now` for every call
//! makes counts exact regardless of how long the test takes.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyString;

use std::hash::Hasher;
use std::sync::Arc;

use super::errors::Error;
use crate::ratelimit::gcra::Outcome;
use crate::ratelimit::host_file::{DEFAULT_MAP_BYTES, HostFile, default_path};
use crate::ratelimit::host_store::HostLimiter;
use crate::ratelimit::limiter::Limiter;
use crate::ratelimit::redis_store::{
    DigestHasher, RedisLimiter, RedisOptions, spawn_reconciler, sweep_interval,
};
use crate::ratelimit::{Quota, RateLimitError, parse_quotas};
use crate::shared::{RedisClient, RedisSettings};

#[pyclass(name = "RateLimiter", module = "ferrogate._native", frozen)]
pub struct PyRateLimiter {
    core: Limiter,
    /// Counts in Redis instead of `core` (which then only serves `now` and quota lookups).
    redis: Option<Arc<RedisLimiter>>,
    /// Counts in the host-shared file instead of `core`.
    host: Option<HostLimiter>,
    quota: String,
}

/// The answer to one `hit` or `peek`. Truthy when allowed.
#[pyclass(name = "RateLimitResult", module = "ferrogate._native", frozen)]
pub struct PyRateLimitResult {
    #[pyo3(get)]
    allowed: bool,
    /// The binding quota's request count per period.
    #[pyo3(get)]
    limit: u64,
    /// Requests of cost 1 still allowed now under every quota.
    #[pyo3(get)]
    remaining: u64,
    /// Seconds until the binding quota has its whole burst back.
    #[pyo3(get)]
    reset_after: f64,
    /// Seconds to wait before this hit would be allowed (0.0 when allowed; inf when the cost is
    /// above the burst and no wait helps).
    #[pyo3(get)]
    retry_after: f64,
}

#[pymethods]
impl PyRateLimitResult {
    fn __bool__(&self) -> bool {
        self.allowed
    }

    fn __repr__(&self) -> String {
        format!(
            "RateLimitResult(allowed={}, limit={}, remaining={}, reset_after={:?}, retry_after={:?})",
            if self.allowed { "True" } else { "False" },
            self.limit,
            self.remaining,
            self.reset_after,
            self.retry_after
        )
    }
}

fn secs(nanos: u64) -> f64 {
    if nanos == u64::MAX {
        f64::INFINITY
    } else {
        nanos as f64 / 1e9
    }
}

fn now_nanos(core: &Limiter, now: Option<f64>) -> PyResult<u64> {
    match now {
        None => Ok(core.now_nanos()),
        Some(t) if (0.0..1.8e10).contains(&t) => {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            // checked above: 0 <= t < 1.8e10 s, so t * 1e9 < 2^64
            Ok((t * 1e9).round() as u64)
        }
        Some(t) => Err(PyValueError::new_err(format!(
            "now must be seconds since the epoch (0 to 1.8e10), got {t}"
        ))),
    }
}

/// `section`: a gate's `[redis]` table (TLS files, timeouts, breaker, pool), so a limiter made
/// beside a gate (the DRF throttles) reaches Redis as the gate does; `url` and `prefix` win over
/// its own, and `timeout_ms` does when given.
#[allow(clippy::too_many_arguments)] // the constructor's Redis options, passed through
fn redis_limiter(
    url: &str,
    name: &str,
    prefix: &str,
    timeout_ms: Option<u64>,
    section: Option<serde_json::Map<String, serde_json::Value>>,
    quotas: &[Quota],
    options: RedisOptions,
) -> PyResult<RedisLimiter> {
    let mut issues = crate::issues::Issues::default();
    let mut section = section.unwrap_or_default();
    section.insert("url".into(), url.into());
    section.insert("prefix".into(), prefix.into());
    // Absent from both, the `[redis]` default (100 ms) applies.
    if let Some(t) = timeout_ms {
        section.insert("timeout_ms".into(), t.into());
    }
    let section = serde_json::Value::Object(section);
    let settings = RedisSettings::parse(Some(&section), None, &mut issues);
    let settings = issues.finish(settings).map_err(Error::from)?;
    if !crate::ratelimit::settings::is_name(name) {
        return Err(Error::from(RateLimitError::InvalidSetting {
            name: "name",
            reason: format!("{name:?}: letters, digits, '_', '-' or '.', starting with a letter"),
        })
        .into());
    }
    let Some(settings) = settings else {
        return Err(PyValueError::new_err("storage: invalid Redis URL"));
    };
    let clock = crate::clock::system();
    let client = RedisClient::new(settings, clock.clone()).map_err(PyValueError::new_err)?;
    RedisLimiter::new(Arc::new(client), name, quotas, options, clock)
        .map_err(|e| Error::from(e).into())
}

impl PyRateLimiter {
    fn redis_hit(
        &self,
        r: &RedisLimiter,
        key: &Bound<'_, PyString>,
        cost: u64,
        commit: bool,
        now: Option<f64>,
    ) -> PyResult<PyRateLimitResult> {
        if now.is_some() {
            return Err(PyValueError::new_err(
                "now= is not available with Redis storage: the server's clock decides",
            ));
        }
        let mut h = DigestHasher::default();
        h.write(key.to_str()?.as_bytes());
        let digest = h.digest();
        let outcome = key
            .py()
            .detach(|| r.hit(&digest, cost, commit))
            .map_err(Error::from)?;
        Ok(self.result(&outcome))
    }

    fn host_hit(
        &self,
        h: &HostLimiter,
        key: &Bound<'_, PyString>,
        cost: u64,
        commit: bool,
        now: Option<f64>,
    ) -> PyResult<PyRateLimitResult> {
        let now = now_nanos(&self.core, now)?;
        let mut d = DigestHasher::default();
        d.write(key.to_str()?.as_bytes());
        let outcome = h.hit(&d.digest(), cost, now, commit).map_err(Error::from)?;
        Ok(self.result(&outcome))
    }

    fn result(&self, o: &Outcome) -> PyRateLimitResult {
        let state = o.state();
        let limit = self.core.quota_at(o.binding).map_or(0, |q: Quota| q.count);
        // `remaining` is the least over every quota: what a client may still send.
        let remaining = o.quotas().iter().map(|q| q.remaining).min().unwrap_or(0);
        PyRateLimitResult {
            allowed: o.allowed,
            limit,
            remaining,
            reset_after: secs(state.reset_nanos),
            retry_after: if o.allowed {
                0.0
            } else {
                secs(state.retry_nanos)
            },
        }
    }
}

#[pymethods]
impl PyRateLimiter {
    /// `RateLimiter("100/minute")`, `RateLimiter("10/5 minutes; 1000/day")`,
    /// `RateLimiter("20/second", burst=40)`. A malformed quota raises `ConfigError` quoting it.
    ///
    /// `storage="redis://host:6379/0"` (or `rediss://`, `unix://`, `redis+cluster://`) counts in
    /// Redis, shared by every process using the same `name` and `prefix`; `batch=N` leases N
    /// requests' worth per round trip. A hit that Redis cannot answer raises
    /// `StoreUnavailableError`.
    ///
    /// `storage="host"` counts in one file shared by every process on this host that uses the
    /// same `path` and `name` (`path` defaults to this app's file under the runtime directory);
    /// an unusable path raises `ConfigError`, a hit the file cannot take `StoreUnavailableError`.
    #[new]
    ///
    /// `redis=` is a gate's `[redis]` table (TLS files, timeouts, circuit breaker, pool): the
    /// limiter then reaches Redis as that gate does (`storage` and `prefix` still name the URL
    /// and the key prefix; `timeout_ms`, when given, wins).
    #[pyo3(signature = (quota, *, burst=None, max_keys=1_000_000, storage=None, name="default", prefix="ferrogate:", batch=0, batch_ttl_ms=1000, timeout_ms=None, path=None, redis=None))]
    #[allow(clippy::too_many_arguments)] // keyword-only options, as Python users pass them
    fn new(
        quota: &str,
        burst: Option<u64>,
        max_keys: usize,
        storage: Option<&str>,
        name: &str,
        prefix: &str,
        batch: u64,
        batch_ttl_ms: u64,
        timeout_ms: Option<u64>,
        path: Option<std::path::PathBuf>,
        redis: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let section = match redis.map(super::convert::to_value).transpose() {
            Ok(None | Some(serde_json::Value::Null)) => None,
            Ok(Some(serde_json::Value::Object(m))) => Some(m),
            Ok(Some(_)) => {
                return Err(PyValueError::new_err(
                    "redis= is a [redis] table (a dict), as in a gate's config",
                ));
            }
            Err(e) => return Err(Error::from(e).into()),
        };
        if section.is_some() && matches!(storage, None | Some("memory" | "host")) {
            return Err(PyValueError::new_err(
                "redis= configures Redis storage; pass storage=\"redis://...\"",
            ));
        }
        let mut quotas = parse_quotas(quota).map_err(Error::from)?;
        if let Some(b) = burst {
            let [q] = quotas.as_slice() else {
                return Err(Error::from(RateLimitError::InvalidSetting {
                    name: "burst",
                    reason: format!(
                        "burst= applies to a single quota; {quota:?} has {}: write \"... burst N\" inside each",
                        quotas.len()
                    ),
                })
                .into());
            };
            quotas = vec![Quota::with_burst(q.count, q.period_secs, b).map_err(Error::from)?];
        }
        let core = Limiter::new(&quotas, max_keys).map_err(Error::from)?;
        if path.is_some() && storage != Some("host") {
            return Err(Error::from(RateLimitError::InvalidSetting {
                name: "path",
                reason: "path= is the file of storage=\"host\"".into(),
            })
            .into());
        }
        let host = if storage == Some("host") {
            if !crate::ratelimit::settings::is_name(name) {
                return Err(Error::from(RateLimitError::InvalidSetting {
                    name: "name",
                    reason: format!(
                        "{name:?}: letters, digits, '_', '-' or '.', starting with a letter"
                    ),
                })
                .into());
            }
            let file = HostFile::open(&path.unwrap_or_else(default_path), DEFAULT_MAP_BYTES)
                .map_err(Error::from)?;
            let clock = crate::clock::system();
            Some(HostLimiter::new(file, name, &quotas, max_keys, 1, clock).map_err(Error::from)?)
        } else {
            None
        };
        let redis = match storage {
            None | Some("memory" | "host") => None,
            Some(url) => {
                let options = RedisOptions {
                    max_keys,
                    workers: 1,
                    batch,
                    batch_ttl_nanos: batch_ttl_ms.saturating_mul(1_000_000),
                };
                let l = Arc::new(redis_limiter(
                    url, name, prefix, timeout_ms, section, &quotas, options,
                )?);
                if batch > 0 {
                    spawn_reconciler(
                        vec![Arc::downgrade(&l)],
                        sweep_interval(options.batch_ttl_nanos),
                    );
                }
                Some(l)
            }
        };
        if batch > 0 && redis.is_none() {
            return Err(Error::from(RateLimitError::InvalidSetting {
                name: "batch",
                reason: "batching leases counts from Redis; pass storage=\"redis://...\"".into(),
            })
            .into());
        }
        Ok(Self {
            core,
            redis,
            host,
            quota: quota.to_owned(),
        })
    }

    /// One PING round trip on the limiter's pooled Redis connection (the latency floor a hit is
    /// measured against).
    fn ping(&self, py: Python<'_>) -> PyResult<()> {
        let Some(r) = &self.redis else {
            return Err(PyValueError::new_err("this limiter counts in memory"));
        };
        py.detach(|| r.client().ping())
            .map_err(|e| Error::from(e).into())
    }

    /// `"memory"`, `"host"` or the Redis URL (password redacted).
    #[getter]
    fn storage(&self) -> String {
        if self.host.is_some() {
            return "host".to_owned();
        }
        self.redis.as_ref().map_or_else(
            || "memory".to_owned(),
            |r| r.client().settings().display.clone(),
        )
    }

    /// The file of `storage="host"` (None otherwise).
    #[getter]
    fn path(&self) -> Option<String> {
        self.host
            .as_ref()
            .map(|h| h.file().path().to_string_lossy().into_owned())
    }

    /// Counts one request of `cost` against `key` (refused hits consume nothing).
    #[pyo3(signature = (key, cost=1, *, now=None))]
    fn hit(
        &self,
        key: &Bound<'_, PyString>,
        cost: u64,
        now: Option<f64>,
    ) -> PyResult<PyRateLimitResult> {
        if let Some(r) = &self.redis {
            return self.redis_hit(r, key, cost, true, now);
        }
        if let Some(h) = &self.host {
            return self.host_hit(h, key, cost, true, now);
        }
        let now = now_nanos(&self.core, now)?;
        let k = self.core.hash_key(key.to_str()?.as_bytes());
        Ok(self.result(&self.core.hit_hashed(k, cost, now)))
    }

    /// What a hit of cost 1 would get now, consuming nothing; `remaining` is before it.
    #[pyo3(signature = (key, *, now=None))]
    fn peek(&self, key: &Bound<'_, PyString>, now: Option<f64>) -> PyResult<PyRateLimitResult> {
        if let Some(r) = &self.redis {
            return self.redis_hit(r, key, 1, false, now);
        }
        if let Some(h) = &self.host {
            return self.host_hit(h, key, 1, false, now);
        }
        let now = now_nanos(&self.core, now)?;
        let k = self.core.hash_key(key.to_str()?.as_bytes());
        Ok(self.result(&self.core.peek_hashed(k, now)))
    }

    /// Drops keys idle at `now` (they have their whole burst back); returns how many entries.
    #[pyo3(signature = (*, now=None))]
    /// With `storage="host"`, every idle key in the file goes (every limit's), and the count is
    /// of keys.
    fn prune(&self, py: Python<'_>, now: Option<f64>) -> PyResult<usize> {
        let now = now_nanos(&self.core, now)?;
        if let Some(h) = &self.host {
            return py
                .detach(|| h.prune(now))
                .map_err(|e| Error::from(e).into());
        }
        Ok(py.detach(|| self.core.prune(now)))
    }

    /// Bytes held by the key tables (entries of 16 bytes plus hashbrown's control bytes); with
    /// `storage="host"`, the bytes of the shared file in use (every limit's).
    fn memory_bytes(&self) -> PyResult<u64> {
        if let Some(h) = &self.host {
            return h.file().used_bytes().map_err(|e| Error::from(e).into());
        }
        Ok(self.core.memory_bytes() as u64)
    }

    /// The quota string as given.
    #[getter]
    fn quota(&self) -> &str {
        &self.quota
    }

    #[getter]
    fn max_keys(&self) -> usize {
        self.core.max_keys()
    }

    /// Live entries: one per key and quota (with `storage="host"`, every process's).
    fn __len__(&self) -> PyResult<usize> {
        if let Some(h) = &self.host {
            let keys = h.live_keys().map_err(Error::from)?;
            let n = self.core.quotas().len() as u64;
            return Ok(usize::try_from(keys.saturating_mul(n)).unwrap_or(usize::MAX));
        }
        Ok(self.core.len())
    }

    fn __repr__(&self) -> String {
        if let Some(h) = &self.host {
            return format!(
                "RateLimiter({:?}, storage=\"host\", path={:?})",
                self.quota,
                h.file().path().to_string_lossy()
            );
        }
        match &self.redis {
            Some(r) => format!(
                "RateLimiter({:?}, storage={:?})",
                self.quota,
                r.client().settings().display
            ),
            None => format!(
                "RateLimiter({:?}, max_keys={})",
                self.quota,
                self.core.max_keys()
            ),
        }
    }
}

/// Host-store warnings (a damaged file replaced) go to the `ferrogate` logger.
fn log_warning(msg: &str) {
    let _ = Python::try_attach(|py| {
        let logger = py
            .import("logging")
            .and_then(|m| m.call_method1("getLogger", ("ferrogate",)));
        if let Ok(l) = logger {
            let _ = l.call_method1("warning", (msg,));
        }
    });
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyRateLimiter>()?;
    m.add_class::<PyRateLimitResult>()?;
    crate::ratelimit::host_file::set_warn_hook(log_warning);
    // No host-store environment may cross a fork (LMDB's rule): close them all first; each
    // side reopens on its next hit.
    let py = m.py();
    let hook = pyo3::types::PyCFunction::new_closure(
        py,
        None,
        None,
        |_args: &Bound<'_, pyo3::types::PyTuple>,
         _kwargs: Option<&Bound<'_, pyo3::types::PyDict>>|
         -> PyResult<()> {
            crate::ratelimit::host_file::close_all();
            Ok(())
        },
    )?;
    let kwargs = pyo3::types::PyDict::new(py);
    kwargs.set_item("before", hook)?;
    py.import("os")?
        .call_method("register_at_fork", (), Some(&kwargs))?;
    Ok(())
}
