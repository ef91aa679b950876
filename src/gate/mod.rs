//! The per-request pipeline: one pass from request facts to a [`Decision`], no Python inside.
//!
//! Stages, in order: check the path → choose the route ([`Target`]: the router's match or the
//! framework's resolution; 405 when only the method is wrong) → access → credentials → rate
//! limits → cache. Each either answers the request or adds to what is forwarded. Each stage is
//! its feature's (`auth/stage.rs`, `ratelimit/stage.rs`, `cache/lookup.rs`); this module only
//! orders them. The gate is built from its config in `build.rs`.

use std::sync::Arc;

use crate::auth::jwks::Fetcher;
use crate::auth::revocation::Revocations;
use crate::auth::stage::Stage as AuthStage;
use crate::blocking::{Blocking, InPlace};
use crate::cache::lookup::Outcome as CacheOutcome;
use crate::cache::settings::CachePolicy;
use crate::cache::stage::Stage as CacheStage;
use crate::clock::SharedClock;
use crate::config::Unmatched;
use crate::policy::{Access, Policy};
use crate::problem::Problem;
use crate::ratelimit::{RouteLimits, Stage, Verdict};
use crate::router::{EmptySegments, Lookup, PathError, RouteId, Router, check_decoded};
use crate::shared::RedisClient;

// The gate's interface is `check(&Request) -> Decision`: its types are named here too.
pub use crate::decision::{Decision, Forward, Matched};
pub use crate::dispatch::{NoResolver, ResolveFailed, Resolver, Target};
pub use crate::request::{HeaderSource, Request};
pub use crate::response::Response;

#[derive(Debug)]
struct RouteEntry {
    name: Option<String>,
    /// Refusals under this route wait for the framework's resolution (`confirm_refusals`).
    confirm_refusals: bool,
    /// The route's primary pattern; `None` for a dispatch-only route.
    pattern: Option<String>,
    /// The shapes the framework's converters need (`params`).
    params: Vec<(String, crate::router::ParamShape)>,
    policy: Policy,
    limits: RouteLimits,
}

impl RouteEntry {
    /// Whether every constrained parameter of a router match has its shape.
    fn admits(&self, params: &matchit::Params<'_, '_>) -> bool {
        self.params
            .iter()
            .all(|(name, shape)| params.get(name).is_some_and(|v| shape.admits(v)))
    }
}

impl RouteEntry {
    /// What [`Matched::pattern`] says when the route was chosen by the framework, not the router.
    fn display(&self) -> &str {
        self.pattern.as_deref().unwrap_or("")
    }
}

/// The built gate: routes and resolved policies. Immutable and `Sync`; share it across threads.
#[derive(Debug)]
pub struct Gate {
    /// Pattern -> index into `routes` (aliases point at their route's index).
    router: Router<RouteId>,
    routes: Vec<RouteEntry>,
    dispatch_routes: bool,
    empty_segments: EmptySegments,
    default_policy: Policy,
    default_limits: RouteLimits,
    rate_limit: Stage,
    auth: Option<AuthStage>,
    cache: Option<Arc<CacheStage>>,
    unmatched: Unmatched,
    header_keys: Vec<String>,
    /// The shared store, when the config has one.
    redis: Option<Arc<RedisClient>>,
}

/// What a gate needs from its host besides the config.
#[derive(Debug, Clone)]
pub struct GateOptions {
    pub clock: SharedClock,
    /// Serves `[jwt] jwks_url` and `discovery`.
    pub fetcher: Option<Arc<dyn Fetcher>>,
}

impl Default for GateOptions {
    fn default() -> Self {
        Self {
            clock: crate::clock::system(),
            fetcher: None,
        }
    }
}

/// What `explain` found for a method and path.
#[derive(Debug, Clone, PartialEq)]
pub enum Explanation {
    Route {
        pattern: String,
        name: Option<String>,
        params: Vec<(String, String)>,
        policy: Policy,
    },
    MethodNotAllowed {
        allow: Vec<&'static str>,
    },
    Unmatched {
        policy: Policy,
    },
    BadPath(PathError),
}

impl Gate {
    /// Counters summed over the Redis-backed rate limits.
    #[must_use]
    pub fn redis_rate_limit_totals(&self) -> crate::ratelimit::stage::RedisTotals {
        self.rate_limit.redis_totals()
    }

