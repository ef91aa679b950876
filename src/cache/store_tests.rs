//! The response store's tests.

use super::*;
use crate::clock::ManualClock;

fn entry(clock: &ManualClock, path: &str, tags: &[&str], ttl_s: u64) -> Entry {
    let now = crate::clock::Clock::now_nanos(clock);
    Entry {
        status: 200,
        headers: vec![],
        body: Arc::from(&b"body"[..]),
        etag: "\"x\"".into(),
        path: path.into(),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        stored_at: now,
        fresh_until: now + ttl_s * 1_000_000_000,
        stale_until: now + ttl_s * 1_000_000_000,
    }
}

/// The largest entry the tests' stores are sized for (the gate's default).
const ENTRY: u64 = 1 << 20;

/// Walks every shard: its queues' links agree both ways, every node is in the map and in
/// exactly one queue, the byte counts add up to no more than the shard's budget, and the indexes
/// hold exactly the stored keys (see `S3Fifo::check`); every key is in its primary key's shard;
/// the shards' budgets add up to no more than the store's.
fn check(store: &Store) {
    let mut budgets = 0;
    for (i, shard) in store.shards.iter().enumerate() {
        let s = lock(&shard.entries);
        s.check();
        budgets += s.budget();
        for (key, primary) in s.keys() {
            assert!(
                std::ptr::eq(store.shard(&primary), shard),
                "{key} (of {primary}) in shard {i}"
            );
        }
    }
    assert!(budgets <= store.max_bytes);
    assert!(store.usage().0 <= store.max_bytes);
}

fn sized(clock: &ManualClock, path: &str, body: usize) -> Entry {
    let mut e = entry(clock, path, &["t"], 60);
    e.body = vec![b'x'; body].into();
    e
}

#[test]
fn a_scan_of_one_off_keys_leaves_the_entries_that_are_hit() {
    let clock = Arc::new(ManualClock::from_secs(1000));
    // Room for about a hundred 500-byte entries.
    let store = Store::new(70_000, ENTRY, Duration::from_secs(60), clock.clone());
    for i in 0..50 {
        let k = format!("hot{i}");
        store.insert(&k, vec![], k.clone(), sized(&clock, "/hot", 500));
        assert!(store.get(&k).is_some());
    }
    for i in 0..5_000 {
        let k = format!("scan{i}");
        store.insert(&k, vec![], k.clone(), sized(&clock, "/scan", 500));
        if i % 10 == 0 {
            // The hot set is used now and then during the scan, as a hot set is.
            for h in 0..50 {
                store.get(&format!("hot{h}"));
            }
        }
    }
    check(&store);
    let kept = (0..50)
        .filter(|i| store.get(&format!("hot{i}")).is_some())
        .count();
    assert_eq!(kept, 50, "a scan evicted entries in use");
    assert!(store.stats.evictions.load(Ordering::Relaxed) >= 4_900);
}

#[test]
fn a_key_evicted_unused_and_stored_again_goes_to_the_main_queue() {
    let clock = Arc::new(ManualClock::from_secs(1000));
    let store = Store::new(20_000, ENTRY, Duration::from_secs(60), clock.clone());
    store.insert("a", vec![], "a".into(), sized(&clock, "/a", 500));
    // Room for about thirty: "a" is evicted and the ghost, as long as the store, still
    // remembers it.
    for i in 0..40 {
        let k = format!("s{i}");
        store.insert(&k, vec![], k.clone(), sized(&clock, "/s", 500));
    }
    assert!(store.get("a").is_none(), "unused, it left with the scan");
    store.insert("a", vec![], "a".into(), sized(&clock, "/a", 500));
    assert_eq!(lock(&store.shard("a").entries).in_main("a"), Some(true));
    // In the main queue it outlives another scan through the small one, unused.
    for i in 0..100 {
        let k = format!("t{i}");
        store.insert(&k, vec![], k.clone(), sized(&clock, "/s", 500));
    }
    assert!(store.get("a").is_some());
    check(&store);
}

#[test]
fn entries_over_a_tenth_of_the_store_still_get_in() {
    let clock = Arc::new(ManualClock::from_secs(1000));
    // About four 930-byte entries fit; the small queue's tenth is less than one.
    let store = Store::new(4_000, ENTRY, Duration::from_secs(60), clock.clone());
    for k in ["h1", "h2", "h3", "h4", "x"] {
        store.insert(k, vec![], k.into(), sized(&clock, "/a", 800));
        assert!(store.get(k).is_some());
    }
    // Everything that was hit is in the main queue; each new key must still be stored, and
    // last long enough to be hit.
    for i in 0..20 {
        let k = format!("new{i}");
        store.insert(&k, vec![], k.clone(), sized(&clock, "/a", 800));
        assert!(store.get(&k).is_some(), "{k} was evicted by its own insert");
        check(&store);
    }
}

