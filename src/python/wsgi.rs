//! `ferrogate._native.WsgiGate`: the WSGI fast path in Rust. One call checks the request, answers
//! refusals, fills the environ and wraps `start_response` only when the gate has headers to add,
//! so a forwarded request pays for no Python frames of ours.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use super::decision::{PyDecision, forward_into};
use super::gate::PyGate;
use crate::cache::rules::NotStored;

struct Keys {
    refused: Py<PyString>,
    method: Py<PyString>,
}

/// Wraps a WSGI app with a gate. `defer_refusals`: hand refused requests to the app (with the
/// decision in `environ["ferrogate.refused"]`) instead of answering them, so a framework can
/// render them with its own error handlers. Cache hits are always answered here.
#[pyclass(name = "WsgiGate", module = "ferrogate._native", frozen, subclass)]
pub struct PyWsgiGate {
    #[pyo3(get)]
    app: Py<PyAny>,
    #[pyo3(get)]
    gate: Py<PyGate>,
    #[pyo3(get)]
    defer_refusals: bool,
    /// Where deferred refusals go: the framework's own entry point (Flask's `Flask.wsgi_app`),
    /// never a WSGI layer that sits between the gate and the framework and might serve the
    /// request itself. None: `app`.
    #[pyo3(get)]
    refusal_app: Option<Py<PyAny>>,
    /// Called as `on_refused(decision, environ)` for every refusal (status 400 and up; a cache
    /// hit is none), before it is answered or deferred: for logging and metrics. It cannot change
    /// the answer; if it raises, the error is logged and the refusal goes out as decided.
    #[pyo3(get)]
    on_refused: Option<Py<PyAny>>,
    keys: Keys,
}

/// `start_response` with the gate's headers appended to the app's.
#[pyclass(name = "_StartResponse", module = "ferrogate._native", frozen)]
pub struct StartWithHeaders {
    inner: Py<PyAny>,
    extra: Py<PyTuple>,
    environ: Py<PyDict>,
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
        call_with_extra(
            py,
            self.inner.bind(py),
            status,
            headers,
            &live_extra(self.environ.bind(py), self.extra.bind(py)),
            exc_info,
        )
    }
}

/// The early decision's headers, unless the adapter checked the request again under the route
/// the framework resolved (`environ["ferrogate.headers_replaced"]`): that check's headers are
/// the ones that describe the response, and two sets would contradict each other.
fn live_extra<'py>(
    environ: &Bound<'py, PyDict>,
    extra: &Bound<'py, PyTuple>,
) -> Bound<'py, PyTuple> {
    let py = environ.py();
    match environ.contains(pyo3::intern!(py, "ferrogate.headers_replaced")) {
        Ok(false) => extra.clone(),
        _ => PyTuple::empty(py),
    }
}

/// Calls `inner(status, headers + extra[, exc_info])` with a new list: the app may reuse its own
/// header list across responses.
fn call_with_extra(
    py: Python<'_>,
    inner: &Bound<'_, PyAny>,
    status: &Bound<'_, PyAny>,
    headers: &Bound<'_, PyAny>,
    extra: &Bound<'_, PyTuple>,
    exc_info: Option<&Bound<'_, PyAny>>,
) -> PyResult<Py<PyAny>> {
    let merged = PyList::empty(py);
    for h in headers.try_iter()? {
        merged.append(h?)?;
    }
    for h in extra.iter() {
        merged.append(h)?;
    }
    let result = match exc_info {
        Some(e) => inner.call1((status, merged, e))?,
        None => inner.call1((status, merged))?,
    };
    Ok(result.unbind())
}

impl PyWsgiGate {
    /// Whether the request is a HEAD: its answers carry no body.
    fn is_head(&self, environ: &Bound<'_, PyDict>) -> PyResult<bool> {
        Ok(environ
            .get_item(self.keys.method.bind(environ.py()))?
            .is_some_and(|m| {
                m.cast::<PyString>()
                    .is_ok_and(|s| s.to_str().is_ok_and(|s| s == "HEAD"))
            }))
    }

