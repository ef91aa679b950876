//! The rate-limiting error enum.

/// What can go wrong building a limiter. Requests never produce an error: a hit is always
/// answered (allowed or refused).
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
}
