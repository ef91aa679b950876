//! Per-route policy: the `defaults` table merged with each route's overrides, resolved once when
//! the gate is built so the per-request path reads a finished [`Policy`] and merges nothing.

use serde_json::Value;

use crate::auth::stage::AuthPolicy;
use crate::cache::settings::CachePolicy;
use crate::issues::{Issues, join, show};
use crate::ratelimit::LimitPolicy;

/// Whether a route is open at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Access {
    #[default]
    Allow,
    Deny,
}

impl Access {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Allow => "allow",
            Access::Deny => "deny",
        }
    }
}

/// The policy keys a `defaults` table or a route may set. `None` means "inherit".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicyOverride {
    pub access: Option<Access>,
    pub exempt: Option<bool>,
    /// Rate limits (`limit = "100/minute"`, a named limit, a table, a list, or `false`).
    pub limit: Option<LimitPolicy>,
    /// Bearer-token auth (`auth = "required"` or a table).
    pub auth: Option<AuthPolicy>,
    /// Response caching (`cache = 60` or a table).
    pub cache: Option<CachePolicy>,
}

/// Keys every policy table accepts.
pub const POLICY_KEYS: &[&str] = &["access", "exempt", "limit", "auth", "cache"];

impl PolicyOverride {
    /// Parses the policy keys of a table; `extra_keys` are the other keys the caller handles.
    pub fn parse(v: &Value, at: &str, extra_keys: &[&str], issues: &mut Issues) -> Self {
        let Some(map) = issues.object(v, at) else {
            return Self::default();
        };
        let allowed: Vec<&str> = extra_keys.iter().chain(POLICY_KEYS).copied().collect();
        issues.unknown_keys(map, &allowed, at);
        let mut out = Self::default();
        if let Some(a) = map.get("access") {
            out.access = issues
                .one_of(a, &["allow", "deny"], &join(at, "access"))
                .map(|s| match s {
                    "deny" => Access::Deny,
                    _ => Access::Allow,
                });
        }
        if let Some(e) = map.get("exempt") {
            out.exempt = issues.boolean(e, &join(at, "exempt"));
        }
        if let Some(c) = map.get("cache") {
            out.cache = CachePolicy::parse(c, &join(at, "cache"), issues);
        }
        if let Some(a) = map.get("auth") {
            out.auth = AuthPolicy::parse(a, &join(at, "auth"), issues);
        }
        if let Some(l) = map.get("limit") {
            out.limit = crate::ratelimit::settings::parse_limit(l, &join(at, "limit"), issues);
        }
        out
    }

    /// This override on top of `base`.
    #[must_use]
    pub fn resolve(&self, base: &Policy) -> Policy {
        Policy {
            access: self.access.unwrap_or(base.access),
            exempt: self.exempt.unwrap_or(base.exempt),
            limit: self.limit.clone().unwrap_or_else(|| base.limit.clone()),
            auth: self.auth.clone().unwrap_or_else(|| base.auth.clone()),
            cache: self.cache.clone().unwrap_or_else(|| base.cache.clone()),
        }
    }
}

/// A finished policy, as the gate enforces it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Policy {
    pub access: Access,
    /// Skip every check: the route is forwarded as if the gate were not there (`@gate.exempt`).
    pub exempt: bool,
    pub limit: LimitPolicy,
    pub auth: AuthPolicy,
    pub cache: CachePolicy,
}

impl Policy {
    /// The built-in defaults under a `defaults` table.
    #[must_use]
    pub fn from_defaults(defaults: &PolicyOverride) -> Self {
        defaults.resolve(&Policy::default())
    }

    /// A human-readable account of the policy, for `explain`.
    #[must_use]
    pub fn describe(&self) -> Vec<(&'static str, String)> {
        vec![
            ("access", self.access.as_str().to_owned()),
            ("exempt", self.exempt.to_string()),
            ("limit", self.limit.describe()),
            ("auth", self.auth.describe()),
            ("cache", self.cache.describe()),
        ]
    }
}