    /// A refusal for the framework to render: the decision in the environ, the request to
    /// `refusal_app`.
    fn defer(
        &self,
        py: Python<'_>,
        decision: Py<PyDecision>,
        environ: &Bound<'_, PyDict>,
        start_response: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        environ.set_item(self.keys.refused.bind(py), decision)?;
        let target = self.refusal_app.as_ref().unwrap_or(&self.app);
        Ok(target.bind(py).call1((environ, start_response))?.unbind())
    }

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
            let len = body.as_bytes().len().to_string();
            headers.append((super::headers::name(py, "content-length"), len))?;
        }
        start_response.call1((d.status_line(), headers))?;
        let out = if self.is_head(environ)? {
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
    #[pyo3(signature = (app, gate, defer_refusals=false, *, refusal_app=None, on_refused=None))]
    fn new(
        py: Python<'_>,
        app: Py<PyAny>,
        gate: Py<PyGate>,
        defer_refusals: bool,
        refusal_app: Option<Py<PyAny>>,
        on_refused: Option<Py<PyAny>>,
    ) -> Self {
        let intern = |s: &str| PyString::intern(py, s).unbind();
        Self {
            app,
            gate,
            defer_refusals,
            refusal_app,
            on_refused,
            keys: Keys {
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
            if d.status < 400 {
                // A cache hit (200, or 304 to a conditional request): the gate's answer, never
                // a refusal for the framework's error handlers or for `on_refused`.
                return self.answer(py, &d, environ, start_response);
            }
            let Some(hook) = &self.on_refused else {
                if !self.defer_refusals {
                    return self.answer(py, &d, environ, start_response);
                }
                return self.defer(py, Py::new(py, d)?, environ, start_response);
            };
            let decision = Py::new(py, d)?;
            notify_refused(py, hook.bind(py), &decision, environ);
            if !self.defer_refusals {
                return self.answer(py, decision.get(), environ, start_response);
            }
            return self.defer(py, decision, environ, start_response);
        }
        if let Some(limit) = &d.dry_run_refused {
            log_dry_run(py, limit.bind(py), d.route.as_ref().map(|r| r.bind(py)));
        }
        let extra = d.headers.clone_ref(py);
        let ticket = d.cache_ticket.as_ref().map(|t| t.clone_ref(py));
        forward_into(&Bound::new(py, d)?, environ)?;
        let app = self.app.bind(py);
        if let Some(ticket) = ticket {
            let is_head = self.is_head(environ)?;
            return Self::serve_with_ticket(
                py,
                app,
                ticket.bind(py),
                environ,
                start_response,
                extra.bind(py),
                is_head,
            );
        }
        let result = if extra.bind(py).is_empty() {
            app.call1((environ, start_response))?
        } else {
            let wrapper = Py::new(
                py,
                StartWithHeaders {
                    inner: start_response.clone().unbind(),
                    extra,
                    environ: environ.clone().unbind(),
                },
            )?;
            app.call1((environ, wrapper))?
        };
        Ok(result.unbind())
    }
}

/// Calls the `on_refused` hook; its failure is logged (with the traceback), never raised.
fn notify_refused(
    py: Python<'_>,
    hook: &Bound<'_, PyAny>,
    decision: &Py<PyDecision>,
    environ: &Bound<'_, PyDict>,
) {
    if let Err(e) = hook.call1((decision.clone_ref(py), environ)) {
        let _ = py
            .import("logging")
            .and_then(|logging| logging.call_method1("getLogger", ("ferrogate",)))
            .and_then(|logger| {
                let kwargs = PyDict::new(py);
                kwargs.set_item("exc_info", e.value(py))?;
                logger.call_method("error", ("the on_refused hook failed",), Some(&kwargs))
            });
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
    m.add_class::<StartWithHeaders>()?;
    m.add_class::<Capture>()?;
    m.add_class::<StartAfterUnsafe>()
}

/// `start_response` after an unsafe request: a success invalidates the path's cached entries.
#[pyclass(name = "_StartAfterUnsafe", module = "ferrogate._native", frozen)]
pub struct StartAfterUnsafe {
    inner: Py<PyAny>,
    extra: Py<PyTuple>,
    environ: Py<PyDict>,
    ticket: Py<super::ticket::PyCacheTicket>,
}

#[pymethods]
impl StartAfterUnsafe {
    #[pyo3(signature = (status, headers, exc_info=None))]
    fn __call__(
        &self,
        py: Python<'_>,
        status: &Bound<'_, PyAny>,
        headers: &Bound<'_, PyAny>,
        exc_info: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let code = status_code(status);
        let ticket = &self.ticket.get().inner;
        // With a shared tier this is a Redis round trip: without the GIL.
        super::release_if(py, ticket.may_block(), || ticket.unsafe_done(code));
        call_with_extra(
            py,
            self.inner.bind(py),
            status,
            headers,
            &live_extra(self.environ.bind(py), self.extra.bind(py)),
            exc_info,
        )
    }
}

/// Captures `start_response` for a response the cache may store. Returns the `write` callable
/// (PEP 3333) that appends to the same buffer.
#[pyclass(name = "_Capture", module = "ferrogate._native", frozen)]
pub struct Capture {
    state: std::sync::Mutex<CaptureState>,
}

#[derive(Default)]
struct CaptureState {
    status: Option<Py<PyAny>>,
    headers: Option<Py<PyAny>>,
    exc_info: Option<Py<PyAny>>,
    /// `start_response` was called again after a status was given (PEP 3333 allows it with
    /// `exc_info` while no header was sent: the app failed). Such a response is never stored.
    replaced: bool,
    written: Vec<u8>,
    /// The server's `start_response` and `write`, once the response is passed through: later
    /// calls of the app's go straight to them (the server re-raises `exc_info` once its headers
    /// are out, and `write` data goes out in order with the iterable's).
    sent: Option<(Py<PyAny>, Py<PyAny>)>,
}

impl Capture {
    fn lock(&self) -> std::sync::MutexGuard<'_, CaptureState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[pymethods]
impl Capture {
    #[pyo3(signature = (status, headers, exc_info=None))]
    fn __call__(
        slf: &Bound<'_, Self>,
        status: &Bound<'_, PyAny>,
        headers: &Bound<'_, PyAny>,
        exc_info: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let sent = {
            let mut st = slf.get().lock();
            match &st.sent {
                Some((start, _)) => Some(start.clone_ref(py)),
                None => {
                    st.replaced |= st.status.is_some();
                    st.status = Some(status.clone().unbind());
                    st.headers = Some(headers.clone().unbind());
                    st.exc_info = exc_info.map(|e| e.clone().unbind());
                    None
                }
            }
        };
        if let Some(start) = sent {
            let start = start.bind(py);
            return Ok(match exc_info {
                Some(e) => start.call1((status, headers, e))?,
                None => start.call1((status, headers))?,
            }
            .unbind());
        }
        Ok(slf.getattr("write")?.unbind())
    }

    fn write(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let sent = {
            let mut st = self.lock();
            match &st.sent {
                Some((_, write)) => Some(write.clone_ref(py)),
                None => {
                    st.written
                        .extend_from_slice(data.cast::<PyBytes>()?.as_bytes());
                    None
                }
            }
        };
        if let Some(write) = sent {
            write.bind(py).call1((data,))?;
        }
        Ok(())
    }
}

/// The status, headers and `exc_info` the app gave last, and whether it gave more than one.
#[allow(clippy::type_complexity)]
fn latest<'py>(
    py: Python<'py>,
    capture: &Bound<'py, Capture>,
) -> Option<(Bound<'py, PyAny>, Py<PyAny>, Option<Py<PyAny>>, bool)> {
    let st = capture.get().lock();
    match (&st.status, &st.headers) {
        (Some(s), Some(h)) => Some((
            s.bind(py).clone(),
            h.clone_ref(py),
            st.exc_info.as_ref().map(|e| e.clone_ref(py)),
            st.replaced,
        )),
        _ => None,
    }
}

fn status_code(status: &Bound<'_, PyAny>) -> u16 {
    status
        .cast::<PyString>()
        .ok()
        .and_then(|s| {
            s.to_str()
                .ok()
                .and_then(|t| t.get(..3))
                .and_then(|c| c.parse().ok())
        })
        .unwrap_or(0)
}

fn header_pairs(headers: &Bound<'_, PyAny>) -> PyResult<Vec<(String, String)>> {
    let mut out = Vec::new();
    for h in headers.try_iter()? {
        let (k, v): (String, String) = h?.extract()?;
        out.push((k, v));
    }
    Ok(out)
}

/// The headers to send after a store: the app's own tuples as they came (minus the tags header),
/// then the cache's additions and the gate's. Only the additions are made into Python strings.
fn changed_headers<'py>(
    headers: &Bound<'py, PyAny>,
    changes: crate::cache::ticket::Changes,
    extra: &Bound<'py, PyTuple>,
) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(headers.py());
    for h in headers.try_iter()? {
        let h = h?;
        if !changes.remove.is_empty() {
            let (name, _): (String, Bound<'_, PyAny>) = h.extract()?;
            if changes.remove.contains(&name) {
                continue;
            }
        }
        list.append(h)?;
    }
    for (k, v) in changes.add {
        list.append((super::headers::name(headers.py(), &k), v))?;
    }
    for h in extra.iter() {
        list.append(h)?;
    }
    Ok(list)
}

/// The stored response's body as the WSGI result: nothing for HEAD, else the app's own chunk when
/// it is the whole body, or one new bytes object.
fn body_list<'py>(
    py: Python<'py>,
    is_head: bool,
    only: Option<Bound<'py, PyBytes>>,
    body: &[u8],
) -> PyResult<Bound<'py, PyList>> {
    if is_head {
        return Ok(PyList::empty(py));
    }
    match only {
        Some(chunk) if chunk.as_bytes().len() == body.len() => PyList::new(py, [chunk]),
        _ => PyList::new(py, [PyBytes::new(py, body)]),
    }
}

