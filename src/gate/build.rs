//! Building a gate from its config: the route table, each stage with the header slots it reads,
//! and the checks that need the whole config (auth without `[jwt]`, token-keyed limits on routes
//! without auth). Every problem is collected, so a config is fixed in one round.

use std::sync::Arc;

use super::{Gate, GateOptions, RouteEntry};
use crate::auth::revocation::Revocations;
use crate::auth::stage::{Mode as AuthMode, Slots as AuthSlots, Stage as AuthStage};
use crate::cache::stage::{Slots as CacheSlots, Stage as CacheStage};
use crate::clock::SharedClock;
use crate::config::GateConfig;
use crate::issues::{ConfigError, Issues};
use crate::policy::Policy;
use crate::ratelimit::StageBuilder;
use crate::router::{RouteId, Router};
use crate::shared::{RedisClient, RedisSettings};

impl Gate {
    /// Builds a gate from a validated config; route conflicts are config errors.
    pub fn new(config: &GateConfig) -> Result<Self, ConfigError> {
        Self::with_clock(config, crate::clock::system())
    }

    /// A gate whose time-dependent stages (rate limits, token expiry) read `clock`; tests pass a
    /// `ManualClock`.
    pub fn with_clock(config: &GateConfig, clock: SharedClock) -> Result<Self, ConfigError> {
        let mut issues = Issues::default();
        let gate = Self::build(
            config,
            &GateOptions {
                clock,
                fetcher: None,
            },
            &mut issues,
        );
        issues.finish(gate)
    }

    /// Validates and builds in one round, so shape problems and route conflicts are reported
    /// together.
    pub fn from_value(v: &serde_json::Value) -> Result<Self, ConfigError> {
        Self::from_value_with(v, &GateOptions::default())
    }

    /// [`Gate::from_value`] with a clock and an HTTP fetcher.
    pub fn from_value_with(
        v: &serde_json::Value,
        options: &GateOptions,
    ) -> Result<Self, ConfigError> {
        let mut issues = Issues::default();
        let config = GateConfig::parse(v, &mut issues);
        let gate = Self::build(&config, options, &mut issues);
        issues.finish(gate)
    }

    fn build(config: &GateConfig, options: &GateOptions, issues: &mut Issues) -> Self {
        let clock = options.clock.clone();
        let mut header_keys = Vec::new();
        let redis = config.redis.as_ref().and_then(|s| {
            RedisClient::new(s.clone(), clock.clone())
                .map_err(|e| issues.push("redis.url", e))
                .ok()
                .map(Arc::new)
        });
        let auth = config.jwt.as_ref().and_then(|jwt| {
            let settings = crate::auth::settings::parse(
                jwt,
                "jwt",
                &clock,
                options.fetcher.as_ref(),
                crate::auth::settings::Defaults::Gate,
                issues,
            )?;
            let revocations = settings.revocation.and_then(|r| match &redis {
                Some(client) => Some(Revocations::new(
                    r,
                    settings.verifier.validation().leeway,
                    settings.verifier.validation().issuers.clone(),
                    client.clone(),
                    clock.clone(),
                )),
                None => {
                    issues.push(
                        "jwt.revocation",
                        "needs a [redis] section: the revocation list is shared through Redis",
                    );
                    None
                }
            });
            Some(AuthStage {
                verifier: settings.verifier,
                realm: settings.realm,
                slots: AuthSlots {
                    authorization: header_slot(&mut header_keys, "authorization"),
                    cookie: header_slot(&mut header_keys, "cookie"),
                },
                revocations,
            })
        });
        if config.jwt.is_none() {
            auth_needs_jwt(config, issues);
        }
        let default_policy = Policy::from_defaults(&config.defaults);
        token_keys_need_auth(config, &default_policy, "defaults", issues);
        let mut limits = StageBuilder::new(&config.rate_limit, clock.clone(), redis.clone())
            .with_host_file(host_file(&config.rate_limit, issues));
        let default_limits = limits.bind(
            &default_policy.limit,
            "default",
            ("default", "defaults"),
            &mut header_keys,
            issues,
        );
        let (router, entries) = Self::route_table(
            config,
            &default_policy,
            &mut limits,
            &mut header_keys,
            issues,
        );
        let rate_limit = limits.finish(&mut header_keys);
        let cache = Self::cache_stage(
            config,
            &default_policy,
            &mut header_keys,
            &clock,
            redis.as_ref(),
            issues,
        );
        // Last, and only for a gate that will be used: subscribing starts a thread, and the
        // first load is waited for.
        if let (true, Some(r)) = (
            issues.is_empty(),
            auth.as_ref().and_then(|a| a.revocations.as_ref()),
        ) {
            r.start();
        }
        Self {
            dispatch_routes: config.routes.iter().any(|r| r.path.is_none()),
            empty_segments: config.paths.empty_segments,
            router,
            routes: entries,
            default_policy,
            default_limits,
            rate_limit,
            auth,
            cache,
            unmatched: config.unmatched,
            header_keys,
            redis,
        }
    }

