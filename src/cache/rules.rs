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
    /// Parses one or more `Cache-Control` header values: RFC 9110 lists of `name[=value]`, where
    /// a value may be a quoted string holding commas (`private="Set-Cookie, Authorization"`);
    /// parse-net reads that syntax, the meaning is ours. Names are case-insensitive; unknown
    /// directives are ignored; a malformed delta-seconds makes that directive absent, except for
    /// `max-age` and `s-maxage`, where it makes the response stale (RFC 9111 §4.2.1 asks for the
    /// conservative reading). A value that is not a list at all (an unterminated quote, a stray
    /// `;`) reads as `no-store`: what a cache cannot read, it must not share.
    #[must_use]
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let mut cc = CacheControl::default();
        for value in values {
            let Ok(list) = parse_net::cache::parse(value.as_bytes(), &parse_net::Limits::DEFAULT)
            else {
                cc.no_store = true;
                continue;
            };
            for directive in list.iter() {
                let arg = directive.value;
                let seconds = || arg.and_then(|a| a.as_str()?.parse::<u64>().ok());
                let name = directive.name;
                let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
                if is("no-store") {
                    cc.no_store = true;
                } else if is("no-cache") {
                    // A qualified no-cache (`no-cache="Set-Cookie"`) is read as the whole one.
                    cc.no_cache = true;
                } else if is("private") {
                    cc.private = true;
                } else if is("public") {
                    cc.public = true;
                } else if is("must-revalidate") || is("proxy-revalidate") {
                    cc.must_revalidate = true;
                } else if is("max-age") {
                    cc.max_age = Some(seconds().unwrap_or(0));
                } else if is("s-maxage") {
                    cc.s_maxage = Some(seconds().unwrap_or(0));
                } else if is("stale-while-revalidate") {
                    cc.stale_while_revalidate = seconds();
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
    /// A `text/event-stream`: live events, never one stored body (buffering it would hold
    /// every event back until the stream ends).
    EventStream,
    /// The app called `start_response` again (with `exc_info`: it failed) after giving a status.
    AppError,
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
            NotStored::EventStream => "event-stream",
            NotStored::AppError => "app-error",
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
    fn quoted_values_keep_their_commas() {
        let cc = CacheControl::parse([r#"private="Set-Cookie, max-age=600", s-maxage=5"#]);
        assert!(cc.private);
        assert_eq!(
            cc.max_age, None,
            "max-age inside a quoted value is not a directive"
        );
        assert_eq!(cc.s_maxage, Some(5));
        let cc = CacheControl::parse([r#"no-cache="a,b", public"#]);
        assert!(cc.no_cache && cc.public);
    }

    #[test]
    fn an_unreadable_value_is_no_store() {
        for bad in [
            r#"private="unterminated, max-age=60"#,
            "max-age=60; public",
            "a b",
        ] {
            let cc = CacheControl::parse(["public", bad]);
            assert!(cc.no_store, "{bad}");
        }
        assert!(!CacheControl::parse(["", " , ,public"]).no_store);
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