/// Appends one chunk of the app's body; `only` holds the chunk while it is the whole body.
fn take_chunk<'py>(
    chunk: Bound<'py, PyAny>,
    body: &mut Vec<u8>,
    only: &mut Option<Bound<'py, PyBytes>>,
) -> PyResult<()> {
    let chunk = chunk.cast_into::<PyBytes>()?;
    *only = body.is_empty().then(|| chunk.clone());
    body.extend_from_slice(chunk.as_bytes());
    Ok(())
}

fn close(result: &Bound<'_, PyAny>) -> PyResult<()> {
    // A list or tuple (what most plain WSGI apps return) has no `close`; asking would build and
    // drop an AttributeError, which costs more than the rest of this function.
    if result.is_exact_instance_of::<PyList>() || result.is_exact_instance_of::<PyTuple>() {
        return Ok(());
    }
    if let Ok(c) = result.getattr(pyo3::intern!(result.py(), "close")) {
        c.call0()?;
    }
    Ok(())
}

impl PyWsgiGate {
    /// An unsafe request on a path with cached entries: a success invalidates them.
    fn serve_unsafe(
        py: Python<'_>,
        app: &Bound<'_, PyAny>,
        ticket: &Bound<'_, super::ticket::PyCacheTicket>,
        environ: &Bound<'_, PyDict>,
        start_response: &Bound<'_, PyAny>,
        extra: &Bound<'_, PyTuple>,
    ) -> PyResult<Py<PyAny>> {
        let wrapper = Py::new(
            py,
            StartAfterUnsafe {
                inner: start_response.clone().unbind(),
                extra: extra.clone().unbind(),
                environ: environ.clone().unbind(),
                ticket: ticket.clone().unbind(),
            },
        )?;
        Ok(app.call1((environ, wrapper))?.unbind())
    }

