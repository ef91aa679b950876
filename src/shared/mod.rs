//! State shared between processes and hosts through Redis (or Valkey, or Redis Cluster): the
//! client (pool, timeouts, circuit breaker, pub/sub), and the `[redis]` settings. The stages
//! that use it (rate limits, the cache's second tier, token revocation) live with their areas.

pub mod breaker;
pub mod client;
pub mod error;
pub mod settings;

pub use client::{ClientStats, Event, RedisClient};
pub use error::StoreError;
pub use settings::RedisSettings;
