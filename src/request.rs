//! What the gate reads of a request: a few facts borrowed from the caller (the WSGI environ), and
//! the values of the headers the gate's stages asked for when it was built, by slot.

/// The values of the headers named by [`crate::gate::Gate::header_keys`], by position. A slice of them does;
/// the Python binding reads each from the WSGI environ only when a stage asks for it, so a route
/// that caches nothing never looks up the cache's fourteen keyed headers.
pub trait HeaderSource: std::fmt::Debug {
    fn header(&self, slot: usize) -> Option<&str>;
}

impl HeaderSource for [Option<&str>] {
    fn header(&self, slot: usize) -> Option<&str> {
        self.get(slot).copied().flatten()
    }
}

impl<const N: usize> HeaderSource for [Option<&str>; N] {
    fn header(&self, slot: usize) -> Option<&str> {
        self.as_slice().header(slot)
    }
}

impl HeaderSource for Vec<Option<&str>> {
    fn header(&self, slot: usize) -> Option<&str> {
        self.as_slice().header(slot)
    }
}

/// What the gate reads of a request. Strings borrow from the caller (the WSGI environ).
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The path as the framework behind will read it: WSGI `PATH_INFO`, already decoded once.
    pub path: &'a str,
    pub query: &'a str,
    pub remote_addr: Option<&'a str>,
    /// Values of the headers named by [`crate::gate::Gate::header_keys`], by position.
    pub headers: &'a (dyn HeaderSource + 'a),
}
