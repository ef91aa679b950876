//! The binding layer: `ferrogate._native`. Everything Python-facing lives here; the core modules
//! stay free of pyo3 so they build and test without an interpreter.

mod convert;
mod decision;
mod errors;
mod gate;
mod guard;
mod headers;
mod jwt;
mod memo;
mod ratelimit;
mod redis;
mod response_cache;
mod revocation;
mod router;
mod ticket;
mod wsgi;

use pyo3::prelude::*;

/// Runs `f` without the GIL when it may wait (on the network, or on a signature check costly enough
/// to be worth it), else with it: releasing and retaking the GIL costs more than in-memory work.
pub(crate) fn release_if<T: Send>(
    py: Python<'_>,
    release: bool,
    f: impl FnOnce() -> T + Send,
) -> T {
    if release { py.detach(f) } else { f() }
}

/// `gil_used = false`: every pyclass here is either immutable (`frozen`) or guarded by pyo3's
/// runtime borrow checking, and the core types are `Sync`, so the module is safe on free-threaded
/// `CPython` builds.
#[pymodule(gil_used = false)]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    router::register(m)?;
    gate::register(m)?;
    ticket::register(m)?;
    response_cache::register(m)?;
    memo::register(m)?;
    jwt::register(m)?;
    wsgi::register(m)?;
    guard::register(m)?;
    ratelimit::register(m)?;
    Ok(())
}
