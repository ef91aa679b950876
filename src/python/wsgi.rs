//! `ferrogate._native.WsgiGate`: the WSGI fast path in Rust. One call checks the request, answers
//! refusals, fills the environ and wraps `start_response` only when the gate has headers to add,
//! so a forwarded request pays for no Python frames of ours.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use super::gate::{PyDecision, PyGate};

struct Keys {
    route: Py<PyString>,
    route_name: Py<PyString>,
    params: Py<PyString>,
    decision: Py<PyString>,
    claims: Py<PyString>,
    refused: Py<PyString>,
    method: Py<PyString>,
}

/// Wraps a WSGI app with a gate. `defer_refusals`: hand refused requests to the app (with the
/// decision in `environ["ferrogate.refused"]`) instead of answering them, so a framework can
/// render them with its own error handlers.
#[pyclass(name = "WsgiGate", module = "ferrogate._native", frozen, subclass)]
pub struct PyWsgiGate {
    #[pyo3(get)]
    app: Py<PyAny>,
    #[pyo3(get)]
    gate: Py<PyGate>,
    #[pyo3(get)]
    defer_refusals: bool,
    keys: Keys,
}

/// `start_response` with the gate's headers appended to the app's.
#[pyclass(name = "_StartResponse", module = "ferrogate._native", frozen)]
pub struct StartWithHeaders {
    inner: Py<PyAny>,
    extra: Py<PyTuple>,
}

#[pymethods]
impl StartWithHeaders {
    #[pyo3(signature = (status, headers, exc_info=None))]
    fn __call__(
        &self,
        py: Python<'_>,
        status: &Bound<'_, PyAny>,
        headers: &Bound<'_, PyAny>,
        exc_info: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        // A new list: the app may reuse its own header list across responses.
        let merged = PyList::empty(py);
        for h in headers.try_iter()? {
            merged.append(h?)?;
        }
        for h in self.extra.bind(py).iter() {
            merged.append(h)?;
        }
        let inner = self.inner.bind(py);
        let result = match exc_info {
            Some(e) => inner.call1((status, merged, e))?,
            None => inner.call1((status, merged))?,
        };
        Ok(result.unbind())
    }
}

impl PyWsgiGate {
    fn answer(
        &self,
        py: Python<'_>,
        d: &PyDecision,
        environ: &Bound<'_, PyDict>,
        start_response: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let body = d.body.bind(py);
        let headers = PyList::empty(py);
        for h in d.headers.bind(py).iter() {
            headers.append(h)?;
        }
        if !matches!(d.status, 204 | 304) {
            headers.append(("content-length", body.as_bytes().len().to_string()))?;
        }
        start_response.call1((d.status_line(), headers))?;
        let is_head = environ
            .get_item(self.keys.method.bind(py))?
            .is_some_and(|m| {
                m.cast::<PyString>()
                    .is_ok_and(|s| s.to_str().is_ok_and(|s| s == "HEAD"))
            });
        let out = if is_head {
            PyList::empty(py)
        } else {
            PyList::new(py, [body])?
        };
        Ok(out.into_any().unbind())
    }
}

#[pymethods]
impl PyWsgiGate {
    #[new]
    #[pyo3(signature = (app, gate, defer_refusals=false))]
    fn new(py: Python<'_>, app: Py<PyAny>, gate: Py<PyGate>, defer_refusals: bool) -> Self {
        let intern = |s: &str| PyString::intern(py, s).unbind();
        Self {
            app,
            gate,
            defer_refusals,
            keys: Keys {
                route: intern("ferrogate.route"),
                route_name: intern("ferrogate.route_name"),
                params: intern("ferrogate.params"),
                decision: intern("ferrogate.decision"),
                claims: intern("ferrogate.claims"),
                refused: intern("ferrogate.refused"),
                method: intern("REQUEST_METHOD"),
            },
        }
    }

    fn __call__(
        &self,
        py: Python<'_>,
        environ: &Bound<'_, PyDict>,
        start_response: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let d = self.gate.get().check(py, environ)?;
        if !d.forward {
            if !self.defer_refusals {
                return self.answer(py, &d, environ, start_response);
            }
            environ.set_item(self.keys.refused.bind(py), Py::new(py, d)?)?;
            return Ok(self.app.bind(py).call1((environ, start_response))?.unbind());
        }
        if let Some(limit) = &d.dry_run_refused {
            log_dry_run(py, limit.bind(py), d.route.as_ref().map(|r| r.bind(py)));
        }
        let k = &self.keys;
        environ.set_item(k.route.bind(py), d.route.as_ref().map(|r| r.bind(py)))?;
        environ.set_item(
            k.route_name.bind(py),
            d.route_name.as_ref().map(|r| r.bind(py)),
        )?;
        environ.set_item(k.params.bind(py), d.params.bind(py))?;
        environ.set_item(k.claims.bind(py), d.claims.as_ref().map(|c| c.bind(py)))?;
        let extra = d.headers.clone_ref(py);
        let ticket = d.cache_ticket.as_ref().map(|t| t.clone_ref(py));
        environ.set_item(k.decision.bind(py), Py::new(py, d)?)?;
        let app = self.app.bind(py);
        if let Some(ticket) = ticket {
            // A cache miss or an unsafe request: the slow path, in Python.
            let serve = py.import("ferrogate.wsgi")?.getattr("serve_with_ticket")?;
            return Ok(serve
                .call1((app, ticket, environ, start_response, extra))?
                .unbind());
        }
        let result = if extra.bind(py).is_empty() {
            app.call1((environ, start_response))?
        } else {
            let wrapper = Py::new(
                py,
                StartWithHeaders {
                    inner: start_response.clone().unbind(),
                    extra,
                },
            )?;
            app.call1((environ, wrapper))?
        };
        Ok(result.unbind())
    }
}

fn log_dry_run(py: Python<'_>, limit: &Bound<'_, PyString>, route: Option<&Bound<'_, PyString>>) {
    let _ = py
        .import("logging")
        .and_then(|logging| logging.call_method1("getLogger", ("ferrogate",)))
        .and_then(|logger| {
            logger.call_method1(
                "info",
                ("dry-run rate limit %r would have refused %s", limit, route),
            )
        });
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyWsgiGate>()?;
    m.add_class::<StartWithHeaders>()
}
