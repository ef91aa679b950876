//! ferrogate: the Rust core of an in-process API gateway for Python web apps.
//!
//! One call per request ([`gate::Gate::check`]) decides what happens to an HTTP request before the
//! framework sees it. The core modules know nothing of Python; the binding layer lives in
//! [`python`] behind the `python` feature, so `cargo test` exercises the core on its own.
//!
//! Layers, imports only downward (`tools/import_graph.py` checks; `docs/architecture.md` says
//! more): the vocabulary ([`request`], [`response`], [`http`], [`problem`], [`json`], [`clock`],
//! [`issues`], [`blocking`], [`bounded`], [`sharded`]); [`shared`], the Redis client; the features
//! ([`router`], [`auth`], [`ratelimit`], [`cache`]), none importing another; the composition
//! ([`policy`], [`config`], [`decision`], [`dispatch`], [`gate`]); and the binding.

pub mod auth;
pub mod blocking;
pub mod bounded;
pub mod cache;
pub mod clock;
pub mod clock_map;
pub mod config;
pub mod decision;
pub mod dispatch;
pub mod gate;
pub mod http;
pub mod issues;
pub mod json;
#[cfg(test)]
mod map_contract;
pub mod policy;
pub mod problem;
pub mod ratelimit;
pub mod request;
pub mod response;
pub mod router;
pub mod sharded;
pub mod shared;

#[cfg(feature = "python")]
pub mod python;
