//! One stored response, and what it weighs against the store's budget.

use std::sync::Arc;

/// One stored response.
pub struct Entry {
    pub status: u16,
    /// Response headers as stored (hop-by-hop, `Set-Cookie` and tag headers removed).
    pub headers: Vec<(String, String)>,
    pub body: Arc<[u8]>,
    pub etag: String,
    pub path: String,
    pub tags: Vec<String>,
    /// Clock nanoseconds.
    pub stored_at: u64,
    pub fresh_until: u64,
    /// Until when a stale entry may be served while one request revalidates.
    pub stale_until: u64,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("status", &self.status)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Entry {
    /// Bytes it counts against the store: body, headers and path, plus a fixed 128 for the
    /// entry's own bookkeeping.
    pub(super) fn weight(&self) -> u32 {
        let headers: usize = self
            .headers
            .iter()
            .map(|(k, v)| k.len() + v.len() + 16)
            .sum();
        u32::try_from(self.body.len() + headers + self.path.len() + 128).unwrap_or(u32::MAX)
    }

    /// Whole seconds since stored (the `Age` header).
    #[must_use]
    pub fn age(&self, now: u64) -> u64 {
        now.saturating_sub(self.stored_at) / 1_000_000_000
    }
}
