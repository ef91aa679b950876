//! Rate limiting: quota parsing, keyed GCRA in memory with bounded memory, in a file shared by the
//! host's worker processes (LMDB) or in Redis, client identity behind
//! trusted proxies, the standard response headers, and the gate stage that ties them together.
//!
//! The pieces stand alone: [`quota::parse_quotas`] and [`limiter::Limiter`] are what
//! `ferrogate.RateLimiter` wraps; [`stage::Stage`] is what the gate runs per request. Every store
//! (memory, host file, Redis) decides with the arithmetic of [`gcra`]; `settings` parses.

pub mod client_ip;
pub mod error;
pub mod gcra;
pub mod headers;
pub mod host_file;
pub mod host_store;
pub mod limiter;
pub mod quota;
pub mod redis_store;
pub mod settings;
pub mod stage;

pub use error::RateLimitError;
pub use gcra::Outcome;
pub use limiter::Limiter;
pub use quota::{Quota, parse_quotas};
pub use settings::{LimitPolicy, Settings};
pub use stage::{RouteLimits, Stage, StageBuilder, Verdict};
