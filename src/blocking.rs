//! Where the slow part of a check runs. The core never blocks on its own terms: a signature check
//! on a token-cache miss, a Redis round trip or a wait for a coalesced cache miss goes through a
//! [`Blocking`] the caller supplies, so the Python binding can release the GIL for exactly that
//! part and tests can run it in place.

/// Runs the heavy part of a check (a signature on a cache miss) somewhere the caller chooses:
/// the Python binding releases the GIL for it.
pub trait Blocking {
    fn run(&self, f: &mut (dyn FnMut() + Send));
}

/// Runs in place.
#[derive(Debug)]
pub struct InPlace;

impl Blocking for InPlace {
    fn run(&self, f: &mut (dyn FnMut() + Send)) {
        f();
    }
}
