//! Response caching (settings, stage, store, headers, the shared tier): RFC 9111 shared-cache rules, keys that never cross users, an S3-FIFO store
//! weighted by bytes, purging by path/prefix/tag, request coalescing and stale-while-revalidate.

pub mod bounded;
mod headers;
pub mod key;
pub mod rules;
pub mod settings;
pub mod sharded;
pub mod shared;
pub mod shared_codec;
pub mod shared_scripts;
pub mod stage;
pub mod store;
