//! Keeps Rust panics from reaching Python as `PanicException`: a request that hits a bug gets a
//! 500 problem response and a log record on the `ferrogate` logger instead.

use std::panic::{AssertUnwindSafe, catch_unwind};

use pyo3::prelude::*;

/// Runs `f`; on a panic, logs it and returns `fallback()`.
pub fn guarded<T>(
    py: Python<'_>,
    what: &str,
    f: impl FnOnce() -> PyResult<T>,
    fallback: impl FnOnce() -> PyResult<T>,
) -> PyResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            log_error(
                py,
                &format!("internal error in {what}, answered 500: {msg}"),
            );
            fallback()
        }
    }
}

/// Logs through Python's `logging` at ERROR on logger `ferrogate`. Logging failures are ignored:
/// nothing here may turn an answered request into an exception.
pub fn log_error(py: Python<'_>, msg: &str) {
    let _ = py
        .import("logging")
        .and_then(|logging| logging.call_method1("getLogger", ("ferrogate",)))
        .and_then(|logger| logger.call_method1("error", (msg,)));
}

/// Runs the guard around a closure that panics, so tests can prove the guard's behaviour from
/// Python without a way to make real gate code panic.
#[pyfunction]
fn _panic_guard_probe(py: Python<'_>) -> PyResult<u16> {
    guarded(
        py,
        "the panic guard probe",
        || -> PyResult<u16> { panic!("probe panic") },
        || Ok(500),
    )
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_panic_guard_probe, m)?)
}
