//! What the gate decided for one request: answer it ([`Decision::Respond`]), or forward it to the
//! app with what the stages learned ([`Forward`]: the route, the verified token, headers to add,
//! the cache ticket). It carries the features' results, so it sits above them, beside the gate.

use std::sync::Arc;

use crate::auth::verifier::Verified;
use crate::cache::ticket::Ticket as CacheTicket;
use crate::http::Header;
use crate::response::Response;
use crate::router::RouteId;

/// The route a request matched.
#[derive(Debug)]
pub struct Matched<'s> {
    pub id: RouteId,
    pub pattern: &'s str,
    pub name: Option<&'s str>,
    pub params: matchit::Params<'s, 's>,
}

/// A request the app should handle, with what the gate learned about it.
#[derive(Debug)]
pub struct Forward<'s> {
    pub route: Option<Matched<'s>>,
    /// Headers to add to the app's response (rate-limit state, cache status).
    pub headers: Vec<Header>,
    /// A dry-run limit that would have refused this request (its name), for logs and metrics.
    pub dry_run_refused: Option<&'s str>,
    /// The verified token, when the route looked for one and the request had it.
    pub claims: Option<Arc<Verified>>,
    /// What to do with the app's response (store it, or invalidate the path after an unsafe request).
    pub cache: Option<CacheTicket>,
}

#[derive(Debug)]
// Forward is the common, hot case: boxing it to shrink the rare Respond would cost an allocation
// on every forwarded request.
#[allow(clippy::large_enum_variant)]
pub enum Decision<'s> {
    Respond(Response),
    Forward(Forward<'s>),
}
