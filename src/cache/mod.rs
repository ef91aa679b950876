//! Response caching: RFC 9111 shared-cache rules, keys that never cross users, an S3-FIFO store
//! weighted by bytes, purging by path/prefix/tag, request coalescing and stale-while-revalidate;
//! and the bounded maps of the token caches (`bounded`, on moka) and `@cached` (`clock_map`).
//! `settings` parses, `stage` decides per request (with `headers`), `store` keeps entries, and
//! `shared` is the Redis tier.

pub mod bounded;
pub mod clock_map;
mod headers;
pub mod key;
#[cfg(test)]
mod map_contract;
pub mod rules;
pub mod settings;
pub mod sharded;
pub mod shared;
pub mod shared_codec;
pub mod shared_scripts;
pub mod stage;
pub mod store;
