//! `ferrogate.Router`: the core router with Python values.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};

use super::errors::Error;
use crate::router::{EmptySegments, Lookup, PathEncoding, Router, decode_param, normalize};

#[pyclass(name = "Router", module = "ferrogate._native")]
pub struct PyRouter {
    inner: Router<Py<PyAny>>,
}

#[pymethods]
impl PyRouter {
    #[new]
    fn new() -> Self {
        Self {
            inner: Router::new(),
        }
    }

    /// Adds `pattern` (matchit syntax: `/users/{id}`, `/files/{*path}`) with `value`; `methods`
    /// None means every method. Conflicts raise `ConfigError` naming both patterns.
    #[pyo3(signature = (pattern, value, methods=None))]
    fn insert(
        &mut self,
        pattern: &str,
        value: Py<PyAny>,
        methods: Option<Vec<String>>,
    ) -> PyResult<()> {
        let methods = methods.unwrap_or_default();
        let refs: Vec<&str> = methods.iter().map(String::as_str).collect();
        self.inner
            .insert(pattern, &refs, value)
            .map_err(Error::from)?;
        Ok(())
    }

    /// `(value, params)` for the route `method path` matches, or None. `path` is as on the wire:
    /// params are percent-decoded once. Raises `InvalidPathError` for dot segments, control
    /// characters or malformed escapes. When this returns None, `allowed(path)` tells 404 from 405.
    #[pyo3(name = "match")]
    fn match_<'py>(
        &self,
        py: Python<'py>,
        method: &str,
        path: &str,
    ) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let path = normalize(path, PathEncoding::Raw, EmptySegments::Match).map_err(Error::from)?;
        let Lookup::Found { value, params, .. } = self.inner.lookup(method, &path) else {
            return Ok(None);
        };
        let dict = PyDict::new(py);
        for (k, v) in params.iter() {
            let v = decode_param(v).map_err(Error::from)?;
            dict.set_item(PyString::new(py, k), PyString::new(py, &v))?;
        }
        Ok(Some(PyTuple::new(
            py,
            [value.clone_ref(py).into_bound(py), dict.into_any()],
        )?))
    }

    /// The existing pattern that `insert(pattern, _, methods)` would conflict with, or None if the
    /// insert would succeed. Invalid patterns or methods raise `ConfigError`.
    #[pyo3(signature = (pattern, methods=None))]
    fn conflict(&self, pattern: &str, methods: Option<Vec<String>>) -> PyResult<Option<String>> {
        let methods = methods.unwrap_or_default();
        let refs: Vec<&str> = methods.iter().map(String::as_str).collect();
        match self.inner.check_insert(pattern, &refs) {
            Ok(_) => Ok(None),
            Err(crate::router::RouterError::Conflict { existing, .. }) => Ok(Some(existing)),
            Err(e) => Err(Error::from(e).into()),
        }
    }

    /// The methods for which `path` matches a route (empty when nothing matches), e.g. for `Allow`.
    fn allowed(&self, path: &str) -> PyResult<Vec<&'static str>> {
        let path = normalize(path, PathEncoding::Raw, EmptySegments::Match).map_err(Error::from)?;
        // Look up with a method no route can be declared for: every named tree is then "another".
        Ok(match self.inner.lookup("\0", &path) {
            Lookup::MethodNotAllowed { allow } => allow,
            Lookup::Found { .. } => crate::router::Method::ALL
                .iter()
                .filter(|m| **m != crate::router::Method::Other)
                .map(|m| m.as_str())
                .collect(),
            Lookup::NotFound => Vec::new(),
        })
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __repr__(&self) -> String {
        format!("<ferrogate.Router with {} routes>", self.inner.len())
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyRouter>()
}
