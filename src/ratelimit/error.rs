//! The rate-limiting error enum.

/// What can go wrong building a limiter, or reaching the host-shared store. An in-memory hit is
/// always answered (allowed or refused); a host-store hit that fails is answered by the limit's
/// `on_error` mode, as a Redis one is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RateLimitError {
    /// A quota string that does not parse; `quota` is the whole string as given.
    #[error("invalid quota {quota:?}: {reason}")]
    InvalidQuota { quota: String, reason: String },
    /// A setting such as `burst` or `max_keys` outside its range.
    #[error("invalid rate-limit setting {name}: {reason}")]
    InvalidSetting { name: &'static str, reason: String },
    /// A CIDR in a trusted-proxy or exemption list that does not parse.
    #[error("invalid CIDR {cidr:?}: {reason}")]
    InvalidCidr { cidr: String, reason: String },
    /// `storage = "host"` with a path that cannot hold the store (no permission, a directory, a
    /// directory of another user).
    #[error("rate-limit store path {path:?} is unusable: {reason}")]
    HostPath { path: String, reason: String },
    /// The host store failed during a hit (file system full, map full, I/O error).
    #[error("rate-limit store {path:?} failed: {reason}")]
    HostStore { path: String, reason: String },
}
