//! Which route the gate checks a request under: the one its router matches, or the one the
//! framework behind says it will dispatch to. The framework adapters confirm at dispatch that the
//! two agree; these types carry the framework's answer into [`crate::gate::Gate::check_target`].

use crate::router::RouteId;

/// Which route a request is checked under.
#[derive(Clone, Copy)]
pub enum Target<'a> {
    /// The route the router matches. When nothing matches (or only the method is wrong) and the
    /// gate has dispatch-only routes, `resolver` asks the framework which route it would dispatch
    /// to; with none, the defaults apply.
    Match(&'a dyn Resolver),
    /// A route the framework resolved (`None`: no route, the `defaults` apply). `cache: false`
    /// skips the cache stage, neither serving nor storing: the adapters use it when the framework
    /// dispatched to another route than the one the gate matched.
    Route { id: Option<RouteId>, cache: bool },
}

impl std::fmt::Debug for Target<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Match(_) => f.write_str("Match"),
            Target::Route { id, cache } => f
                .debug_struct("Route")
                .field("id", id)
                .field("cache", cache)
                .finish(),
        }
    }
}

/// The framework's own routing, asked about a request the router could not place.
pub trait Resolver {
    /// The route (by config index) the framework would dispatch the request to, `None` for none.
    fn resolve(&self) -> Result<Option<RouteId>, ResolveFailed>;
}

/// The framework's router failed; the request is answered 500 (never forwarded unchecked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolveFailed;

/// No framework behind: a path the router does not match gets the defaults.
#[derive(Debug, Clone, Copy)]
pub struct NoResolver;

impl Resolver for NoResolver {
    fn resolve(&self) -> Result<Option<RouteId>, ResolveFailed> {
        Ok(None)
    }
}