#[test]
fn an_entry_larger_than_the_store_is_not_kept_but_replaces_the_old_value() {
    let clock = Arc::new(ManualClock::from_secs(1000));
    let store = Store::new(4_000, ENTRY, Duration::from_secs(60), clock.clone());
    store.insert("k", vec![], "k".into(), sized(&clock, "/a", 100));
    store.insert("k", vec![], "k".into(), sized(&clock, "/a", 10_000));
    assert!(store.get("k").is_none());
    assert!(!store.has_path("/a"));
    assert_eq!(store.usage(), (0, 0));
    check(&store);
}

#[test]
fn expired_entries_leave_from_the_queue_heads_as_others_are_stored() {
    let clock = Arc::new(ManualClock::from_secs(1000));
    let store = Store::new(1 << 20, ENTRY, Duration::from_secs(60), clock.clone());
    for i in 0..10 {
        let k = format!("old{i}");
        store.insert(&k, vec![], k.clone(), entry(&clock, "/old", &[], 1));
    }
    clock.advance_nanos(2_000_000_000);
    for i in 0..5 {
        let k = format!("new{i}");
        store.insert(&k, vec![], k.clone(), entry(&clock, "/new", &[], 60));
    }
    assert_eq!(store.usage().1, 5, "two expired entries go per insert");
    assert!(!store.has_path("/old"));
    assert_eq!(store.stats.evictions.load(Ordering::Relaxed), 10);
    check(&store);
}

proptest::proptest! {
    #[test]
    fn the_queues_stay_consistent(ops in proptest::collection::vec((0u8..5, 0u16..40, 0usize..3_000), 1..400)) {
        let clock = Arc::new(ManualClock::from_secs(1000));
        let store = Store::new(16_000, ENTRY, Duration::from_secs(60), clock.clone());
        for (op, k, size) in ops {
            let key = format!("k{k}");
            match op {
                0 | 1 => {
                    let mut e = sized(&clock, &format!("/p{}", k % 7), size);
                    e.stale_until = e.stored_at + (size as u64 % 5) * 1_000_000_000;
                    store.insert(&key, vec![], key.clone(), e);
                }
                2 => {
                    store.get(&key);
                }
                3 => {
                    store.purge_path(&format!("/p{}", k % 7));
                }
                _ => clock.advance_nanos(700_000_000),
            }
            // Including: every key is indexed under its path, once.
            check(&store);
        }
    }
}

#[test]
fn freshness_on_our_clock_and_purges() {
    let clock = Arc::new(ManualClock::from_secs(1000));
    let store = Store::new(1 << 20, ENTRY, Duration::from_secs(60), clock.clone());
    store.insert("p", vec![], "k1".into(), entry(&clock, "/a", &["t1"], 10));
    store.insert(
        "p2",
        vec![],
        "k2".into(),
        entry(&clock, "/a/b", &["t1", "t2"], 10),
    );
    store.insert("p3", vec![], "k3".into(), entry(&clock, "/c", &[], 10));
    assert!(matches!(store.lookup("k1"), Lookup::Fresh(_)));
    clock.advance_nanos(10_000_000_000);
    assert!(
        matches!(store.lookup("k1"), Lookup::Miss),
        "expired exactly at ttl"
    );
    // Found expired, k1 left the store (an eviction); the others wait for a lookup, a purge,
    // or to reach a queue's head.
    assert_eq!(store.usage().1, 2);
    assert_eq!(store.stats.evictions.load(Ordering::Relaxed), 1);
    assert!(!store.purge_key("p", "k1"));
    assert_eq!(store.purge_tag("t2"), 1);
    assert_eq!(store.purge_prefix("/a"), 0);
    assert_eq!(store.purge_path("/c"), 1);
    assert_eq!(store.purge_path("/c"), 0);
    assert_eq!(store.usage(), (0, 0));
}

