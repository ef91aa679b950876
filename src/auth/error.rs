//! Errors of the auth area. Each variant maps to one Python exception with `PyJWT`'s name.

use thiserror::Error;

/// Why a token was refused. Messages never include the token or key material.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a well-formed JWS compact serialisation (segments, base64url, JSON, header fields).
    #[error("{0}")]
    Decode(String),
    #[error("signature verification failed")]
    InvalidSignature,
    /// No key could check the signature (unknown `kid`, no key of the algorithm's family).
    #[error("{0}")]
    NoKey(String),
    #[error("the token has expired")]
    Expired,
    #[error("the token is not yet valid ({0})")]
    Immature(&'static str),
    #[error("{0}")]
    InvalidAudience(String),
    #[error("{0}")]
    InvalidIssuer(String),
    #[error("the token is missing the required {0:?} claim")]
    MissingClaim(String),
    #[error("{0}")]
    InvalidAlgorithm(String),
    /// A claim has the wrong type (`exp` as a string, ...).
    #[error("{0}")]
    InvalidClaim(String),
    /// Its `jti` is on the revocation list, or its subject's tokens were revoked after it was
    /// issued.
    #[error("the token has been revoked")]
    Revoked,
}

/// Why a key or verifier could not be built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("invalid key: {0}")]
    Invalid(String),
    #[error("invalid verifier options: {0}")]
    Options(String),
    #[error("cannot load keys from {url}: {reason}")]
    Fetch { url: String, reason: String },
}
