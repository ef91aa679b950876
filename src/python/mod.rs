//! The binding layer: `ferrogate._native`. Everything Python-facing lives here; the core modules
//! stay free of pyo3 so they build and test without an interpreter.

mod cache;
mod convert;
mod errors;
mod gate;
mod guard;
mod jwt;
mod ratelimit;
mod router;
mod wsgi;

use pyo3::prelude::*;

/// `gil_used = false`: every pyclass here is either immutable (`frozen`) or guarded by pyo3's
/// runtime borrow checking, and the core types are `Sync`, so the module is safe on free-threaded
/// `CPython` builds.
#[pymodule(gil_used = false)]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    router::register(m)?;
    gate::register(m)?;
    cache::register(m)?;
    jwt::register(m)?;
    wsgi::register(m)?;
    guard::register(m)?;
    ratelimit::register(m)?;
    Ok(())
}