#[test]
fn a_replaced_entry_stays_indexed() {
    let clock = Arc::new(ManualClock::from_secs(1000));
    let store = Store::new(1 << 20, ENTRY, Duration::from_secs(60), clock.clone());
    store.insert("p", vec![], "k".into(), entry(&clock, "/a", &["old"], 10));
    store.insert("p", vec![], "k".into(), entry(&clock, "/a", &["new"], 10));
    assert!(store.has_path("/a"));
    assert_eq!(
        store.purge_tag("old"),
        0,
        "the old value's tags went with it"
    );
    assert_eq!(store.purge_tag("new"), 1);
    store.insert("p", vec![], "k".into(), entry(&clock, "/a", &[], 10));
    store.insert("p", vec![], "k".into(), entry(&clock, "/a", &[], 10));
    assert_eq!(store.purge_path("/a"), 1);
    assert!(!store.has_path("/a"));
}

#[test]
fn vary_records_leave_with_their_last_variant() {
    let clock = Arc::new(ManualClock::from_secs(1000));
    let store = Store::new(1 << 20, ENTRY, Duration::from_secs(60), clock.clone());
    let vary = vec!["accept-language".to_owned()];
    store.insert(
        "p",
        vary.clone(),
        "p en".into(),
        entry(&clock, "/a", &[], 10),
    );
    store.insert(
        "p",
        vary.clone(),
        "p fr".into(),
        entry(&clock, "/a", &[], 10),
    );
    store.insert(
        "p",
        vary.clone(),
        "p fr".into(),
        entry(&clock, "/a", &[], 10),
    );
    // A resource that varies on nothing needs no record: it is under its primary key.
    store.insert("q", vec![], "q".into(), entry(&clock, "/b", &[], 10));
    assert_eq!(store.primaries(), 1);
    assert_eq!(store.vary_of("q"), None);
    assert!(matches!(store.lookup("q"), Lookup::Fresh(_)));
    assert!(store.purge_key("p", "p en"));
    assert_eq!(store.vary_of("p"), Some(vary));
    assert!(store.purge_key("p", "p fr"));
    assert_eq!(store.vary_of("p"), None);
    assert_eq!(store.primaries(), 0);
}

#[test]
fn a_resource_that_starts_to_vary_keeps_its_record_until_its_last_variant_goes() {
    let clock = Arc::new(ManualClock::from_secs(1000));
    let store = Store::new(1 << 20, ENTRY, Duration::from_secs(60), clock.clone());
    store.insert("p", vec![], "p".into(), entry(&clock, "/a", &[], 10));
    let vary = vec!["accept".to_owned()];
    store.insert(
        "p",
        vary.clone(),
        "p accept=1:x".into(),
        entry(&clock, "/a", &[], 10),
    );
    assert_eq!(store.vary_of("p"), Some(vary));
    // Back to varying on nothing: the record now says so, and counts that variant too.
    store.insert("p", vec![], "p".into(), entry(&clock, "/a", &[], 10));
    assert_eq!(store.vary_of("p"), Some(vec![]));
    assert!(store.purge_key("p", "p accept=1:x"));
    assert_eq!(store.vary_of("p"), Some(vec![]));
    assert!(store.purge_key("p", "p"));
    assert_eq!(store.vary_of("p"), None);
    assert_eq!(store.purge_path("/a"), 0);
}

#[test]
fn vary_records_are_bounded_by_the_store() {
    let clock = Arc::new(ManualClock::from_secs(1000));
    // Room for a few entries only: every insert beyond that evicts one.
    let store = Store::new(2_000, ENTRY, Duration::from_secs(60), clock.clone());
    for i in 0..5_000 {
        let p = format!("p{i}");
        let key = format!("{p} accept-");
        store.insert(&p, vec!["accept".into()], key, entry(&clock, "/a", &[], 10));
    }
    let (_, entries) = store.usage();
    assert!(
        store.primaries() as u64 <= entries,
        "{} vary records for {entries} entries",
        store.primaries()
    );
}

#[test]
fn a_purge_racing_an_insert_of_the_same_key_keeps_the_new_value_indexed() {
    let clock = Arc::new(ManualClock::from_secs(1000));
    let store = Arc::new(Store::new(
        1 << 24,
        ENTRY,
        Duration::from_secs(60),
        clock.clone(),
    ));
    let writer = {
        let (store, clock) = (store.clone(), clock.clone());
        std::thread::spawn(move || {
            for _ in 0..2_000 {
                store.insert("k", vec![], "k".into(), entry(&clock, "/a", &["t"], 10));
            }
        })
    };
    for _ in 0..2_000 {
        store.purge_path("/a");
    }
    writer.join().unwrap();
    // Whatever the interleaving, a stored value is findable by its path and tag.
    if store.get("k").is_some() {
        assert!(store.has_path("/a"));
        assert_eq!(store.purge_tag("t"), 1);
    }
    assert!(store.get("k").is_none());
}

