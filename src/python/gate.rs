//! `ferrogate._native.Gate`: the one-call-per-request binding. It reads the WSGI environ, runs the
//! core's check with the GIL released for slow parts, and hands back a `Decision`
//! (`decision.rs`). The revocation API and the Redis counters live in `revocation.rs` and
//! `redis.rs`.

use std::borrow::Cow;
use std::cell::OnceCell;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};

use super::convert::to_value;
use super::decision::{PyDecision, bad_request, headers_tuple, internal_error, respond};
use super::errors::Error;
use super::guard::guarded;
use crate::auth::TokenError;
use crate::auth::revocation::Refusal;
use crate::blocking::Blocking;
use crate::gate::{Decision, Explanation, Gate, GateOptions, HeaderSource, Request, Target};
use crate::shared::StoreError;
use pyo3::exceptions::PyValueError;

/// Runs signature checks with the GIL released, so other threads serve requests meanwhile.
struct ReleaseGil<'py>(Python<'py>);

impl Blocking for ReleaseGil<'_> {
    fn run(&self, f: &mut (dyn FnMut() + Send)) {
        self.0.detach(f);
    }
}

/// Environ keys, interned once so each per-request lookup hashes nothing.
struct EnvironKeys {
    method: Py<PyString>,
    path: Py<PyString>,
    query: Py<PyString>,
    remote_addr: Py<PyString>,
    headers: Vec<Py<PyString>>,
}

#[pyclass(name = "Gate", module = "ferrogate._native", frozen, subclass)]
pub struct PyGate {
    core: Gate,
    keys: EnvironKeys,
    /// Python strings for each route's pattern and name, built once, shared by every Decision.
    patterns: Vec<Option<Py<PyString>>>,
    names: Vec<Option<Py<PyString>>>,
    /// `resolve(environ) -> int | None`: the framework's own routing, for a request the router
    /// could not place while some routes are dispatch-only.
    resolve: Option<Py<PyAny>>,
}

/// [`crate::gate::Resolver`] on the Python callable; its exception is kept for the caller.
struct PyResolver<'a, 'py> {
    resolve: Option<&'a Bound<'py, PyAny>>,
    environ: &'a Bound<'py, PyDict>,
    routes: usize,
    error: std::cell::RefCell<Option<PyErr>>,
}

impl crate::gate::Resolver for PyResolver<'_, '_> {
    fn resolve(&self) -> Result<Option<usize>, crate::gate::ResolveFailed> {
        let Some(resolve) = self.resolve else {
            return Ok(None);
        };
        let found = resolve
            .call1((self.environ,))
            .and_then(|r| r.extract::<Option<usize>>());
        match found {
            Ok(Some(id)) if id >= self.routes => {
                *self.error.borrow_mut() = Some(PyValueError::new_err(format!(
                    "resolve() returned route #{id}; the gate has {} routes",
                    self.routes
                )));
                Err(crate::gate::ResolveFailed)
            }
            Ok(found) => Ok(found),
            Err(e) => {
                *self.error.borrow_mut() = Some(e);
                Err(crate::gate::ResolveFailed)
            }
        }
    }
}

/// The request's headers, each read from the environ the first time a stage asks for it.
#[derive(Debug)]
struct EnvironHeaders<'a, 'py> {
    environ: &'a Bound<'py, PyDict>,
    keys: &'a [Py<PyString>],
    read: Vec<OnceCell<Option<Bound<'py, PyString>>>>,
}

impl HeaderSource for EnvironHeaders<'_, '_> {
    fn header(&self, slot: usize) -> Option<&str> {
        let key = self.keys.get(slot)?;
        self.read
            .get(slot)?
            // A str key cannot fail to hash, so a lookup error is only ever "absent".
            .get_or_init(|| environ_str(self.environ, key).ok().flatten())
            .as_ref()
            .and_then(|v| v.to_str().ok())
    }
}

/// Reads a string from the environ; a missing or non-string value is None.
fn environ_str<'py>(
    environ: &Bound<'py, PyDict>,
    key: &Py<PyString>,
) -> PyResult<Option<Bound<'py, PyString>>> {
    Ok(environ
        .get_item(key.bind(environ.py()))?
        .and_then(|v| v.cast_into::<PyString>().ok()))
}

/// WSGI hands the path as latin-1 code points standing for the raw bytes (PEP 3333); frameworks
/// re-decode those bytes as UTF-8. ASCII (nearly every path) needs nothing.
fn wsgi_path(s: &str) -> Result<Cow<'_, str>, ()> {
    if s.is_ascii() {
        return Ok(Cow::Borrowed(s));
    }
    if s.chars().any(|c| u32::from(c) > 0xff) {
        // Not a PEP 3333 byte string: the server already decoded it; take it as it is.
        return Ok(Cow::Borrowed(s));
    }
    #[allow(clippy::cast_possible_truncation)] // every char is <= 0xff, checked above
    let bytes: Vec<u8> = s.chars().map(|c| u32::from(c) as u8).collect();
    String::from_utf8(bytes).map(Cow::Owned).map_err(|_| ())
}

