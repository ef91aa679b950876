//! Response headers as the Python tuples WSGI wants, with the names the gate itself sends made
//! once per process: every forwarded request carries two or four of them, and a fresh string per
//! name per request is an allocation, a copy and a free that buy nothing.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyString;

/// The name as a Python string: an interned one for the names the gate sends, a new one else.
pub fn name<'py>(py: Python<'py>, name: &str) -> Bound<'py, PyString> {
    let known = match name {
        "ratelimit" => intern!(py, "ratelimit"),
        "ratelimit-policy" => intern!(py, "ratelimit-policy"),
        "retry-after" => intern!(py, "retry-after"),
        "etag" => intern!(py, "etag"),
        "age" => intern!(py, "age"),
        "cache-status" => intern!(py, "cache-status"),
        "x-cache" => intern!(py, "x-cache"),
        "content-type" => intern!(py, "content-type"),
        "content-length" => intern!(py, "content-length"),
        "cache-control" => intern!(py, "cache-control"),
        "vary" => intern!(py, "vary"),
        "www-authenticate" => intern!(py, "www-authenticate"),
        _ => return PyString::new(py, name),
    };
    known.clone()
}
