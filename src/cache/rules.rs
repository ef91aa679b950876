//! RFC 9111 shared-cache rules: what may be stored, for how long, and what a request allows.

/// Parsed `Cache-Control` directives that matter to a shared cache.
// One flag per directive, as RFC 9111 names them: an enum set would only obscure that.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CacheControl {
    pub no_store: bool,
    pub no_cache: bool,
    pub private: bool,
    pub public: bool,
    pub must_revalidate: bool,
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
    pub stale_while_revalidate: Option<u64>,
}

impl CacheControl {
    /// Parses one or more `Cache-Control` header values (comma-separated directives,
    /// case-insensitive names, optional quoted values). Unknown directives are ignored; a
    /// malformed delta-seconds makes that directive absent, except for `max-age` and `s-maxage`,
    /// where it makes the response stale (RFC 9111 §4.2.1 asks for the conservative reading).
    #[must_use]
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let mut cc = CacheControl::default();
        for value in values {
            for directive in value.split(',') {
                let directive = directive.trim();
                if directive.is_empty() {
                    continue;
                }
                let (name, arg) = match directive.split_once('=') {
                    Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                    None => (directive, None),
                };
                let seconds = || arg.and_then(|a| a.parse::<u64>().ok());
                match name.to_ascii_lowercase().as_str() {
                    "no-store" => cc.no_store = true,
                    "no-cache" => cc.no_cache = true,
                    "private" => cc.private = true,
                    "public" => cc.public = true,
                    "must-revalidate" | "proxy-revalidate" => cc.must_revalidate = true,
                    "max-age" => cc.max_age = Some(seconds().unwrap_or(0)),
                    "s-maxage" => cc.s_maxage = Some(seconds().unwrap_or(0)),
                    "stale-while-revalidate" => cc.stale_while_revalidate = seconds(),
                    _ => {}
                }
            }
        }
        cc
    }
}

/// Why a response is not stored (reported in `Cache-Status` as `detail`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStored {
    Status,
    NoStore,
    Private,
    NoCache,
    SetCookie,
    VaryStar,
    VaryUnknown,
    Authorization,
    ZeroTtl,
    TooLarge,
    /// The framework dispatched to another route than the gate matched.
    RouteMismatch,
}

impl NotStored {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            NotStored::Status => "status",
            NotStored::NoStore => "no-store",
            NotStored::Private => "private",
            NotStored::NoCache => "no-cache",
            NotStored::SetCookie => "set-cookie",
            NotStored::VaryStar => "vary-star",
            NotStored::VaryUnknown => "vary-unkeyed-header",
            NotStored::Authorization => "authorization",
            NotStored::ZeroTtl => "ttl-zero",
            NotStored::TooLarge => "too-large",
            NotStored::RouteMismatch => "route-mismatch",
        }
    }
}

/// The freshness lifetime a shared cache gives a response: `s-maxage` over `max-age` over the
/// route's TTL (RFC 9111 §4.2.1).
#[must_use]
pub fn freshness(cc: &CacheControl, route_ttl: u64) -> u64 {
    cc.s_maxage.or(cc.max_age).unwrap_or(route_ttl)
}

/// Whether a response to a request with `Authorization` may be stored (RFC 9111 §3.5): only when
/// the entry is keyed by the principal, or the response explicitly allows shared storage.
#[must_use]
pub fn authorization_allows(cc: &CacheControl, per_principal: bool) -> bool {
    per_principal || cc.public || cc.s_maxage.is_some() || cc.must_revalidate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_directives() {
        let cc = CacheControl::parse([
            "public, max-age=60",
            "S-MAXAGE=\"120\", stale-while-revalidate=30",
        ]);
        assert!(cc.public);
        assert_eq!(cc.max_age, Some(60));
        assert_eq!(cc.s_maxage, Some(120));
        assert_eq!(cc.stale_while_revalidate, Some(30));
        assert_eq!(freshness(&cc, 5), 120);
        let cc = CacheControl::parse(["max-age=abc, no-store, Private"]);
        assert_eq!(cc.max_age, Some(0));
        assert!(cc.no_store && cc.private);
        assert_eq!(freshness(&CacheControl::default(), 5), 5);
    }

    #[test]
    fn authorization_rule() {
        assert!(!authorization_allows(&CacheControl::default(), false));
        assert!(authorization_allows(&CacheControl::default(), true));
        assert!(authorization_allows(
            &CacheControl::parse(["s-maxage=5"]),
            false
        ));
        assert!(authorization_allows(
            &CacheControl::parse(["public"]),
            false
        ));
    }
}
