//! Our keyed GCRA against governor, the limiter it is modelled on: for one quota, the same
//! sequences of requests and costs on a manual clock get the same decisions from both.
//!
//! governor's `Quota` is a replenish interval and a burst; ours is `count` per period, whose
//! emission interval is `period / count` rounded to the nanosecond, so governor is built from that
//! interval. A cost above the burst is `InsufficientCapacity` in governor and a refusal with no
//! retry time here.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use ferrogate::clock::ManualClock;
use ferrogate::ratelimit::{Limiter, Quota};
use governor::clock::FakeRelativeClock;
use governor::{Quota as GovQuota, RateLimiter};
use proptest::prelude::*;

const EPOCH: u64 = 1_700_000_000_000_000_000;

fn parity(quota: Quota, steps: &[(u64, u32)]) -> Result<(), TestCaseError> {
    let ours_clock = Arc::new(ManualClock::new(EPOCH));
    let ours = Limiter::with_clock(&[quota], 16, ours_clock.clone()).unwrap();
    let gov_clock = FakeRelativeClock::default();
    let burst = NonZeroU32::new(u32::try_from(quota.burst).unwrap()).unwrap();
    let gov_quota = GovQuota::with_period(Duration::from_nanos(quota.emission_nanos()))
        .unwrap()
        .allow_burst(burst);
    let gov = RateLimiter::direct_with_clock(gov_quota, gov_clock.clone());
    for (i, &(advance, cost)) in steps.iter().enumerate() {
        ours_clock.advance_nanos(advance);
        gov_clock.advance(Duration::from_nanos(advance));
        let theirs = match NonZeroU32::new(cost) {
            Some(n) => matches!(gov.check_n(n), Ok(Ok(()))),
            None => true,
        };
        let mine = ours.hit(b"k", u64::from(cost)).allowed;
        prop_assert_eq!(
            mine,
            theirs,
            "step {} (advance {} ns, cost {}) of {:?} under {}",
            i,
            advance,
            cost,
            steps,
            quota
        );
    }
    Ok(())
}

proptest! {
    #[test]
    fn single_quota_decisions_match_governor(
        count in 1u64..50,
        period in prop_oneof![Just(1u64), Just(60), 1u64..3600],
        burst in 1u64..20,
        steps in proptest::collection::vec(
            (prop_oneof![Just(0u64), 0u64..2_000_000_000, 0u64..200_000_000_000], 1u32..6),
            1..120,
        ),
    ) {
        let quota = Quota::with_burst(count, period, burst).unwrap();
        parity(quota, &steps)?;
    }
}

#[test]
fn a_burst_then_the_refill_interval() {
    let quota = Quota::with_burst(10, 1, 3).unwrap();
    let tenth = 100_000_000;
    parity(
        quota,
        &[
            (0, 1),
            (0, 1),
            (0, 1),
            (0, 1),
            (tenth - 1, 1),
            (1, 1),
            (0, 1),
            (0, 4),
            (5 * tenth, 3),
        ],
    )
    .unwrap();
}
