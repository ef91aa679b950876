//! The response store's indexes beside its entries: keys by path and by tag (for purges), and
//! each primary key's vary record (for lookups). One set per shard, kept in step with the
//! shard's entries under its lock.

use super::entry::Entry;
use crate::sharded::{Members, Sharded};

#[derive(Debug)]
pub(super) struct Indexes {
    pub(super) by_path: Sharded<String, Members>,
    pub(super) by_tag: Sharded<String, Members>,
    /// primary key -> the request headers its responses vary on, and how many stored variants
    /// use it (the record goes when the last one does, so the index stays bounded by the store).
    pub(super) vary: Sharded<String, (Vec<String>, usize)>,
    /// variant key -> its primary key.
    pub(super) primary_of: Sharded<String, String>,
}

impl Indexes {
    /// Empty indexes, each map split in `tables` (see [`Sharded::with_tables`]).
    pub(super) fn new(tables: usize) -> Self {
        Self {
            by_path: Sharded::with_tables(tables),
            by_tag: Sharded::with_tables(tables),
            vary: Sharded::with_tables(tables),
            primary_of: Sharded::with_tables(tables),
        }
    }

    /// Forgets `key` (its entry `e` left the store).
    pub(super) fn remove(&mut self, key: &str, e: &Entry) {
        if let Some(set) = self.by_path.get_mut(&e.path) {
            set.remove(key);
            if set.is_empty() {
                self.by_path.remove(&e.path);
            }
        }
        for tag in &e.tags {
            if let Some(set) = self.by_tag.get_mut(tag) {
                set.remove(key);
                if set.is_empty() {
                    self.by_tag.remove(tag);
                }
            }
        }
        if let Some(primary) = self.primary_of.remove(key) {
            if let Some((_, n)) = self.vary.get_mut(&primary) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.vary.remove(&primary);
                }
            }
        }
    }

    /// Records `key` (its entry `e` was just stored under `primary`, varying on `vary`).
    pub(super) fn add(&mut self, primary: &str, vary: Vec<String>, key: String, e: &Entry) {
        // A response that varies on nothing, for a resource with no vary record, is stored
        // under its primary key and needs none: lookups fall back to the primary key (most
        // resources never vary, and the record costs a miss two map entries).
        if !(vary.is_empty() && key == primary && !self.vary.contains_key(primary)) {
            let new_variant = self
                .primary_of
                .insert(key.clone(), primary.to_owned())
                .is_none();
            match self.vary.get_mut(primary) {
                Some((names, n)) => {
                    if *names != vary {
                        *names = vary;
                    }
                    if new_variant {
                        *n = n.saturating_add(1);
                    }
                }
                None => {
                    self.vary.insert(primary.to_owned(), (vary, 1));
                }
            }
        }
        for tag in &e.tags {
            match self.by_tag.get_mut(tag) {
                Some(set) => {
                    set.insert(key.clone());
                }
                None => {
                    self.by_tag.insert(tag.clone(), Members::one(key.clone()));
                }
            }
        }
        match self.by_path.get_mut(&e.path) {
            Some(set) => {
                set.insert(key);
            }
            None => {
                self.by_path.insert(e.path.clone(), Members::one(key));
            }
        }
    }
}