/// One `[[routes]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteSpec {
    /// Where the route sits in the config (`routes[3]`), for error messages.
    pub key: String,
    /// The matchit pattern; `None` for a dispatch-only route (`dispatch = true`), which the router
    /// never matches: a framework adapter checks requests under it once the framework has resolved
    /// them to it.
    pub path: Option<String>,
    /// More patterns for the same route (one policy, one set of limit buckets): a werkzeug rule
    /// with `strict_slashes=False` answers both `/a` and `/a/`.
    pub aliases: Vec<String>,
    /// `confirm_refusals = true`: the router may match this route for a path the framework
    /// dispatches elsewhere (its converters take fewer paths than the pattern, or a route the
    /// router cannot express overlaps it), so a refusal under it is answered only once the
    /// framework's resolver agrees.
    pub confirm_refusals: bool,
    /// Empty: every method.
    pub methods: Vec<String>,
    pub name: Option<String>,
    /// `params = { id = "digits" }`: a match whose parameter has another shape is not this
    /// route's (the framework's converter would not take it); the framework's resolver decides.
    pub params: Vec<(String, crate::router::ParamShape)>,
    pub policy: PolicyOverride,
}

const ROUTE_KEYS: &[&str] = &[
    "path",
    "aliases",
    "dispatch",
    "confirm_refusals",
    "methods",
    "name",
    "params",
];

impl RouteSpec {
    pub fn parse(v: &Value, at: &str, issues: &mut Issues) -> Option<Self> {
        let map = issues.object(v, at)?;
        let policy = PolicyOverride::parse(v, at, ROUTE_KEYS, issues);
        let dispatch = map
            .get("dispatch")
            .and_then(|d| issues.boolean(d, &join(at, "dispatch")))
            .unwrap_or(false);
        let path = match (map.get("path"), dispatch) {
            (Some(p), false) => issues
                .string(p, &join(at, "path"))
                .map(|p| Some(p.to_owned())),
            (None, true) => Some(None),
            (Some(_), true) => {
                issues.push(
                    join(at, "path"),
                    "a dispatch-only route has no path (it is never matched by the router)",
                );
                None
            }
            (None, false) => {
                issues.push(
                    join(at, "path"),
                    "missing (every route needs a path such as \"/users/{id}\", or dispatch = true)",
                );
                None
            }
        };
        let confirm_refusals = map
            .get("confirm_refusals")
            .and_then(|c| issues.boolean(c, &join(at, "confirm_refusals")))
            .unwrap_or(false);
        let aliases = match map.get("aliases") {
            None => Some(Vec::new()),
            Some(_) if dispatch => {
                issues.push(join(at, "aliases"), "a dispatch-only route has no paths");
                None
            }
            Some(a) => issues
                .strings(a, &join(at, "aliases"))
                .map(|list| list.into_iter().map(str::to_owned).collect()),
        };
        let methods = match map.get("methods") {
            None => Some(Vec::new()),
            Some(m) => {
                let key = join(at, "methods");
                issues.strings(m, &key).and_then(|list| {
                    let mut ok = true;
                    for (i, s) in list.iter().enumerate() {
                        if !crate::router::Method::is_token(s)
                            || s.bytes().any(|b| b.is_ascii_lowercase())
                        {
                            issues.push(
                                format!("{key}[{i}]"),
                                format!(
                                    "not an upper-case HTTP method: {}",
                                    show(&Value::from(*s))
                                ),
                            );
                            ok = false;
                        }
                    }
                    ok.then(|| list.into_iter().map(str::to_owned).collect())
                })
            }
        };
        let name = map
            .get("name")
            .and_then(|n| issues.string(n, &join(at, "name")).map(str::to_owned));
        let params = map.get("params").map_or(Some(Vec::new()), |p| {
            parse_params(
                p,
                path.as_ref().and_then(Option::as_deref),
                &join(at, "params"),
                issues,
            )
        });
        Some(Self {
            key: at.to_owned(),
            path: path?,
            aliases: aliases?,
            confirm_refusals,
            methods: methods?,
            name,
            params: params?,
            policy,
        })
    }
}

/// `params`: each name a `{name}` segment of the path, each value a [`ParamShape`] name.
fn parse_params(
    v: &Value,
    path: Option<&str>,
    at: &str,
    issues: &mut Issues,
) -> Option<Vec<(String, crate::router::ParamShape)>> {
    use crate::router::ParamShape;
    let map = issues.object(v, at)?;
    let mut out = Vec::with_capacity(map.len());
    for (name, shape) in map {
        let here = join(at, name);
        let segment = format!("{{{name}}}");
        if !path.is_some_and(|p| p.split('/').any(|s| s == segment)) {
            issues.push(
                here.clone(),
                format!("the path has no {segment} segment to constrain"),
            );
        }
        match shape.as_str().and_then(ParamShape::from_name) {
            Some(s) => out.push((name.clone(), s)),
            None => issues.push(
                here,
                format!(
                    "expected one of {}, got {}",
                    ParamShape::NAMES.join(" | "),
                    show(shape)
                ),
            ),
        }
    }
    Some(out)
}