#[test]
fn stale_is_served_while_the_resource_revalidates() {
    let clock = Arc::new(ManualClock::from_secs(1000));
    let store = Store::new(1 << 20, ENTRY, Duration::from_secs(60), clock.clone());
    let mut e = entry(&clock, "/a", &[], 10);
    e.stale_until = e.fresh_until + 30_000_000_000;
    store.insert("p", vec!["accept".into()], "p accept=fr".into(), e);
    clock.advance_nanos(15_000_000_000);
    assert!(matches!(
        store.lookup_variant("p accept=fr", "p"),
        Lookup::Miss
    ));
    assert!(store.begin_flight("p"));
    assert!(matches!(
        store.lookup_variant("p accept=fr", "p"),
        Lookup::Stale(_)
    ));
}

#[test]
fn flights() {
    let clock = Arc::new(ManualClock::from_secs(1));
    let store = Arc::new(Store::new(1 << 20, ENTRY, Duration::from_secs(60), clock));
    assert!(store.begin_flight("k"));
    assert!(!store.begin_flight("k"));
    let s2 = store.clone();
    let waiter = std::thread::spawn(move || s2.wait_flight("k", Duration::from_secs(5)));
    store.end_flight("k");
    waiter.join().unwrap();
    assert!(store.begin_flight("k"));
    store.wait_flight("k", Duration::from_millis(1)); // times out, returns
}

// Shards. The tests above run on stores small enough to be one shard, as the store always was;
// these run on several.

#[test]
fn small_stores_are_one_shard_and_large_ones_split_in_equal_budgets() {
    const MIB: u64 = 1 << 20;
    // Every shard at least 8 MiB and eight of the largest entries; a power of two, at most 16.
    assert_eq!(shard_count(0, MIB), 1);
    assert_eq!(shard_count(16 * MIB - 1, MIB), 1);
    assert_eq!(shard_count(16 * MIB, MIB), 2);
    assert_eq!(shard_count(48 * MIB, MIB), 4);
    assert_eq!(shard_count(64 * MIB, MIB), 8, "the default store");
    assert_eq!(shard_count(128 * MIB, MIB), 16);
    assert_eq!(shard_count(1 << 40, MIB), 16);
    assert_eq!(
        shard_count(64 * MIB, 4 * MIB),
        2,
        "eight 4 MiB entries a shard"
    );
    assert_eq!(shard_count(64 * MIB, 8 * MIB), 1);
    assert_eq!(shard_count(u64::MAX, u64::MAX), 1);
    let clock = Arc::new(ManualClock::from_secs(1000));
    let store = |max| Store::new(max, ENTRY, Duration::from_secs(60), clock.clone());
    for max in [2_000, 70_000, 1 << 20, 16 * MIB - 1] {
        let small = store(max);
        assert_eq!(small.shards.len(), 1, "{max}");
        assert_eq!(lock(&small.shards[0].entries).tables(), 32);
    }
    let big = store(100 * MIB);
    assert_eq!(big.shards.len(), 8);
    for s in &big.shards {
        let s = lock(&s.entries);
        // Equal budgets, and the store's 32 tables a map shared out.
        assert_eq!((s.budget(), s.tables()), (100 * MIB / 8, 4));
    }
}

/// A 16-shard store holding 2 000 resources: ten paths of 200 (`/items/0` to `/items/9`), tagged
/// `even` or `odd` by their number.
fn spread(clock: &Arc<ManualClock>) -> Store {
    let store = Store::new(256 << 20, ENTRY, Duration::from_secs(60), clock.clone());
    assert_eq!(store.shards.len(), 16);
    for i in 0..2_000 {
        let p = format!("p{i}");
        let tag = if i % 2 == 0 { "even" } else { "odd" };
        let e = entry(clock, &format!("/items/{}", i % 10), &[tag], 60);
        store.insert(&p, vec![], p.clone(), e);
    }
    store
}

