//! The one place core errors become Python exceptions. The exception classes are defined in
//! Python (`ferrogate/exceptions.py`), as pyca/cryptography does, so they carry docstrings and
//! PyJWT-compatible names and can be subclassed and pickled like any Python exception.

use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::auth::{KeyError, TokenError};
use crate::issues::ConfigError;
use crate::ratelimit::RateLimitError;
use crate::router::{PathError, RouterError};
use crate::shared::StoreError;

/// The Python exception classes, imported from `ferrogate.exceptions` on first use.
pub mod exc {
    pyo3::import_exception!(ferrogate.exceptions, ConfigError);
    pyo3::import_exception!(ferrogate.exceptions, InvalidPathError);
    pyo3::import_exception!(ferrogate.exceptions, DecodeError);
    pyo3::import_exception!(ferrogate.exceptions, InvalidSignatureError);
    pyo3::import_exception!(ferrogate.exceptions, ExpiredSignatureError);
    pyo3::import_exception!(ferrogate.exceptions, ImmatureSignatureError);
    pyo3::import_exception!(ferrogate.exceptions, InvalidAudienceError);
    pyo3::import_exception!(ferrogate.exceptions, InvalidIssuerError);
    pyo3::import_exception!(ferrogate.exceptions, MissingRequiredClaimError);
    pyo3::import_exception!(ferrogate.exceptions, InvalidAlgorithmError);
    pyo3::import_exception!(ferrogate.exceptions, InvalidKeyError);
    pyo3::import_exception!(ferrogate.exceptions, RevokedTokenError);
    pyo3::import_exception!(ferrogate.exceptions, StoreUnavailableError);
}
use exc::{ConfigError as PyConfigError, InvalidPathError as PyInvalidPathError};

/// Wraps a core error so `?` turns it into the right Python exception.
pub struct Error(ErrorKind);

enum ErrorKind {
    Config(ConfigError),
    Router(RouterError),
    Path(PathError),
    RateLimit(RateLimitError),
    Token(TokenError),
    Key(KeyError),
    /// A verifier config whose problems are all about keys: `InvalidKeyError`, like `PyJWT`.
    KeyConfig(ConfigError),
    /// The shared store did not answer; the message says what was (not) done.
    Store(String, StoreError),
}

impl Error {
    /// Verifier options: `InvalidKeyError` when every problem is in a key, else `ConfigError`.
    pub fn key_config(e: ConfigError) -> Self {
        let about_keys = e.issues.iter().all(|i| {
            let k = i.key.as_str();
            ["key", "keys", "jwks"].iter().any(|p| {
                k == *p || k.starts_with(&format!("{p}[")) || k.starts_with(&format!("{p}."))
            }) || i.message.starts_with("invalid key")
                || i.message.contains("no key can verify")
        });
        Self(if about_keys {
            ErrorKind::KeyConfig(e)
        } else {
            ErrorKind::Config(e)
        })
    }
}

impl Error {
    /// `StoreUnavailableError`: `what` did not reach Redis, because of `e`.
    pub fn store(what: impl Into<String>, e: StoreError) -> Self {
        Self(ErrorKind::Store(what.into(), e))
    }
}

impl From<TokenError> for Error {
    fn from(e: TokenError) -> Self {
        Self(ErrorKind::Token(e))
    }
}

impl From<KeyError> for Error {
    fn from(e: KeyError) -> Self {
        Self(ErrorKind::Key(e))
    }
}

impl From<RateLimitError> for Error {
    fn from(e: RateLimitError) -> Self {
        Self(ErrorKind::RateLimit(e))
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Self(ErrorKind::Store(String::new(), e))
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
            ErrorKind::Token(t) => token_error(&t),
            ErrorKind::Key(k) => exc::InvalidKeyError::new_err(k.to_string()),
            ErrorKind::KeyConfig(c) => exc::InvalidKeyError::new_err(c.to_string()),
            ErrorKind::Store(what, e) if what.is_empty() => {
                exc::StoreUnavailableError::new_err(e.to_string())
            }
            ErrorKind::Store(what, e) => {
                exc::StoreUnavailableError::new_err(format!("{what}: {e}"))
            }
            // A host store that fails mid-hit is a store that did not answer, like Redis.
            ErrorKind::RateLimit(r @ RateLimitError::HostStore { .. }) => {
                exc::StoreUnavailableError::new_err(r.to_string())
            }
            // Every other rate-limit error is a bad quota, setting or path given at start-up.
            ErrorKind::RateLimit(r) => {
                let key = match &r {
                    RateLimitError::InvalidQuota { .. } => "quota",
                    RateLimitError::InvalidSetting { name, .. } => name,
                    RateLimitError::InvalidCidr { .. } => "cidr",
                    RateLimitError::HostPath { .. } | RateLimitError::HostStore { .. } => "path",
                };
                let msg = r.to_string();
                PyConfigError::new_err((msg.clone(), vec![(key.to_owned(), msg)]))
            }
        }
    }
}

fn token_error(e: &TokenError) -> PyErr {
    let msg = e.to_string();
    match e {
        TokenError::Decode(_) | TokenError::InvalidClaim(_) => exc::DecodeError::new_err(msg),
        TokenError::InvalidSignature | TokenError::NoKey(_) => {
            exc::InvalidSignatureError::new_err(msg)
        }
        TokenError::Expired => exc::ExpiredSignatureError::new_err(msg),
        TokenError::Immature(_) => exc::ImmatureSignatureError::new_err(msg),
        TokenError::InvalidAudience(_) => exc::InvalidAudienceError::new_err(msg),
        TokenError::InvalidIssuer(_) => exc::InvalidIssuerError::new_err(msg),
        TokenError::MissingClaim(claim) => {
            exc::MissingRequiredClaimError::new_err((msg, claim.clone()))
        }
        TokenError::InvalidAlgorithm(_) => exc::InvalidAlgorithmError::new_err(msg),
        TokenError::Revoked => exc::RevokedTokenError::new_err(msg),
    }
}
