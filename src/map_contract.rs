//! What both bounded maps ([`crate::bounded::Bounded`] on moka, [`crate::clock_map::ClockMap`])
//! promise their callers, as one set of tests each map's test module instantiates.

/// Tests for a map type with `new(capacity)`, `get(key, now)`, `insert(key, value, deadline,
/// weight, now)`, `remove`, `weight`, `live_weight(now)`, `len` and `is_empty`. Deadlines are
/// seconds apart, as real ones are (moka also expires in real time).
macro_rules! map_contract {
    ($map:ident) => {
        const S: u64 = 1_000_000_000;

        #[test]
        fn a_hot_entry_survives_a_scan_of_one_off_keys() {
            let c: $map<u64, u64> = $map::new(100);
            c.insert(0, 0, u64::MAX, 1, 0);
            for k in 1..10_000 {
                assert_eq!(c.get(&0, 1), Some(0), "hot entry lost before key {k}");
                c.insert(k, k, u64::MAX, 1, 1);
            }
            assert!(c.weight() <= 100);
        }

        #[test]
        fn entries_are_not_returned_past_their_deadline() {
            let c: $map<String, u32> = $map::new(10);
            c.insert("a".into(), 1, 100 * S, 1, 0);
            c.insert("z".into(), 26, 200 * S, 2, 0);
            assert_eq!(c.live_weight(99 * S), 3);
            assert_eq!(
                c.live_weight(100 * S),
                2,
                "an expired entry no longer counts"
            );
            assert!(c.remove("z"));
            assert_eq!(c.get("a", 99 * S), Some(1));
            assert_eq!(c.get("a", 100 * S), None);
            assert!(c.is_empty(), "an expired entry leaves on lookup");
            c.insert("b".into(), 2, 50 * S, 1, 50 * S);
            assert!(
                c.is_empty(),
                "an entry already past its deadline is not stored"
            );
        }

        #[test]
        fn weights_bound_the_map_and_an_oversize_entry_replaces_nothing_but_its_key() {
            let c: $map<u32, u32> = $map::new(10);
            for k in 1..=3 {
                c.insert(k, k, u64::MAX, 4, 0);
            }
            assert!(c.weight() <= 10);
            c.insert(3, 30, u64::MAX, 11, 0);
            assert_eq!(
                c.get(&3, 0),
                None,
                "the old value goes with an oversize replacement"
            );
            assert!(c.weight() <= 10);
        }
    };
}

pub(super) use map_contract;