#[test]
fn purges_and_totals_cover_every_shard() {
    let clock = Arc::new(ManualClock::from_secs(1000));
    let store = spread(&clock);
    check(&store);
    for s in &store.shards {
        // About 125 each: the resources are spread, so every purge below crosses shards.
        assert!(lock(&s.entries).len() > 50);
    }
    let weight = u64::from(entry(&clock, "/items/0", &["even"], 60).weight());
    assert_eq!(store.usage(), (2_000 * weight, 2_000));
    assert!(store.has_path("/items/3"));
    assert_eq!(store.purge_path("/items/3"), 200);
    assert!(!store.has_path("/items/3"));
    // "/items/1" is a prefix of no other path.
    assert_eq!(store.purge_prefix("/items/1"), 200);
    // Both purged paths held odd numbers only.
    assert_eq!(store.purge_tag("even"), 1_000);
    assert_eq!(store.purge_paths_where(|p| p.ends_with('5')), 200);
    assert_eq!(store.usage(), (400 * weight, 400));
    check(&store);
    store.clear();
    assert_eq!(store.usage(), (0, 0));
    assert!(!store.has_path("/items/7"));
    for s in &store.shards {
        let s = lock(&s.entries);
        assert_eq!((s.len(), s.budget()), (0, 16 << 20), "emptied, budget kept");
    }
    check(&store);
}

#[test]
fn a_resources_variants_vary_record_and_flight_share_its_shard() {
    let clock = Arc::new(ManualClock::from_secs(1000));
    let store = Store::new(256 << 20, ENTRY, Duration::from_secs(60), clock.clone());
    let vary = vec!["accept-language".to_owned()];
    let variant = |p: &str, lang: &str| format!("{p} accept-language={lang}");
    for r in 0..200 {
        let p = format!("GET /r{r}");
        for lang in ["en", "fr", "de"] {
            let mut e = entry(&clock, &format!("/r{r}"), &[], 10);
            e.stale_until = e.fresh_until + 30_000_000_000;
            store.insert(&p, vary.clone(), variant(&p, lang), e);
        }
    }
    // Including: every variant is in its primary key's shard.
    check(&store);
    assert_eq!(store.primaries(), 200);
    let holding = |p: &str| {
        store
            .shards
            .iter()
            .filter(|s| {
                let s = lock(&s.entries);
                s.vary_of(p).is_some() || s.keys().iter().any(|(_, primary)| primary == p)
            })
            .count()
    };
    let with_records = store
        .shards
        .iter()
        .filter(|s| lock(&s.entries).primaries() > 0)
        .count();
    assert!(with_records > 8, "resources spread: {with_records} shards");
    for r in 0..200 {
        let p = format!("GET /r{r}");
        assert_eq!(holding(&p), 1, "{p}: its variants and record in one shard");
        assert_eq!(store.vary_of(&p), Some(vary.clone()));
        assert!(matches!(
            store.lookup_variant(&variant(&p, "fr"), &p),
            Lookup::Fresh(_)
        ));
        assert!(store.purge_key(&p, &variant(&p, "en")));
        assert!(store.purge_key(&p, &variant(&p, "de")));
        assert_eq!(store.vary_of(&p), Some(vary.clone()), "one variant left");
    }
    check(&store);
    // A resource's flight is in its shard: stale variants are served while it is on, and only
    // for that resource.
    clock.advance_nanos(15_000_000_000);
    for r in (0..200).step_by(2) {
        assert!(store.begin_flight(&format!("GET /r{r}")));
    }
    for r in 0..200 {
        let p = format!("GET /r{r}");
        let found = store.lookup_variant(&variant(&p, "fr"), &p);
        if r % 2 == 0 {
            assert!(matches!(found, Lookup::Stale(_)), "{p}");
            store.end_flight(&p);
        } else {
            assert!(matches!(found, Lookup::Miss), "{p}");
        }
        assert!(store.purge_key(&p, &variant(&p, "fr")));
        assert_eq!(
            store.vary_of(&p),
            None,
            "{p}: the record left with the last variant"
        );
    }
    assert_eq!(store.primaries(), 0);
    assert_eq!(store.usage(), (0, 0));
    check(&store);
}

#[test]
fn a_flight_wakes_its_waiter_in_any_shard() {
    let clock = Arc::new(ManualClock::from_secs(1));
    let store = Arc::new(Store::new(256 << 20, ENTRY, Duration::from_secs(60), clock));
    let keys: Vec<String> = (0..64).map(|i| format!("k{i}")).collect();
    for k in &keys {
        assert!(store.begin_flight(k));
    }
    let waiters: Vec<_> = keys
        .iter()
        .map(|k| {
            let (store, k) = (store.clone(), k.clone());
            // Ended or not, a waiter returns by its timeout: the join below would hang for 60 s
            // if a flight's end did not wake its waiter.
            std::thread::spawn(move || {
                let t = std::time::Instant::now();
                store.wait_flight(&k, Duration::from_secs(60));
                t.elapsed()
            })
        })
        .collect();
    for k in &keys {
        store.end_flight(k);
    }
    for w in waiters {
        assert!(w.join().unwrap() < Duration::from_secs(30));
    }
    for k in &keys {
        assert!(store.begin_flight(k), "{k} ended");
    }
}