    /// The router (patterns and aliases -> route index) and the routes, in config order.
    fn route_table(
        config: &GateConfig,
        default_policy: &Policy,
        limits: &mut StageBuilder,
        header_keys: &mut Vec<String>,
        issues: &mut Issues,
    ) -> (Router<RouteId>, Vec<RouteEntry>) {
        let mut router = Router::new();
        let mut entries = Vec::with_capacity(config.routes.len());
        for (id, spec) in config.routes.iter().enumerate() {
            let methods: Vec<&str> = spec.methods.iter().map(String::as_str).collect();
            let policy = spec.policy.resolve(default_policy);
            let label = spec
                .name
                .as_deref()
                .or(spec.path.as_deref())
                .unwrap_or(&spec.key);
            if let Some(path) = &spec.path {
                if let Err(e) = router.insert(path, &methods, id) {
                    issues.push(format!("{}.path", spec.key), e.to_string());
                }
            }
            for (i, alias) in spec.aliases.iter().enumerate() {
                if let Err(e) = router.insert(alias, &methods, id) {
                    issues.push(format!("{}.aliases[{i}]", spec.key), e.to_string());
                }
            }
            token_keys_need_auth(config, &policy, &spec.key, issues);
            // What the route is: its pattern, methods and label. Two routes never share all
            // three (the router refuses a pattern and method twice; routes without a pattern
            // are told apart by name), and they stay the same across deploys.
            let mut sorted = methods.clone();
            sorted.sort_unstable();
            let identity = format!(
                "{}\n{}\n{label}",
                spec.path.as_deref().unwrap_or(""),
                sorted.join(",")
            );
            entries.push(RouteEntry {
                name: spec.name.clone(),
                params: spec.params.clone(),
                confirm_refusals: spec.confirm_refusals,
                pattern: spec.path.clone(),
                limits: limits.bind(
                    &policy.limit,
                    label,
                    (&identity, &spec.key),
                    header_keys,
                    issues,
                ),
                policy,
            });
        }
        (router, entries)
    }

