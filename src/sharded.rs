//! A hash map split in tables by key hash (32 unless told), for the store's maps that grow with
//! what is cached.
//!
//! A hashbrown table grows by allocating a table twice the size and moving every entry into it,
//! in the insert that crosses the load factor. For the store's indexes at about 114 000 paths that
//! one insert took some 50 ms (mostly the new table's page faults on a VM). Split in 32, each
//! growth moves a 32nd of the entries: the same total work, in steps that no request notices.
//! A store split in shards splits each shard's maps in fewer tables ([`Sharded::with_tables`]), so
//! that the store as a whole still has 32 tables per map.

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hash};

const SHARDS: usize = 32;

/// The hasher for the store and its indexes. Keys carry client input (paths, queries), so it is
/// seeded per process; foldhash is several times cheaper than std's `SipHash` on these keys,
/// and a miss hashes its key into four maps.
pub type Hasher = foldhash::fast::RandomState;

pub struct Sharded<K, V> {
    /// Picks the table; each table hashes with its own seed, so the two hashes are independent.
    pick: Hasher,
    /// 64 - log2(tables): the hash's top bits pick the table.
    shift: u32,
    tables: Box<[HashMap<K, V, Hasher>]>,
}

/// Which of `2^(64 - shift)` slots (a power of two) `hash` picks: its top `64 - shift` bits.
/// A shift of 64, one slot, keeps none of them.
#[must_use]
pub fn slot(hash: u64, shift: u32) -> usize {
    usize::try_from(hash.checked_shr(shift).unwrap_or(0)).unwrap_or(0)
}

impl<K, V> Default for Sharded<K, V> {
    fn default() -> Self {
        Self::with_tables(SHARDS)
    }
}

impl<K, V> Sharded<K, V> {
    /// A map split in `n` tables (a power of two).
    #[must_use]
    pub fn with_tables(n: usize) -> Self {
        assert!(n.is_power_of_two(), "{n} tables");
        Self {
            pick: Hasher::default(),
            shift: 64 - n.trailing_zeros(),
            tables: (0..n)
                .map(|_| HashMap::with_hasher(Hasher::default()))
                .collect(),
        }
    }
}

impl<K, V> std::fmt::Debug for Sharded<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let len: usize = self.tables.iter().map(HashMap::len).sum();
        f.debug_struct("Sharded")
            .field("len", &len)
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq, V> Sharded<K, V> {
    fn table<Q: Hash + ?Sized>(&self, key: &Q) -> usize {
        // The top bits: hashbrown uses the low ones for the bucket and the top 7 for its tags,
        // but this hash is from another seed, so any bits are independent of the table's own.
        slot(self.pick.hash_one(key), self.shift)
    }

    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.tables[self.table(key)].get(key)
    }

    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let t = self.table(key);
        self.tables[t].get_mut(key)
    }

    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.tables[self.table(key)].contains_key(key)
    }

    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let t = self.table(&key);
        self.tables[t].insert(key, value)
    }

    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let t = self.table(key);
        self.tables[t].remove(key)
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.tables.iter().map(HashMap::len).sum()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.tables.iter().all(HashMap::is_empty)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.tables.iter().flat_map(HashMap::iter)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.tables.iter().flat_map(HashMap::values)
    }
}

/// Past this many keys a [`Members`] set is split into a [`Sharded`] one.
const SPLIT: usize = 2_048;

/// The keys stored under one path or tag: a plain set while small (most paths hold a key or
/// two), sharded once large (a tag on every article can hold most of the store, and growing that
/// one set stalled an insert as a big index table did).
#[derive(Debug)]
pub enum Members {
    Few(HashSet<String, Hasher>),
    Many(Sharded<String, ()>),
}

impl Members {
    #[must_use]
    pub fn one(key: String) -> Self {
        let mut set = HashSet::with_hasher(Hasher::default());
        set.insert(key);
        Self::Few(set)
    }

    pub fn insert(&mut self, key: String) {
        match self {
            Self::Few(set) => {
                set.insert(key);
                if set.len() > SPLIT {
                    let mut many = Sharded::default();
                    for k in set.drain() {
                        many.insert(k, ());
                    }
                    *self = Self::Many(many);
                }
            }
            Self::Many(map) => {
                map.insert(key, ());
            }
        }
    }

    pub fn remove(&mut self, key: &str) {
        match self {
            Self::Few(set) => {
                set.remove(key);
            }
            Self::Many(map) => {
                map.remove(key);
            }
        }
    }

    #[must_use]
    pub fn len(&self) -> usize {
        match self {
            Self::Few(set) => set.len(),
            Self::Many(map) => map.len(),
        }
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        match self {
            Self::Few(set) => set.is_empty(),
            Self::Many(map) => map.is_empty(),
        }
    }

    /// The keys, copied (the caller removes them from the store, which changes this set).
    #[must_use]
    pub fn keys(&self) -> Vec<String> {
        match self {
            Self::Few(set) => set.iter().cloned().collect(),
            Self::Many(map) => map.iter().map(|(k, ())| k.clone()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_as_one_map() {
        let mut m: Sharded<String, usize> = Sharded::default();
        for i in 0..1_000 {
            assert_eq!(m.insert(format!("k{i}"), i), None);
        }
        assert_eq!(m.insert("k7".into(), 70), Some(7));
        assert_eq!(m.len(), 1_000);
        assert_eq!(m.get("k7"), Some(&70));
        *m.get_mut("k8").unwrap() += 1;
        assert_eq!(m.get("k8"), Some(&9));
        assert!(m.contains_key("k999") && !m.contains_key("k1000"));
        assert_eq!(m.remove("k0"), Some(0));
        assert_eq!(m.remove("k0"), None);
        assert_eq!(m.iter().count(), 999);
        assert_eq!(
            m.values().sum::<usize>(),
            (1..1_000).sum::<usize>() + 63 + 1
        );
        // Spread over the tables, not piled in one.
        assert!(m.tables.iter().all(|t| t.len() > 10));
        for i in 1..1_000 {
            m.remove(format!("k{i}").as_str());
        }
        assert!(m.is_empty());
    }

    #[test]
    fn any_power_of_two_tables_behave_as_one_map() {
        for n in [1, 2, 4, 32] {
            let mut m: Sharded<u32, u32> = Sharded::with_tables(n);
            for i in 0..1_000 {
                m.insert(i, i);
            }
            assert_eq!(m.len(), 1_000);
            assert!((0..1_000).all(|i| m.get(&i) == Some(&i)));
            assert_eq!(m.tables.len(), n);
            assert!(
                m.tables.iter().all(|t| t.len() > 1_000 / n / 2),
                "{n}: spread"
            );
        }
    }

    #[test]
    fn members_split_when_large_and_keep_every_key() {
        let mut m = Members::one("k0".into());
        for i in 0..5_000 {
            m.insert(format!("k{i}"));
        }
        assert!(matches!(m, Members::Many(_)));
        assert_eq!(m.len(), 5_000);
        let mut keys = m.keys();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), 5_000);
        for i in 0..5_000 {
            m.remove(&format!("k{i}"));
        }
        assert!(m.is_empty());
    }
}