#[test]
fn an_entry_larger_than_its_shard_is_not_kept_though_the_store_has_room() {
    let clock = Arc::new(ManualClock::from_secs(1000));
    let store = Store::with_shards(4, 16_000, Duration::from_secs(60), clock.clone());
    store.insert("k", vec![], "k".into(), sized(&clock, "/a", 100));
    store.insert("k", vec![], "k".into(), sized(&clock, "/a", 5_000));
    assert!(store.get("k").is_none(), "over its shard's 4 000 bytes");
    assert!(!store.has_path("/a"));
    store.insert("k", vec![], "k".into(), sized(&clock, "/a", 3_000));
    assert!(store.get("k").is_some());
    check(&store);
}

/// A small xorshift generator: the stress test's threads each draw their own reproducible ops.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn concurrent_inserts_lookups_and_purges_leave_every_shard_consistent() {
    let clock = Arc::new(ManualClock::from_secs(1000));
    // Four shards of 20 000 bytes: entries of up to 3 KB keep every shard evicting.
    let store = Arc::new(Store::with_shards(
        4,
        80_000,
        Duration::from_secs(60),
        clock.clone(),
    ));
    let workers: Vec<_> = (1..=4u64)
        .map(|t| {
            let (store, clock) = (store.clone(), clock.clone());
            std::thread::spawn(move || {
                let mut rng = Rng(t.wrapping_mul(0x9E37_79B9_7F4A_7C15));
                for _ in 0..50_000 {
                    let r = rng.below(300);
                    let p = format!("p{r}");
                    // A third of the resources vary, over three variants.
                    let (vary, key) = if r % 3 == 0 {
                        (
                            vec!["accept".to_owned()],
                            format!("{p} accept={}", rng.below(3)),
                        )
                    } else {
                        (vec![], p.clone())
                    };
                    let path = format!("/r{}", r % 37);
                    match rng.below(100) {
                        0..40 => {
                            let size = usize::try_from(rng.below(3_000)).unwrap();
                            let mut e = sized(&clock, &path, size);
                            e.tags = vec![format!("t{}", r % 5)];
                            e.fresh_until = e.stored_at + rng.below(3) * 1_000_000_000;
                            e.stale_until = e.fresh_until + rng.below(3) * 1_000_000_000;
                            store.insert(&p, vary, key, e);
                        }
                        40..80 => {
                            store.lookup_variant(&key, &p);
                        }
                        80..85 => {
                            store.purge_key(&p, &key);
                        }
                        85..89 => {
                            store.purge_path(&path);
                        }
                        89..91 => {
                            store.purge_tag(&format!("t{}", r % 5));
                        }
                        91..93 => {
                            store.purge_prefix(&format!("/r{}", r % 4));
                        }
                        93..96 => {
                            if store.begin_flight(&p) {
                                store.lookup_variant(&key, &p);
                                store.end_flight(&p);
                            }
                        }
                        96..98 => clock.advance_nanos(200_000_000),
                        98 => {
                            let (bytes, _) = store.usage();
                            assert!(bytes <= store.max_bytes);
                            let _ = (store.has_path(&path), store.vary_of(&p));
                        }
                        _ => {
                            if rng.below(50) == 0 {
                                store.clear();
                            }
                        }
                    }
                }
            })
        })
        .collect();
    // Meanwhile: each shard is consistent whenever its lock is free.
    while !workers.iter().all(std::thread::JoinHandle::is_finished) {
        check(&store);
    }
    for w in workers {
        w.join().unwrap();
    }
    check(&store);
    assert!(store.usage().0 <= store.max_bytes);
    assert!(store.stats.evictions.load(Ordering::Relaxed) > 0);
    // Every shard still stores and serves.
    for i in 0..100 {
        let p = format!("after{i}");
        store.insert(&p, vec![], p.clone(), sized(&clock, "/after", 100));
        assert!(store.get(&p).is_some());
    }
    let used = store
        .shards
        .iter()
        .filter(|s| lock(&s.entries).has_path("/after"))
        .count();
    assert_eq!(used, 4);
    check(&store);
}
