//! `ferrogate._native.Decision`: the gate's decision as Python values, and the answers the binding
//! itself gives (400 for a request line that is not text, 500 when the core panicked).

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString, PyTuple};

use crate::http::Header;
use crate::problem::{self, Problem};
use crate::response::Response;

/// What the gate decided for one request.
#[pyclass(name = "Decision", module = "ferrogate._native", frozen)]
pub struct PyDecision {
    /// True when the app should handle the request.
    #[pyo3(get)]
    pub(super) forward: bool,
    /// The status the gate answers with; 0 when forwarding.
    #[pyo3(get)]
    pub(super) status: u16,
    /// Response headers when answering; headers to add to the app's response when forwarding.
    #[pyo3(get)]
    pub(super) headers: Py<PyTuple>,
    #[pyo3(get)]
    pub(super) body: Py<PyBytes>,
    /// The matched route pattern, or None.
    #[pyo3(get)]
    pub(super) route: Option<Py<PyString>>,
    #[pyo3(get)]
    pub(super) route_name: Option<Py<PyString>>,
    /// The index (in the config's `routes`) of the route the request was checked under; None for
    /// the defaults or a refusal before any route applied.
    #[pyo3(get)]
    pub(super) route_index: Option<usize>,
    #[pyo3(get)]
    pub(super) params: Py<PyDict>,
    /// The dry-run rate limit that would have refused this request, or None.
    #[pyo3(get)]
    pub(super) dry_run_refused: Option<Py<PyString>>,
    /// The verified token claims (a fresh dict), or None.
    #[pyo3(get)]
    pub(super) claims: Option<Py<PyDict>>,
    /// What to do with the app's response, for the cache (None: nothing).
    #[pyo3(get)]
    pub(super) cache_ticket: Option<Py<super::ticket::PyCacheTicket>>,
}

#[pymethods]
impl PyDecision {
    /// `"403 Forbidden"`, as WSGI's `start_response` wants it; empty when forwarding.
    #[getter]
    pub(super) fn status_line(&self) -> String {
        if self.forward {
            String::new()
        } else {
            format!("{} {}", self.status, problem::reason_phrase(self.status))
        }
    }

    /// Puts a forwarded request's decision into its environ (Django: `request.META`), as every
    /// adapter does: `ferrogate.decision`, `.route`, `.route_name`, `.params` and `.claims`.
    #[pyo3(name = "forward_into")]
    fn py_forward_into(slf: &Bound<'_, Self>, environ: &Bound<'_, PyDict>) -> PyResult<()> {
        forward_into(slf, environ)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        if self.forward {
            let route = self.route.as_ref().map_or_else(
                || "None".to_owned(),
                |r| format!("{:?}", r.bind(py).to_string()),
            );
            format!("<Decision forward route={route}>")
        } else {
            format!("<Decision respond {}>", self.status)
        }
    }
}

/// The environ half of the adapter protocol, the WSGI middleware's and the Python adapters' alike
/// (`Decision.forward_into`): what the app and the framework hooks read of a forwarded request.
pub(super) fn forward_into(d: &Bound<'_, PyDecision>, environ: &Bound<'_, PyDict>) -> PyResult<()> {
    let py = d.py();
    let me = d.get();
    environ.set_item(
        intern!(py, "ferrogate.route"),
        me.route.as_ref().map(|r| r.bind(py)),
    )?;
    environ.set_item(
        intern!(py, "ferrogate.route_name"),
        me.route_name.as_ref().map(|r| r.bind(py)),
    )?;
    environ.set_item(intern!(py, "ferrogate.params"), me.params.bind(py))?;
    environ.set_item(
        intern!(py, "ferrogate.claims"),
        me.claims.as_ref().map(|c| c.bind(py)),
    )?;
    environ.set_item(intern!(py, "ferrogate.decision"), d)
}

pub(super) fn headers_tuple<'py>(
    py: Python<'py>,
    headers: &[Header],
) -> PyResult<Bound<'py, PyTuple>> {
    PyTuple::new(
        py,
        headers
            .iter()
            .map(|(k, v)| (super::headers::name(py, k), v.as_str())),
    )
}

pub(super) fn respond(py: Python<'_>, r: &Response) -> PyResult<PyDecision> {
    Ok(PyDecision {
        forward: false,
        status: r.status,
        headers: headers_tuple(py, &r.headers)?.unbind(),
        body: PyBytes::new(py, &r.body).unbind(),
        route: None,
        route_name: None,
        route_index: None,
        params: PyDict::new(py).unbind(),
        dry_run_refused: None,
        claims: None,
        cache_ticket: None,
    })
}

pub(super) fn internal_error(py: Python<'_>) -> PyResult<PyDecision> {
    let p = Problem::new(500, "the gateway hit an internal error; it has been logged");
    let r = Response {
        status: 500,
        headers: vec![("content-type", problem::CONTENT_TYPE.to_owned())],
        body: p.to_body().into(),
    };
    respond(py, &r)
}

pub(super) fn bad_request(py: Python<'_>, detail: &str) -> PyResult<PyDecision> {
    let p = Problem::new(400, detail);
    let r = Response {
        status: 400,
        headers: vec![("content-type", problem::CONTENT_TYPE.to_owned())],
        body: p.to_body().into(),
    };
    respond(py, &r)
}
