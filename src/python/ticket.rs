//! `ferrogate._native.CacheTicket`: the cache's ticket for one forwarded request, handed the app's
//! response by the adapter (Rust's WSGI middleware, or Python's for Flask and Django).

use pyo3::prelude::*;
use pyo3::types::PyList;

use super::release_if;
use crate::cache::ticket::Ticket;

/// What to do with one app response: store it (GET miss) or invalidate (unsafe method).
#[pyclass(name = "CacheTicket", module = "ferrogate._native", frozen)]
pub struct PyCacheTicket {
    pub(super) inner: Ticket,
}

pub(super) fn headers_vec(headers: &Bound<'_, PyAny>) -> PyResult<Vec<(String, String)>> {
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

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyCacheTicket>()
}
