//! The gate's Redis, seen from Python: counters and a health check for `Gate.redis_stats()` and
//! `Gate.ping_redis()`, the fork hook that gives a forked worker its own connections, and store
//! events on the `ferrogate` logger.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use super::errors::Error;
use crate::gate::Gate;
use crate::issues::ConfigError;
use crate::shared::{Event, RedisClient};

/// `Gate.redis_stats()`.
pub(super) fn stats<'py>(py: Python<'py>, gate: &Gate) -> PyResult<Option<Bound<'py, PyDict>>> {
    let Some(client) = gate.redis() else {
        return Ok(None);
    };
    let t = gate.redis_rate_limit_totals();
    let c = client.stats();
    let out = PyDict::new(py);
    out.set_item("url", &client.settings().display)?;
    out.set_item("breaker", c.breaker.as_str())?;
    out.set_item("calls", c.calls)?;
    out.set_item("errors", c.errors)?;
    out.set_item("rejected", c.rejected)?;
    out.set_item("connects", c.connects)?;
    out.set_item("rate_limits", t.limits)?;
    out.set_item("round_trips", t.round_trips)?;
    out.set_item("leased_hits", t.leased_hits)?;
    out.set_item("limit_errors", t.errors)?;
    out.set_item("failed_open", t.failed_open)?;
    out.set_item("failed_closed", t.failed_closed)?;
    out.set_item("fallback", t.fallback)?;
    out.set_item("returned_units", t.returned)?;
    Ok(Some(out))
}

/// `Gate.ping_redis()`.
pub(super) fn ping(py: Python<'_>, gate: &Gate) -> PyResult<()> {
    let Some(client) = gate.redis() else {
        return Err(Error::from(ConfigError::single(
            "redis",
            "this gate has no [redis] section",
        ))
        .into());
    };
    py.detach(|| client.ping())
        .map_err(|e| Error::from(e).into())
}

/// Every Redis client of a new gate reports its events to the `ferrogate` logger and reconnects
/// in a forked child.
pub(super) fn watch(py: Python<'_>, gate: &Gate) -> PyResult<()> {
    for client in gate.redis_clients() {
        client.set_listener(Some(Arc::new(log_event)));
        register_after_fork(py, &client)?;
    }
    Ok(())
}

/// A forked child (gunicorn `--preload`, multiprocessing) gets its own Redis connections and
/// subscriber thread: `os.register_at_fork` runs this in the child right after the fork.
fn register_after_fork(py: Python<'_>, client: &Arc<RedisClient>) -> PyResult<()> {
    let weak = Arc::downgrade(client);
    let hook = pyo3::types::PyCFunction::new_closure(
        py,
        None,
        None,
        move |_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>| -> PyResult<()> {
            if let Some(c) = weak.upgrade() {
                c.after_fork();
            }
            Ok(())
        },
    )?;
    let kwargs = PyDict::new(py);
    kwargs.set_item("after_in_child", hook)?;
    py.import("os")?
        .call_method("register_at_fork", (), Some(&kwargs))?;
    Ok(())
}

/// Store events (breaker opened/closed, subscriber down/up) go to the `ferrogate` logger. They
/// are rare (one per state change), so taking the GIL for each is fine; during interpreter
/// shutdown there is no one to tell.
fn log_event(event: &Event) {
    let (level, msg) = match event {
        Event::BreakerOpened { url, reason } => (
            "warning",
            format!(
                "ferrogate: Redis at {url} is failing ({reason}); circuit breaker open, limits apply their on_error mode"
            ),
        ),
        Event::BreakerClosed { url } => (
            "warning",
            format!("ferrogate: Redis at {url} answers again; circuit breaker closed"),
        ),
        Event::SubscriberDown { url, reason } => (
            "warning",
            format!("ferrogate: lost the pub/sub subscription to {url} ({reason}); reconnecting"),
        ),
        Event::SubscriberUp { url } => (
            "info",
            format!("ferrogate: pub/sub subscription to {url} restored"),
        ),
    };
    let _ = Python::try_attach(|py| {
        let logger = py
            .import("logging")
            .and_then(|m| m.call_method1("getLogger", ("ferrogate",)));
        if let Ok(l) = logger {
            let _ = l.call_method1(level, (msg,));
        }
    });
}
