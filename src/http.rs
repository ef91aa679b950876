//! Header helpers shared by the pipeline stages.

/// A response header: lower-case static name, owned value.
pub type Header = (&'static str, String);

/// Appends `n` in decimal. The per-request strings use this instead of `write!`: `core::fmt`'s
/// machinery costs more than the digits, mostly in code the request must fetch.
pub fn push_int(out: &mut String, n: impl itoa::Integer) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// A request fact read like a header but from the environ's `SCRIPT_NAME` (where the app is
/// mounted). No header name contains `:`, so it cannot collide with one.
pub const SCRIPT_NAME: &str = ":script-name";

/// A request fact read like a header but from the environ's `wsgi.url_scheme` (`http` or
/// `https`, as the server received the request).
pub const URL_SCHEME: &str = ":url-scheme";

/// The WSGI/CGI environ key of a request header: `x-api-key` → `HTTP_X_API_KEY`.
/// `content-type` and `content-length` have no `HTTP_` prefix in CGI; [`SCRIPT_NAME`] is
/// `SCRIPT_NAME` and [`URL_SCHEME`] `wsgi.url_scheme`.
#[must_use]
pub fn cgi_key(header: &str) -> String {
    if header == SCRIPT_NAME {
        return "SCRIPT_NAME".to_owned();
    }
    if header == URL_SCHEME {
        return "wsgi.url_scheme".to_owned();
    }
    let upper: String = header
        .chars()
        .map(|c| {
            if c == '-' {
                '_'
            } else {
                c.to_ascii_uppercase()
            }
        })
        .collect();
    match upper.as_str() {
        "CONTENT_TYPE" | "CONTENT_LENGTH" => upper,
        _ => format!("HTTP_{upper}"),
    }
}

/// Whether `name` is a valid header field name (RFC 9110 `token`).
#[must_use]
pub fn is_header_name(name: &str) -> bool {
    is_token(name)
}

/// Whether `s` is an RFC 9110 `token`: what a header name or a method must be.
#[must_use]
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgi_keys() {
        assert_eq!(cgi_key("X-Api-Key"), "HTTP_X_API_KEY");
        assert_eq!(cgi_key("content-type"), "CONTENT_TYPE");
        assert!(is_header_name("X-Api-Key"));
        assert!(!is_header_name("X Api"));
    }
}
