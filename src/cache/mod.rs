//! Response caching: RFC 9111 shared-cache rules, keys that never cross users, an S3-FIFO store
//! weighted by bytes, purging by path/prefix/tag, request coalescing and stale-while-revalidate.
//! `settings` parses; `stage` holds the store, settings and header slots; `lookup` decides per
//! request (with `key`, `rules` and `headers`) and issues a `ticket`, which stores the app's
//! response; `store` keeps entries (each shard an `s3fifo` with its `indexes`), and `shared` is
//! the Redis tier.

mod entry;
mod headers;
mod indexes;
pub mod key;
pub mod lookup;
pub mod rules;
mod s3fifo;
pub mod settings;
pub mod shared;
pub mod stage;
pub mod store;
pub mod ticket;
