//! The revocation API of `ferrogate._native.Gate`: `revoke_token`, `revoke_subject` and
//! `revocation_status`, on the gate's shared revocation list.

use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::errors::Error;
use crate::auth::revocation::revoke;
use crate::auth::revocation::{Check, OnError, Revocations};
use crate::gate::Gate;
use crate::issues::ConfigError;

/// The gate's revocation list, or a `ConfigError` saying it has none.
fn revocations(gate: &Gate) -> PyResult<&Arc<Revocations>> {
    gate.revocations().ok_or_else(|| {
        Error::from(ConfigError::single(
            "jwt.revocation",
            "this gate has no [jwt] revocation setting",
        ))
        .into()
    })
}

/// A jti or sub for the revocation API: not empty, not huge.
fn check_name(what: &str, s: &str) -> PyResult<()> {
    if s.is_empty() || s.len() > 1024 {
        return Err(PyValueError::new_err(format!(
            "{what} must be 1 to 1024 bytes long"
        )));
    }
    Ok(())
}

/// `Gate.revoke_token()`.
pub(super) fn revoke_token(
    py: Python<'_>,
    gate: &Gate,
    token_or_jti: &str,
    exp: Option<f64>,
) -> PyResult<String> {
    let r = revocations(gate)?;
    if exp.is_some_and(|e| !e.is_finite()) {
        return Err(PyValueError::new_err(
            "exp must be a finite number of seconds",
        ));
    }
    let (jti, token_exp) = if revoke::looks_like_jws(token_or_jti) {
        let Some(verifier) = gate.verifier() else {
            return Err(PyValueError::new_err("no verifier"));
        };
        py.detach(|| revoke::jti_of_token(verifier, token_or_jti))
            .map_err(Error::from)?
    } else {
        (token_or_jti.to_owned(), None)
    };
    check_name("jti", &jti)?;
    py.detach(|| r.revoke_jti(&jti, exp.or(token_exp)))
        .map_err(|e| Error::store("the revocation applies in this process only", e))?;
    Ok(jti)
}

/// `Gate.revoke_subject()`.
pub(super) fn revoke_subject(
    py: Python<'_>,
    gate: &Gate,
    sub: &str,
    before: Option<f64>,
    issuer: Option<&str>,
) -> PyResult<f64> {
    let r = revocations(gate)?;
    if before.is_some_and(|b| !b.is_finite()) {
        return Err(PyValueError::new_err(
            "before must be a finite number of seconds",
        ));
    }
    check_name("sub", sub)?;
    let issuer = r.subject_issuer(issuer).map_err(PyValueError::new_err)?;
    Ok(py
        .detach(|| r.revoke_sub(sub, issuer, before))
        .map_err(|e| Error::store("the revocation applies in this process only", e))?)
}

/// `Gate.revocation_status()`.
pub(super) fn status<'py>(py: Python<'py>, gate: &Gate) -> PyResult<Bound<'py, PyDict>> {
    let s = revocations(gate)?.status();
    let out = PyDict::new(py);
    out.set_item(
        "check",
        match s.check {
            Check::Local => "local",
            Check::Always => "always",
        },
    )?;
    out.set_item(
        "on_error",
        match s.on_error {
            OnError::Allow => "allow",
            OnError::Deny => "deny",
        },
    )?;
    out.set_item("synced", s.synced)?;
    out.set_item("tokens", s.tokens)?;
    out.set_item("subjects", s.subjects)?;
    out.set_item("overflow", s.overflow)?;
    Ok(out)
}
