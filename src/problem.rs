//! RFC 9457 `application/problem+json` bodies. Details never echo request material (tokens,
//! header values), so a problem body is safe to log and to show a client.

use serde_json::{Map, Value};

pub const CONTENT_TYPE: &str = "application/problem+json";

/// A problem document.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub status: u16,
    pub title: &'static str,
    pub detail: String,
    /// Extension members (RFC 9457 §3.2), e.g. `allow` or `retry_after`.
    pub extensions: Map<String, Value>,
}

impl Problem {
    #[must_use]
    pub fn new(status: u16, detail: impl Into<String>) -> Self {
        Self {
            status,
            title: reason_phrase(status),
            detail: detail.into(),
            extensions: Map::new(),
        }
    }

    #[must_use]
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extensions.insert(key.to_owned(), value.into());
        self
    }

    /// The JSON body. `type` is `about:blank`: the status code says what the problem is.
    #[must_use]
    pub fn to_body(&self) -> Vec<u8> {
        let mut m = Map::new();
        m.insert("type".into(), "about:blank".into());
        m.insert("title".into(), self.title.into());
        m.insert("status".into(), self.status.into());
        m.insert("detail".into(), self.detail.clone().into());
        for (k, v) in &self.extensions {
            m.insert(k.clone(), v.clone());
        }
        // Serialising a map of plain JSON values cannot fail.
        serde_json::to_vec(&Value::Object(m)).unwrap_or_default()
    }
}

/// The standard reason phrase of the statuses the gate answers with.
#[must_use]
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_rfc9457_json() {
        let p = Problem::new(405, "GET is not allowed here").with("allow", vec!["POST"]);
        let v: Value = serde_json::from_slice(&p.to_body()).unwrap();
        assert_eq!(v["type"], "about:blank");
        assert_eq!(v["title"], "Method Not Allowed");
        assert_eq!(v["status"], 405);
        assert_eq!(v["allow"][0], "POST");
    }
}