    /// The shared store's client, when the config has one.
    #[must_use]
    pub fn redis(&self) -> Option<&Arc<RedisClient>> {
        self.redis.as_ref()
    }

    /// Every Redis client of the gate: the limits' and revocation list's, then the cache tier's
    /// own (each needs its fork hook and its event listener).
    #[must_use]
    pub fn redis_clients(&self) -> Vec<Arc<RedisClient>> {
        let cache = self
            .cache
            .as_ref()
            .and_then(|c| c.shared.as_ref().map(|s| s.client().clone()));
        self.redis.iter().cloned().chain(cache).collect()
    }

    /// The cache stage (store and settings), `None` without caching.
    #[must_use]
    pub fn cache(&self) -> Option<Arc<CacheStage>> {
        self.cache.clone()
    }

    /// Request headers (lower-case names) the caller must supply in [`Request::headers`].
    #[must_use]
    pub fn header_keys(&self) -> &[String] {
        &self.header_keys
    }

    /// `(pattern, name)` of every route, by [`RouteId`] (config order); a dispatch-only route has
    /// no pattern.
    pub fn routes(&self) -> impl Iterator<Item = (Option<&str>, Option<&str>)> {
        self.routes
            .iter()
            .map(|e| (e.pattern.as_deref(), e.name.as_deref()))
    }