impl PyGate {
    #[allow(clippy::too_many_lines)] // read the environ, check, convert: one request's binding
    fn decide(
        &self,
        py: Python<'_>,
        environ: &Bound<'_, PyDict>,
        target: Option<(Option<usize>, bool)>,
    ) -> PyResult<PyDecision> {
        let mut method = environ_str(environ, &self.keys.method)?;
        if let Some(m) = &method {
            // werkzeug and Django upper-case the method before routing; the gate reads it the same
            // way and forwards the spelling it checked, so a WSGI layer or app behind that does
            // not upper-case cannot see another method than the gate did.
            if m.to_str()
                .is_ok_and(|s| s.bytes().any(|b| b.is_ascii_lowercase()))
            {
                let upper = PyString::new(py, &m.to_str()?.to_ascii_uppercase());
                environ.set_item(self.keys.method.bind(py), &upper)?;
                method = Some(upper);
            }
        }
        let path = environ_str(environ, &self.keys.path)?;
        let query = environ_str(environ, &self.keys.query)?;
        let remote = environ_str(environ, &self.keys.remote_addr)?;
        let Some(method) = method else {
            return bad_request(py, "request has no method");
        };
        let (Ok(method), Ok(raw_path)) = (
            method.to_str(),
            path.as_ref().map_or(Ok(""), |p| p.to_str()),
        ) else {
            return bad_request(py, "request line is not valid text");
        };
        let Ok(path) = wsgi_path(raw_path) else {
            return bad_request(py, "path is not valid UTF-8");
        };
        let query = query.as_ref().and_then(|q| q.to_str().ok()).unwrap_or("");
        let remote_addr = remote.as_ref().and_then(|r| r.to_str().ok());
        let headers = EnvironHeaders {
            environ,
            keys: &self.keys.headers,
            read: std::iter::repeat_with(OnceCell::new)
                .take(self.keys.headers.len())
                .collect(),
        };
        let req = Request {
            method,
            path: &path,
            query,
            remote_addr,
            headers: &headers,
        };
        let resolver = PyResolver {
            resolve: self.resolve.as_ref().map(|r| r.bind(py)),
            environ,
            routes: self.core.route_count(),
            error: std::cell::RefCell::new(None),
        };
        let target = match target {
            None => Target::Match(&resolver),
            Some((id, cache)) => Target::Route { id, cache },
        };
        let decision = self.core.check_target(&req, &ReleaseGil(py), target);
        if let Some(e) = resolver.error.into_inner() {
            return Err(e);
        }
        match decision {
            Decision::Respond(r) => respond(py, &r),
            Decision::Forward(f) => {
                let params = PyDict::new(py);
                let (route, route_name, route_index) = match &f.route {
                    Some(m) => {
                        for (k, v) in m.params.iter() {
                            params.set_item(PyString::new(py, k), PyString::new(py, v))?;
                        }
                        let pattern = match &self.patterns[m.id] {
                            // An alias matched: name the pattern that did.
                            Some(p) if p.bind(py).to_str().is_ok_and(|p| p == m.pattern) => {
                                Some(p.clone_ref(py))
                            }
                            Some(_) => Some(PyString::new(py, m.pattern).unbind()),
                            None => None,
                        };
                        (
                            pattern,
                            self.names[m.id].as_ref().map(|n| n.clone_ref(py)),
                            Some(m.id),
                        )
                    }
                    None => (None, None, None),
                };
                Ok(PyDecision {
                    forward: true,
                    status: 0,
                    headers: headers_tuple(py, &f.headers)?.unbind(),
                    body: PyBytes::new(py, b"").unbind(),
                    route,
                    route_name,
                    route_index,
                    params: params.unbind(),
                    dry_run_refused: f.dry_run_refused.map(|n| PyString::new(py, n).unbind()),
                    claims: match &f.claims {
                        Some(v) => Some(super::jwt::claims_dict(py, v)?.unbind()),
                        None => None,
                    },
                    cache_ticket: match f.cache {
                        Some(t) => Some(Py::new(py, super::ticket::PyCacheTicket { inner: t })?),
                        None => None,
                    },
                })
            }
        }
    }
}

