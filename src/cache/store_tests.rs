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
        ext: OnceLock::new(),
    }
}

/// Walks both queues: links agree both ways, every node is in the map and in exactly one
/// queue, and the byte counts add up.
fn check(store: &Store) {
    let inner = lock(&store.inner);
    let mut seen = 0;
    for (main, q) in [(false, inner.small), (true, inner.main)] {
        let (mut i, mut prev, mut bytes) = (q.head, NIL, 0);
        while i != NIL {
            let n = inner.node(i);
            assert_eq!(n.prev, prev);
            assert_eq!(n.main, main);
            assert_eq!(inner.map.get(&n.key), Some(&i));
            bytes += u64::from(n.weight);
            seen += 1;
            (prev, i) = (i, n.next);
        }
        assert_eq!(q.tail, prev);
        assert_eq!(q.bytes, bytes);
    }
    assert_eq!(seen, inner.map.len());
    assert_eq!(seen + inner.free.len(), inner.nodes.len());
    assert!(inner.bytes() <= store.max_bytes);
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
    let store = Store::new(70_000, Duration::from_secs(60), clock.clone());
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
    let store = Store::new(20_000, Duration::from_secs(60), clock.clone());
    store.insert("a", vec![], "a".into(), sized(&clock, "/a", 500));
    // Room for about thirty: "a" is evicted and the ghost, as long as the store, still
    // remembers it.
    for i in 0..40 {
        let k = format!("s{i}");
        store.insert(&k, vec![], k.clone(), sized(&clock, "/s", 500));
    }
    assert!(store.get("a").is_none(), "unused, it left with the scan");
    store.insert("a", vec![], "a".into(), sized(&clock, "/a", 500));
    {
        let inner = lock(&store.inner);
        assert!(inner.node(*inner.map.get("a").unwrap()).main);
    }
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
    let store = Store::new(4_000, Duration::from_secs(60), clock.clone());
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
    let store = Store::new(4_000, Duration::from_secs(60), clock.clone());
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
    let store = Store::new(1 << 20, Duration::from_secs(60), clock.clone());
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
        let store = Store::new(16_000, Duration::from_secs(60), clock.clone());
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
            check(&store);
            let inner = lock(&store.inner);
            let indexed: usize = inner.indexes.by_path.values().map(Members::len).sum();
            proptest::prop_assert_eq!(indexed, inner.map.len());
        }
    }
}

#[test]
fn freshness_on_our_clock_and_purges() {
    let clock = Arc::new(ManualClock::from_secs(1000));
    let store = Store::new(1 << 20, Duration::from_secs(60), clock.clone());
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
    assert!(!store.purge_key("k1"));
    assert_eq!(store.purge_tag("t2"), 1);
    assert_eq!(store.purge_prefix("/a"), 0);
    assert_eq!(store.purge_path("/c"), 1);
    assert_eq!(store.purge_path("/c"), 0);
    assert_eq!(store.usage(), (0, 0));
}

#[test]
fn a_replaced_entry_stays_indexed() {
    let clock = Arc::new(ManualClock::from_secs(1000));
    let store = Store::new(1 << 20, Duration::from_secs(60), clock.clone());
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
    let store = Store::new(1 << 20, Duration::from_secs(60), clock.clone());
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
    assert!(store.purge_key("p en"));
    assert_eq!(store.vary_of("p"), Some(vary));
    assert!(store.purge_key("p fr"));
    assert_eq!(store.vary_of("p"), None);
    assert_eq!(store.primaries(), 0);
}

#[test]
fn a_resource_that_starts_to_vary_keeps_its_record_until_its_last_variant_goes() {
    let clock = Arc::new(ManualClock::from_secs(1000));
    let store = Store::new(1 << 20, Duration::from_secs(60), clock.clone());
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
    assert!(store.purge_key("p accept=1:x"));
    assert_eq!(store.vary_of("p"), Some(vec![]));
    assert!(store.purge_key("p"));
    assert_eq!(store.vary_of("p"), None);
    assert_eq!(store.purge_path("/a"), 0);
}

#[test]
fn vary_records_are_bounded_by_the_store() {
    let clock = Arc::new(ManualClock::from_secs(1000));
    // Room for a few entries only: every insert beyond that evicts one.
    let store = Store::new(2_000, Duration::from_secs(60), clock.clone());
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
    let store = Arc::new(Store::new(1 << 24, Duration::from_secs(60), clock.clone()));
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
    let store = Store::new(1 << 20, Duration::from_secs(60), clock.clone());
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
    let store = Arc::new(Store::new(1 << 20, Duration::from_secs(60), clock));
    assert!(store.begin_flight("k"));
    assert!(!store.begin_flight("k"));
    let s2 = store.clone();
    let waiter = std::thread::spawn(move || s2.wait_flight("k", Duration::from_secs(5)));
    store.end_flight("k");
    waiter.join().unwrap();
    assert!(store.begin_flight("k"));
    store.wait_flight("k", Duration::from_millis(1)); // times out, returns
}
