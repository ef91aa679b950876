//! The answers the gate gives itself, instead of forwarding a request to the app.

use std::sync::Arc;

use crate::http::Header;
use crate::problem::{self, Problem};

/// A response the gate sends itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<Header>,
    pub body: Arc<[u8]>,
}

impl Response {
    /// A problem answer (RFC 9457), its content type first.
    #[must_use]
    pub fn problem(p: &Problem, mut headers: Vec<Header>) -> Self {
        headers.insert(0, ("content-type", problem::CONTENT_TYPE.to_owned()));
        Self {
            status: p.status,
            headers,
            body: p.to_body().into(),
        }
    }
}