    /// A GET miss the cache may store, or an unsafe request that may invalidate: the app runs,
    /// and its response goes through the ticket. Only responses the rules allow are buffered.
    // Buffering a WSGI response in order (start_response, write, chunks, a restart), in one place.
    #[allow(clippy::too_many_lines)]
    fn serve_with_ticket(
        py: Python<'_>,
        app: &Bound<'_, PyAny>,
        ticket: &Bound<'_, super::ticket::PyCacheTicket>,
        environ: &Bound<'_, PyDict>,
        start_response: &Bound<'_, PyAny>,
        extra: &Bound<'_, PyTuple>,
        is_head: bool,
    ) -> PyResult<Py<PyAny>> {
        let t = &ticket.get().inner;
        if !t.is_store() {
            return Self::serve_unsafe(py, app, ticket, environ, start_response, extra);
        }
        let capture = Bound::new(
            py,
            Capture {
                state: std::sync::Mutex::new(CaptureState::default()),
            },
        )?;
        let result = match app.call1((environ, &capture)) {
            Ok(r) => r,
            Err(e) => {
                t.end();
                return Err(e);
            }
        };
        let outcome = (|| -> PyResult<Option<Py<PyAny>>> {
            let mut body: Vec<u8> = Vec::new();
            // The app's one chunk when the body is exactly that (the usual case): sent as it is
            // rather than copied into a new bytes object.
            let mut only: Option<Bound<'_, PyBytes>> = None;
            let mut iter = result.try_iter()?;
            // Read until the status is known (a generator app calls start_response lazily).
            let mut exhausted = false;
            loop {
                let known = {
                    let mut st = capture.get().lock();
                    // `write` data goes before the chunks the iterable yields after it.
                    body.append(&mut st.written);
                    st.status.is_some()
                };
                if known {
                    break;
                }
                match iter.next() {
                    Some(chunk) => {
                        let chunk = chunk?;
                        // What the app wrote while making this chunk goes before it.
                        body.append(&mut capture.get().lock().written);
                        take_chunk(chunk, &mut body, &mut only)?;
                    }
                    None => {
                        exhausted = true;
                        break;
                    }
                }
            }
            let Some((status, headers, exc_info, replaced)) = latest(py, &capture) else {
                return Err(pyo3::exceptions::PyRuntimeError::new_err(
                    "the WSGI app returned without calling start_response",
                ));
            };
            let code = status_code(&status);
            let pairs = header_pairs(headers.bind(py))?;
            // Calls the server's `start_response`; the app's later calls go straight to it.
            let send = |status: &Bound<'_, PyAny>,
                        hs: Vec<(String, String)>,
                        exc_info: Option<&Py<PyAny>>|
             -> PyResult<()> {
                let list = PyList::new(py, hs)?;
                for h in live_extra(environ, extra).iter() {
                    list.append(h)?;
                }
                let write = match exc_info {
                    Some(e) => start_response.call1((status, list, e.bind(py)))?,
                    None => start_response.call1((status, list))?,
                };
                capture.get().lock().sent = Some((start_response.clone().unbind(), write.unbind()));
                Ok(())
            };
            let passthrough = |body: &[u8], iter: Bound<'_, pyo3::types::PyIterator>| {
                let passthrough = py.import("ferrogate.wsgi")?.getattr("_Passthrough")?;
                let head = PyList::new(py, [PyBytes::new(py, body)])?;
                PyResult::Ok(Some(passthrough.call1((head, iter, &result))?.unbind()))
            };
            if replaced {
                send(
                    &status,
                    t.refuse(pairs, NotStored::AppError),
                    exc_info.as_ref(),
                )?;
                return passthrough(&body, iter);
            }
            if !t.wants(code, &pairs) {
                // Not storable: store() only strips the tags header and says why.
                send(
                    &status,
                    t.store(code, pairs, b"").headers,
                    exc_info.as_ref(),
                )?;
                return passthrough(&body, iter);
            }
            if !exhausted {
                while let Some(chunk) = iter.next() {
                    let chunk = chunk?;
                    body.append(&mut capture.get().lock().written);
                    take_chunk(chunk, &mut body, &mut only)?;
                    // Over the cache's `max_entry_bytes`: it will not be stored, so stream the
                    // rest rather than buffer it.
                    if body.len() > t.max_body() {
                        send(&status, t.too_large(pairs), exc_info.as_ref())?;
                        return passthrough(&body, iter);
                    }
                }
            }
            body.append(&mut capture.get().lock().written);
            close(&result)?;
            let Some((status, headers, exc_info, replaced)) = latest(py, &capture) else {
                unreachable!("a status was captured above");
            };
            if replaced {
                // The app failed while its body was read (it gave another status, with
                // `exc_info`): what it sent is not the response it first announced.
                let pairs = header_pairs(headers.bind(py))?;
                send(
                    &status,
                    t.refuse(pairs, NotStored::AppError),
                    exc_info.as_ref(),
                )?;
                return Ok(Some(
                    PyList::new(py, [PyBytes::new(py, &body)])?
                        .into_any()
                        .unbind(),
                ));
            }
            let changes =
                super::release_if(py, t.may_block(), || t.store_changes(code, pairs, &body));
            let list = changed_headers(headers.bind(py), changes, extra)?;
            match &exc_info {
                Some(e) => start_response.call1((&status, list, e.bind(py)))?,
                None => start_response.call1((&status, list))?,
            };
            Ok(Some(
                body_list(py, is_head, only, &body)?.into_any().unbind(),
            ))
        })();
        match outcome {
            Ok(Some(r)) => Ok(r),
            Ok(None) => unreachable!("every branch returns a body"),
            Err(e) => {
                t.end();
                let _ = close(&result);
                Err(e)
            }
        }
    }
}