#[pymethods]
impl PyGate {
    /// Builds a gate from a config dict; raises `ConfigError` listing every problem.
    #[new]
    #[pyo3(signature = (config, *, resolve=None))]
    fn new(
        py: Python<'_>,
        config: &Bound<'_, PyAny>,
        resolve: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let value = to_value(config).map_err(Error::from)?;
        let options = GateOptions {
            clock: crate::clock::system(),
            fetcher: Some(super::jwt::fetcher()),
        };
        // Without the GIL: a gate with a revocation list waits (bounded) for its first load.
        let core = py
            .detach(|| Gate::from_value_with(&value, &options))
            .map_err(Error::from)?;
        super::redis::watch(py, &core)?;
        let intern = |s: &str| PyString::intern(py, s).unbind();
        let keys = EnvironKeys {
            method: intern("REQUEST_METHOD"),
            path: intern("PATH_INFO"),
            query: intern("QUERY_STRING"),
            remote_addr: intern("REMOTE_ADDR"),
            headers: core
                .header_keys()
                .iter()
                .map(|h| intern(&crate::http::cgi_key(h)))
                .collect(),
        };
        let mut patterns = Vec::with_capacity(core.route_count());
        let mut names = Vec::with_capacity(core.route_count());
        for (pattern, name) in core.routes() {
            patterns.push(pattern.map(intern));
            names.push(name.map(intern));
        }
        Ok(Self {
            core,
            keys,
            patterns,
            names,
            resolve,
        })
    }

    /// Decides one request from its WSGI environ, in one call. Never raises for bad requests:
    /// they get a 4xx Decision; an internal bug gets a logged 500 Decision.
    pub(super) fn check(
        &self,
        py: Python<'_>,
        environ: &Bound<'_, PyDict>,
    ) -> PyResult<PyDecision> {
        guarded(
            py,
            "Gate.check",
            || self.decide(py, environ, None),
            || internal_error(py),
        )
    }

    /// Decides one request under the route the framework resolved (`route`: its index in the
    /// config's `routes`; None: no route, the defaults apply), without asking the router.
    /// `cache=False` neither serves from nor stores into the cache.
    #[pyo3(signature = (environ, route, *, cache=true))]
    pub(super) fn check_route(
        &self,
        py: Python<'_>,
        environ: &Bound<'_, PyDict>,
        route: Option<usize>,
        cache: bool,
    ) -> PyResult<PyDecision> {
        if let Some(id) = route {
            if id >= self.core.route_count() {
                return Err(PyValueError::new_err(format!(
                    "route #{id} does not exist; the gate has {} routes",
                    self.core.route_count()
                )));
            }
        }
        guarded(
            py,
            "Gate.check_route",
            || self.decide(py, environ, Some((route, cache))),
            || internal_error(py),
        )
    }

