//! The error enum of the shared-state area (Redis).

/// Why a call to the shared store did not get an answer. The gate never lets one of these reach
/// the app: each stage maps it to its configured failure mode (allow, refuse with 503, or a
/// local fallback).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store could not be reached or did not answer in time (connect, I/O, timeout).
    #[error("redis unavailable: {0}")]
    Unavailable(String),
    /// Recent calls failed and the circuit breaker is open: the call was not attempted.
    #[error("redis circuit breaker is open after repeated failures; retrying in the background")]
    CircuitOpen,
    /// The store answered with an error (a script error, wrong type, out of memory...).
    #[error("redis error: {0}")]
    Server(String),
    /// The store answered with something this client did not expect.
    #[error("unexpected redis reply: {0}")]
    Protocol(String),
}

impl StoreError {
    /// Classifies a client error: transport problems mean the connection is gone.
    #[must_use]
    pub fn from_redis(e: &redis::RedisError) -> Self {
        if is_transport(e) {
            Self::Unavailable(e.to_string())
        } else {
            Self::Server(e.to_string())
        }
    }
}

/// Errors after which the connection cannot be reused.
#[must_use]
pub fn is_transport(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_unrecoverable_error()
}
