//! The one place core errors become Python exceptions. The exception classes are defined in
//! Python (`ferrogate/exceptions.py`), as pyca/cryptography does, so they carry docstrings and
//! PyJWT-compatible names and can be subclassed and pickled like any Python exception.

use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::config::ConfigError;
use crate::ratelimit::RateLimitError;
use crate::router::{PathError, RouterError};

/// The Python exception classes, imported from `ferrogate.exceptions` on first use.
pub mod exc {
    pyo3::import_exception!(ferrogate.exceptions, ConfigError);
    pyo3::import_exception!(ferrogate.exceptions, InvalidPathError);
}
use exc::{ConfigError as PyConfigError, InvalidPathError as PyInvalidPathError};

/// Wraps a core error so `?` turns it into the right Python exception.
pub struct Error(ErrorKind);

enum ErrorKind {
    Config(ConfigError),
    Router(RouterError),
    Path(PathError),
    RateLimit(RateLimitError),
}

impl From<RateLimitError> for Error {
    fn from(e: RateLimitError) -> Self {
        Self(ErrorKind::RateLimit(e))
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Self(ErrorKind::Config(e))
    }
}

impl From<RouterError> for Error {
    fn from(e: RouterError) -> Self {
        Self(ErrorKind::Router(e))
    }
}

impl From<PathError> for Error {
    fn from(e: PathError) -> Self {
        Self(ErrorKind::Path(e))
    }
}

impl From<Error> for PyErr {
    fn from(e: Error) -> Self {
        match e.0 {
            ErrorKind::Config(c) => Python::attach(|py| {
                let issues: Vec<(String, String)> = c
                    .issues
                    .iter()
                    .map(|i| (i.key.clone(), i.message.clone()))
                    .collect();
                match PyList::new(py, issues) {
                    Ok(list) => PyConfigError::new_err((c.to_string(), list.unbind())),
                    Err(err) => err,
                }
            }),
            ErrorKind::Router(r) => PyConfigError::new_err(r.to_string()),
            ErrorKind::Path(p) => PyInvalidPathError::new_err(p.to_string()),
            // Every rate-limit error is a bad quota or setting given at start-up.
            ErrorKind::RateLimit(r) => {
                let key = match &r {
                    RateLimitError::InvalidQuota { .. } => "quota",
                    RateLimitError::InvalidSetting { name, .. } => name,
                    RateLimitError::InvalidCidr { .. } => "cidr",
                };
                let msg = r.to_string();
                PyConfigError::new_err((msg.clone(), vec![(key.to_owned(), msg)]))
            }
        }
    }
}