    /// The forwarding header `[client_ip]` reads (lower case), when it trusts a proxy.
    #[must_use]
    pub fn forwarded_header(&self) -> Option<&'static str> {
        self.rate_limit.forwarded_header()
    }

    /// The client's address as the rate limits key it (see [`crate::ratelimit::client_ip`]):
    /// what the framework adapters' own throttles key anonymous clients by.
    #[must_use]
    pub fn client_key(
        &self,
        remote_addr: Option<&str>,
        forwarded: Option<&str>,
    ) -> Option<std::net::IpAddr> {
        self.rate_limit.client_key(remote_addr, forwarded)
    }

    /// How many in-memory rate limiters this gate holds (each counts per process).
    #[must_use]
    pub fn memory_rate_limiters(&self) -> usize {
        self.rate_limit.memory_limiters()
    }

    /// Forgets the in-memory rate-limit counts; Redis-backed ones are shared and stay.
    pub fn reset_memory_limits(&self) {
        self.rate_limit.reset_memory();
    }

    /// How many rate limits count in the host-shared file (`storage = "host"`).
    #[must_use]
    pub fn host_rate_limiters(&self) -> usize {
        self.rate_limit.host_limiters()
    }

    #[must_use]
    pub fn route_count(&self) -> usize {
        self.routes.len()
    }

    /// Asks `resolver` for the framework's route when the gate has dispatch-only routes.
    fn resolve(&self, resolver: &dyn Resolver) -> Result<Option<RouteId>, Response> {
        if !self.dispatch_routes {
            return Ok(None);
        }
        self.framework_route(resolver)
    }

    /// The framework's route for the request, checked against the table; a failing resolver is
    /// a 500, never a forward.
    fn framework_route(&self, resolver: &dyn Resolver) -> Result<Option<RouteId>, Response> {
        match resolver.resolve() {
            Ok(Some(id)) if id >= self.routes.len() => Err(no_route(id)),
            Ok(found) => Ok(found),
            Err(ResolveFailed) => Err(Response::problem(
                &Problem::new(
                    500,
                    "the application's router failed; the request was not forwarded",
                ),
                Vec::new(),
            )),
        }
    }

    /// The shared revocation list, if `[jwt] revocation` is set.
    #[must_use]
    pub fn revocations(&self) -> Option<&Arc<Revocations>> {
        self.auth.as_ref().and_then(|a| a.revocations.as_ref())
    }

    /// The gate's token verifier, if it has a `[jwt]` section.
    #[must_use]
    pub fn verifier(&self) -> Option<&Arc<crate::auth::Verifier>> {
        self.auth.as_ref().map(|a| &a.verifier)
    }

    /// Decides one request.
    #[must_use]
    pub fn check<'s>(&'s self, req: &Request<'s>) -> Decision<'s> {
        self.check_with(req, &InPlace)
    }

    /// [`Gate::check`], running signature checks on a token-cache miss through `blocking`.
    #[must_use]
    pub fn check_with<'s>(&'s self, req: &Request<'s>, blocking: &dyn Blocking) -> Decision<'s> {
        self.check_target(req, blocking, Target::Match(&NoResolver))
    }

    /// Whether some routes are dispatch-only: a path the router does not match may still be one of
    /// theirs, and only the framework's resolution (a [`Resolver`]) can tell.
    #[must_use]
    pub fn has_dispatch_routes(&self) -> bool {
        self.dispatch_routes
    }

    /// Decides one request under `target`: the route the router matches, or one the framework
    /// resolved.
    #[allow(clippy::too_many_lines)] // the stages in order; each is a call into its own module
    #[must_use]
    pub fn check_target<'s>(
        &'s self,
        req: &Request<'s>,
        blocking: &dyn Blocking,
        target: Target<'_>,
    ) -> Decision<'s> {
        let path = match check_decoded(req.path, self.empty_segments) {
            Ok(p) => p,
            Err(e) => {
                return Decision::Respond(Response::problem(
                    &Problem::new(400, e.to_string()),
                    Vec::new(),
                ));
            }
        };
        let mut use_cache = true;
        // A route the framework chose: no params, and the route's own pattern to show.
        let framework_route = |id: RouteId| Some((id, None, self.routes[id].display()));
        let chosen: Option<(RouteId, Option<matchit::Params<'s, 's>>, &'s str)> = match target {
            Target::Route { id, cache } => {
                use_cache = cache;
                match id {
                    Some(id) if id >= self.routes.len() => return Decision::Respond(no_route(id)),
                    Some(id) => framework_route(id),
                    None => None,
                }
            }
            Target::Match(resolver) => match self.router.lookup(req.method, path) {
                Lookup::Found {
                    value,
                    pattern,
                    params,
                    ..
                } if self.routes[*value].admits(&params) => Some((*value, Some(params), pattern)),
                // A parameter the route's converter would not take: the framework decides
                // where the request goes, before any stage counts it under this route.
                Lookup::Found { .. } => match self.framework_route(resolver) {
                    Ok(Some(id)) => framework_route(id),
                    Ok(None) if self.unmatched == Unmatched::Forward => return unmatched_forward(),
                    Ok(None) => None,
                    Err(r) => return Decision::Respond(r),
                },
                Lookup::MethodNotAllowed { allow } => {
                    // A dispatch-only route may take this method on this path.
                    match self.resolve(resolver) {
                        Ok(Some(id)) => framework_route(id),
                        Ok(None) => {
                            return Decision::Respond(method_not_allowed(req.method, &allow));
                        }
                        Err(r) => return Decision::Respond(r),
                    }
                }
                Lookup::NotFound if self.unmatched == Unmatched::Forward => {
                    return unmatched_forward();
                }
                Lookup::NotFound => match self.resolve(resolver) {
                    Ok(Some(id)) => framework_route(id),
                    Ok(None) => None,
                    Err(r) => return Decision::Respond(r),
                },
            },
        };
        // The route the gate's own router matched, whose refusals may need the framework's word.
        let matched = match (&target, &chosen) {
            (Target::Match(_), Some((id, Some(_), _))) => Some(*id),
            _ => None,
        };
        let decision = self.apply(req, blocking, path, chosen, use_cache);
        // A refusal under a route the framework may not dispatch to (its converters narrow what
        // it takes, or a route only the framework can place overlaps it) is answered only once
        // the framework agrees; otherwise the request is checked under the framework's route.
        if let (Decision::Respond(r), Target::Match(resolver), Some(id)) =
            (&decision, target, matched)
        {
            if r.status >= 400 && self.routes[id].confirm_refusals {
                match self.framework_route(resolver) {
                    Ok(Some(other)) if other != id => {
                        return self.check_target(
                            req,
                            blocking,
                            Target::Route {
                                id: Some(other),
                                cache: true,
                            },
                        );
                    }
                    Ok(_) => {}
                    Err(r) => return Decision::Respond(r),
                }
            }
        }
        decision
    }

    /// The stages after the route is chosen (`None`: the defaults): access, credentials, rate
    /// limits, cache.
    fn apply<'s>(
        &'s self,
        req: &Request<'s>,
        blocking: &dyn Blocking,
        path: &'s str,
        chosen: Option<(RouteId, Option<matchit::Params<'s, 's>>, &'s str)>,
        use_cache: bool,
    ) -> Decision<'s> {
        let (policy, limits, route) = match chosen {
            Some((id, params, pattern)) => {
                let entry = &self.routes[id];
                (
                    &entry.policy,
                    &entry.limits,
                    Some(Matched {
                        id,
                        pattern,
                        name: entry.name.as_deref(),
                        params: params.unwrap_or_default(),
                    }),
                )
            }
            None => (&self.default_policy, &self.default_limits, None),
        };
        if policy.exempt {
            // Exempt from every check, but a successful write still invalidates what the cache
            // holds for its path, whichever route handled it (a GET route may cache it).
            let cache = match &self.cache {
                Some(stage) if use_cache => {
                    match stage.check(&CachePolicy::default(), req, path, None, blocking) {
                        CacheOutcome::Forward(ticket) => Some(ticket),
                        CacheOutcome::Respond(_) | CacheOutcome::Pass(_) => None,
                    }
                }
                _ => None,
            };
            return Decision::Forward(Forward {
                route,
                headers: Vec::new(),
                dry_run_refused: None,
                claims: None,
                cache,
            });
        }
        if policy.access == Access::Deny {
            let p = Problem::new(
                403,
                "access to this resource is denied by the gateway policy",
            );
            return Decision::Respond(Response::problem(&p, Vec::new()));
        }
        let claims = match &self.auth {
            Some(stage) => match stage.check(&policy.auth, req, blocking) {
                Ok(v) => v,
                Err(r) => return Decision::Respond(r),
            },
            None => None,
        };
        let mut headers = Vec::new();
        let dry_run_refused = match self.rate_limit.check(
            limits,
            req,
            claims.as_deref().map(|v| &*v.claims),
            &mut headers,
            blocking,
        ) {
            Verdict::Refuse(r) => return Decision::Respond(r),
            Verdict::Pass { dry_run_refused } => dry_run_refused,
        };
        let cache = match &self.cache {
            Some(stage) if use_cache => match stage.check(
                &policy.cache,
                req,
                path,
                claims.as_deref().map(|v| &*v.claims),
                blocking,
            ) {
                CacheOutcome::Respond(mut r) => {
                    // A hit counts against the quota, and says so.
                    r.headers.extend(headers);
                    return Decision::Respond(r);
                }
                CacheOutcome::Forward(ticket) => Some(ticket),
                CacheOutcome::Pass(status) => {
                    headers.extend(status);
                    None
                }
            },
            _ => None,
        };
        Decision::Forward(Forward {
            route,
            headers,
            dry_run_refused,
            claims,
            cache,
        })
    }

    /// Which route and policy apply to `method path`, and why; for `python -m ferrogate explain`.
    #[must_use]
    pub fn explain(&self, method: &str, path: &str) -> Explanation {
        let path = match check_decoded(path, self.empty_segments) {
            Ok(p) => p,
            Err(e) => return Explanation::BadPath(e),
        };
        match self.router.lookup(method, path) {
            Lookup::Found {
                value,
                pattern,
                params,
                ..
            } => Explanation::Route {
                pattern: pattern.to_owned(),
                name: self.routes[*value].name.clone(),
                params: params
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
                policy: self.routes[*value].policy.clone(),
            },
            Lookup::MethodNotAllowed { allow } => Explanation::MethodNotAllowed { allow },
            Lookup::NotFound => Explanation::Unmatched {
                policy: self.default_policy.clone(),
            },
        }
    }
}

/// `unmatched = "forward"`: a request no route takes goes to the app unchecked.
fn unmatched_forward<'g>() -> Decision<'g> {
    Decision::Forward(Forward {
        route: None,
        headers: Vec::new(),
        dry_run_refused: None,
        claims: None,
        cache: None,
    })
}

/// A route index the gate does not have: a bug in the caller, answered 500, never forwarded.
fn no_route(id: RouteId) -> Response {
    let p = Problem::new(500, format!("the gateway has no route #{id}"));
    Response::problem(&p, Vec::new())
}

fn method_not_allowed(method: &str, allow: &[&'static str]) -> Response {
    let allow_header = allow.join(", ");
    // The method is a client-chosen token; it is named only when it is a plain token.
    let detail = if crate::router::Method::is_token(method) && method.len() <= 32 {
        format!("{method} is not allowed on this resource")
    } else {
        "this method is not allowed on this resource".to_owned()
    };
    let p = Problem::new(405, detail).with("allow", allow.to_vec());
    Response::problem(&p, vec![("allow", allow_header)])
}

mod build;

#[cfg(test)]
mod tests;