    /// The cache stage, when the config has a `[cache]` section or a route caches.
    fn cache_stage(
        config: &GateConfig,
        default_policy: &Policy,
        header_keys: &mut Vec<String>,
        clock: &SharedClock,
        redis: Option<&Arc<RedisClient>>,
        issues: &mut Issues,
    ) -> Option<Arc<CacheStage>> {
        let route_policies: Vec<crate::cache::settings::CachePolicy> = config
            .routes
            .iter()
            .map(|r| r.policy.resolve(default_policy).cache)
            .chain(std::iter::once(default_policy.cache.clone()))
            .collect();
        if config.cache.is_none() && !route_policies.iter().any(|p| p.enabled) {
            return None;
        }
        let settings = config.cache.clone().unwrap_or_default();
        let mut vary_names: Vec<String> = settings.vary.clone();
        for p in &route_policies {
            for v in &p.vary {
                if !vary_names.contains(v) {
                    vary_names.push(v.clone());
                }
            }
        }
        let slots = CacheSlots {
            script_name: header_slot(header_keys, crate::http::SCRIPT_NAME),
            authorization: header_slot(header_keys, "authorization"),
            cookie: header_slot(header_keys, "cookie"),
            cache_control: header_slot(header_keys, "cache-control"),
            if_none_match: header_slot(header_keys, "if-none-match"),
            vary: vary_names
                .into_iter()
                .map(|n| {
                    let slot = header_slot(header_keys, &n);
                    (n, slot)
                })
                .collect(),
            keyed: crate::cache::stage::KEYED
                .iter()
                .map(|h| (*h, header_slot(header_keys, h)))
                .collect(),
        };
        if settings.shared {
            // The tier gets a client of its own (pool, breaker) even on the limits' server: a
            // cache that fails (a full Redis, a slow purge) must not open the breaker that
            // decides whether limits and revocation checks fail open or closed.
            let own = match (&settings.shared_url, &config.redis) {
                (Some(url), base) => RedisSettings::with_url(base.as_ref(), url)
                    .map_err(|e| issues.push("cache.shared", e))
                    .ok(),
                (None, Some(base)) => Some(base.clone()),
                (None, None) => {
                    if redis.is_none() {
                        issues.push(
                            "cache.shared",
                            "\"redis\" needs a [redis] section (url = \"redis://...\")",
                        );
                    }
                    None
                }
            };
            if let Some(own) = own {
                match RedisClient::new(own, clock.clone()) {
                    Ok(client) => {
                        return Some(CacheStage::with_shared(
                            settings,
                            slots,
                            clock.clone(),
                            Arc::new(client),
                        ));
                    }
                    Err(e) => issues.push("cache.shared", e),
                }
            }
        }
        Some(Arc::new(CacheStage::new(settings, slots, clock.clone())))
    }
}

/// Without `[jwt]`, every route (and the defaults) asking for auth is a config error.
fn auth_needs_jwt(config: &GateConfig, issues: &mut Issues) {
    let needs = |p: &crate::policy::PolicyOverride| {
        p.auth.as_ref().is_some_and(|a| a.mode != AuthMode::None)
    };
    if needs(&config.defaults) {
        issues.push(
            "defaults.auth",
            "needs a [jwt] section to verify tokens with",
        );
    }
    for spec in config.routes.iter().filter(|r| needs(&r.policy)) {
        issues.push(
            format!("{}.auth", spec.key),
            "needs a [jwt] section to verify tokens with",
        );
    }
}

/// A limit keyed only by `sub` or claims, on a route that verifies no token, would key every
/// request on nothing the client proved: refused at start-up rather than silently keyed by
/// address.
fn token_keys_need_auth(config: &GateConfig, policy: &Policy, at: &str, issues: &mut Issues) {
    if policy.exempt || policy.auth.mode != AuthMode::None {
        return;
    }
    if let Some(part) = config.rate_limit.token_only_key(&policy.limit) {
        issues.push(
            format!("{at}.limit"),
            format!(
                "keyed by {part:?}, which only a verified token supplies, but this route has no \
                 auth (set auth = \"required\" or \"optional\", or key by \"ip\")"
            ),
        );
    }
}

/// The slot of a request header in [`crate::request::Request::headers`], adding it if new.
fn header_slot(keys: &mut Vec<String>, name: &str) -> usize {
    if let Some(i) = keys.iter().position(|k| k == name) {
        return i;
    }
    keys.push(name.to_owned());
    keys.len() - 1
}

/// The file of `storage = "host"`, checked usable now; a path it cannot use is a config problem.
fn host_file(
    settings: &crate::ratelimit::Settings,
    issues: &mut Issues,
) -> Option<Arc<crate::ratelimit::host_file::HostFile>> {
    use crate::ratelimit::host_file::{DEFAULT_MAP_BYTES, HostFile, default_path};
    use crate::ratelimit::settings::Storage;
    if settings.storage != Storage::Host {
        return None;
    }
    let (path, key) = match &settings.host_path {
        Some(p) => (std::path::PathBuf::from(p), "rate_limit.host_path"),
        None => (default_path(), "rate_limit.storage"),
    };
    HostFile::open(&path, DEFAULT_MAP_BYTES)
        .map_err(|e| issues.push(key, e.to_string()))
        .ok()
}