    /// Which route and policy apply to `method path`, and why.
    fn explain<'py>(
        &self,
        py: Python<'py>,
        method: &str,
        path: &str,
    ) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        match self.core.explain(method, path) {
            Explanation::Route {
                pattern,
                name,
                params,
                policy,
            } => {
                out.set_item("outcome", "route")?;
                out.set_item("pattern", pattern)?;
                out.set_item("name", name)?;
                out.set_item(
                    "params",
                    params
                        .into_iter()
                        .collect::<std::collections::BTreeMap<_, _>>(),
                )?;
                out.set_item(
                    "policy",
                    policy
                        .describe()
                        .into_iter()
                        .collect::<std::collections::BTreeMap<_, _>>(),
                )?;
            }
            Explanation::MethodNotAllowed { allow } => {
                out.set_item("outcome", "method_not_allowed")?;
                out.set_item("allow", allow)?;
            }
            Explanation::Unmatched { policy } => {
                out.set_item("outcome", "unmatched")?;
                out.set_item(
                    "policy",
                    policy
                        .describe()
                        .into_iter()
                        .collect::<std::collections::BTreeMap<_, _>>(),
                )?;
            }
            Explanation::BadPath(e) => {
                out.set_item("outcome", "bad_path")?;
                out.set_item("reason", e.to_string())?;
            }
        }
        Ok(out)
    }

    /// The client's address as the gate's rate limits key it, from a WSGI environ: `REMOTE_ADDR`
    /// unless `[client_ip]` trusts the proxy that sent it, masked to the configured prefix
    /// (IPv6 /64 by default). None when the environ has no usable address.
    fn client_ip(&self, environ: &Bound<'_, PyDict>) -> PyResult<Option<String>> {
        let read = |key: &str| -> PyResult<Option<String>> {
            Ok(environ
                .get_item(key)?
                .and_then(|v| v.cast_into::<PyString>().ok())
                .and_then(|s| s.to_str().ok().map(str::to_owned)))
        };
        let remote_addr = read("REMOTE_ADDR")?;
        let forwarded = match self.core.forwarded_header() {
            Some(name) => read(&crate::http::cgi_key(name))?,
            None => None,
        };
        Ok(self
            .core
            .client_key(remote_addr.as_deref(), forwarded.as_deref())
            .map(|ip| ip.to_string()))
    }

    /// How many rate limiters keep their counts in this process's memory.
    #[getter]
    fn memory_rate_limiters(&self) -> usize {
        self.core.memory_rate_limiters()
    }

    /// Forgets the counts of the in-memory rate limits: every key has its whole quota again.
    /// Redis-backed counts are shared with other processes and stay.
    fn reset_limits(&self) {
        self.core.reset_memory_limits();
    }

    /// How many rate limiters count in the host-shared file (`storage = "host"`).
    #[getter]
    fn host_rate_limiters(&self) -> usize {
        self.core.host_rate_limiters()
    }

    /// True when a request's check may wait on Redis (a `[redis]` section): async hosts then run
    /// `check` in a worker thread instead of on the event loop.
    #[getter]
    fn uses_redis(&self) -> bool {
        self.core.redis().is_some()
    }

    /// Counters of the shared store (Redis) and the limits using it, or None without `[redis]`:
    /// round trips, leased hits, errors, failed-open/closed and fallback decisions, the client's
    /// calls/connects/rejections and the circuit breaker's state.
    fn redis_stats<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        super::redis::stats(py, &self.core)
    }

    /// One PING to the gate's Redis (a health check); raises `StoreUnavailableError` when it
    /// cannot answer, `ConfigError` when the gate has no `[redis]`.
    fn ping_redis(&self, py: Python<'_>) -> PyResult<()> {
        super::redis::ping(py, &self.core)
    }

    /// Verifies a bearer token with the gate's own `[jwt]` verifier (same keys, caches and
    /// rules); raises an `InvalidTokenError` subclass, or `ConfigError` if the gate has no `[jwt]`.
    #[pyo3(signature = (token, *, now=None))]
    fn verify_token<'py>(
        &self,
        py: Python<'py>,
        token: &str,
        now: Option<f64>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let Some(verifier) = self.core.verifier() else {
            return Err(Error::from(crate::issues::ConfigError::single(
                "jwt",
                "this gate has no [jwt] section",
            ))
            .into());
        };
        let now = now.unwrap_or_else(|| verifier.now());
        let token_claims =
            super::jwt::verify_releasing(py, verifier, token, now).map_err(Error::from)?;
        if let Some(r) = self.core.revocations() {
            match r.check(&token_claims, now, &ReleaseGil(py)) {
                Ok(()) => {}
                Err(Refusal::Revoked) => return Err(Error::from(TokenError::Revoked).into()),
                Err(Refusal::Unavailable(reason)) => {
                    return Err(Error::store(
                        "the token's revocation status cannot be checked",
                        StoreError::Unavailable(reason),
                    )
                    .into());
                }
            }
        }
        super::jwt::claims_dict(py, &token_claims)
    }

    /// Revokes a token (given whole: its signature is checked and its `jti` and `exp` read) or a
    /// bare `jti`, until `exp` plus the leeway (`None` for a bare jti: no expiry). Applies in
    /// this process at once and in every other one through Redis; returns the jti. Raises
    /// `StoreUnavailableError` when Redis cannot be told (this process refuses it anyway).
    #[pyo3(signature = (token_or_jti, *, exp=None))]
    fn revoke_token(
        &self,
        py: Python<'_>,
        token_or_jti: &str,
        exp: Option<f64>,
    ) -> PyResult<String> {
        super::revocation::revoke_token(py, &self.core, token_or_jti, exp)
    }

    /// Revokes every token of `sub` from `issuer` issued before `before` (Unix seconds; default
    /// Redis's clock plus the leeway): its tokens with `iat` < T, and those without `iat`.
    /// `issuer` may be left out when the gate trusts one issuer (or names none). Returns T.
    #[pyo3(signature = (sub, *, before=None, issuer=None))]
    fn revoke_subject(
        &self,
        py: Python<'_>,
        sub: &str,
        before: Option<f64>,
        issuer: Option<&str>,
    ) -> PyResult<f64> {
        super::revocation::revoke_subject(py, &self.core, sub, before, issuer)
    }

    /// The revocation list's state: `check`, `on_error`, `synced` (loaded on the subscriber's
    /// current connection), `tokens` and `subjects` held locally, `overflow`.
    fn revocation_status<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        super::revocation::status(py, &self.core)
    }

    /// The gate's response cache (for purging and stats), or None without caching.
    #[getter]
    fn cache(&self) -> Option<super::response_cache::PyResponseCache> {
        self.core
            .cache()
            .map(super::response_cache::PyResponseCache::for_gate)
    }

    /// `(pattern, name)` for every route, in config order; a dispatch-only route's pattern is
    /// None.
    fn routes(&self) -> Vec<(Option<String>, Option<String>)> {
        self.core
            .routes()
            .map(|(p, n)| (p.map(str::to_owned), n.map(str::to_owned)))
            .collect()
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyGate>()?;
    m.add_class::<super::decision::PyDecision>()
}
