//! Property tests for rate limiting: hostile input never panics, and the limiter never allows more
//! than the quota at one instant.

use std::sync::Arc;

use ferrogate::clock::ManualClock;
use ferrogate::config::GateConfig;
use ferrogate::gate::{Decision, Gate, Request};
use ferrogate::ratelimit::client_ip::{Cidr, ClientIp, ForwardedHeader, Trust};
use ferrogate::ratelimit::{Limiter, parse_quotas};
use proptest::prelude::*;
use serde_json::json;

proptest! {
    #[test]
    fn quota_strings_parse_or_quote_the_input(s in "\\PC{0,40}|[0-9 /per;,a-z]{0,30}") {
        match parse_quotas(&s) {
            Ok(qs) => prop_assert!(!qs.is_empty()),
            Err(e) => {
                let quoted = format!("{s:?}");
                prop_assert!(e.to_string().contains(&quoted));
            }
        }
    }

    #[test]
    fn forwarding_headers_never_panic(
        remote in "\\PC{0,20}|[0-9a-f.:\\[\\]%]{0,30}",
        header in "\\PC{0,60}|[0-9a-f.:,; =\"\\[\\]]{0,60}",
        hops in 1u32..4,
    ) {
        let proxies = ClientIp {
            trust: Trust::Proxies(vec![Cidr::parse("10.0.0.0/8").unwrap()]),
            ..ClientIp::default()
        };
        let counted = ClientIp { trust: Trust::Hops(hops), header: ForwardedHeader::Forwarded, ..ClientIp::default() };
        for c in [&proxies, &counted, &ClientIp::default()] {
            if let Some(ip) = c.resolve(Some(&remote), Some(&header)) {
                let _ = c.key_of(ip);
            }
        }
        // An untrusted peer's headers are ignored, whatever they say.
        if let Ok(peer) = remote.trim().parse::<std::net::IpAddr>() {
            let peer = peer.to_canonical();
            if !Cidr::parse("10.0.0.0/8").unwrap().contains(peer) {
                prop_assert_eq!(proxies.resolve(Some(&remote), Some(&header)), Some(peer));
            }
        }
    }

    #[test]
    fn never_more_than_the_burst_at_one_instant(
        count in 1u64..50, burst in 1u64..80, costs in prop::collection::vec(1u64..5, 1..200),
    ) {
        let quota = ferrogate::ratelimit::Quota::with_burst(count, 60, burst).unwrap();
        let l = Limiter::new(&[quota], 10).unwrap();
        let k = l.hash_key(b"k");
        let used: u64 = costs.iter().filter(|c| l.hit_hashed(k, **c, 1_000).allowed).sum();
        prop_assert!(used <= burst);
        // A unit that still fits is never refused: a cost-1 hit fails only when the burst is used.
        if !l.hit_hashed(k, 1, 1_000).allowed {
            prop_assert_eq!(used, burst);
        }
    }

    #[test]
    fn gate_with_limits_answers_every_request(
        remote in "\\PC{0,20}|[0-9.:]{0,20}",
        xff in "\\PC{0,40}",
        key in "\\PC{0,20}",
        method in "GET|POST|OPTIONS|\\PC{0,6}",
    ) {
        let cfg = GateConfig::from_value(&json!({
            "client_ip": {"trusted_proxies": ["0.0.0.0/0", "::/0"]},
            "limits": {"api": {"quota": "3/second; 10/minute", "key": ["ip", "header:x-api-key", "sub"]}},
            "jwt": {"algorithms": ["HS256"], "key": "prop-test-secret-long-enough-for-hs256"},
            "routes": [{"path": "/a", "auth": "optional", "limit": ["api", {"quota": "1/hour", "dry_run": true}]}],
        })).unwrap();
        let gate = Gate::with_clock(&cfg, Arc::new(ManualClock::from_secs(5))).unwrap();
        let keys = gate.header_keys().to_vec();
        let headers: Vec<Option<&str>> = keys.iter().map(|k| match k.as_str() {
            "x-forwarded-for" => Some(xff.as_str()),
            _ => Some(key.as_str()),
        }).collect();
        let req = Request { method: &method, path: "/a", query: "", remote_addr: Some(&remote), headers: &headers };
        for _ in 0..5 {
            match gate.check(&req) {
                // 400/401: the random header value in `Authorization` read as a bearer token.
                Decision::Respond(r) => prop_assert!(matches!(r.status, 400 | 401 | 405 | 429)),
                Decision::Forward(_) => {}
            }
        }
    }
}

/// The property's scratch directory goes with its last case (the file has blocks allocated ahead).
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh limit name (so a fresh namespace in the shared file) per generated case.
static CASE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The host-shared store decides exactly as the in-memory limiter: any quotas, costs, looks
    /// and instants, every field of every outcome.
    #[test]
    fn host_store_decides_as_memory(
        quotas in prop::collection::vec((1u64..20, prop::sample::select(vec![1u64, 60, 3600]), 0u64..30), 1..4),
        steps in prop::collection::vec((0u64..3_000_000_000, 0u64..6, any::<bool>(), 0u8..3), 1..60),
    ) {
        use ferrogate::ratelimit::host_file::{DEFAULT_MAP_BYTES, HostFile};
        use ferrogate::ratelimit::host_store::HostLimiter;
        use ferrogate::ratelimit::redis_store::DigestHasher;
        use std::hash::Hasher;

        let quotas: Vec<_> = quotas
            .into_iter()
            .map(|(count, period, extra)| ferrogate::ratelimit::Quota::with_burst(count, period, count + extra).unwrap())
            .collect();
        let dir = std::env::temp_dir().join(format!("ferrogate-prop-host-{}", std::process::id()));
        let file = HostFile::open(&dir.join("p.mdb"), DEFAULT_MAP_BYTES).unwrap();
        let _cleanup = RemoveOnDrop(dir);
        let name = format!("case{}", CASE.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let host = HostLimiter::new(file, &name, &quotas, 100, 1, ferrogate::clock::system()).unwrap();
        let mem = Limiter::new(&quotas, 100).unwrap();
        let mut now = 1_000_000_000_000u64;
        for (dt, cost, commit, key) in steps {
            now += dt;
            let mut h = DigestHasher::default();
            h.write(&[key]);
            let d = h.digest();
            let k = mem.hash_key(&[key]);
            let ours = host.hit(&d, cost, now, commit).unwrap();
            let theirs = if commit { mem.hit_hashed(k, cost, now) } else { mem.peek_hashed(k, now) };
            // A look costs 1 in memory (peek); the host store looks at the given cost.
            if commit || cost == 1 {
                prop_assert_eq!(ours, theirs);
            }
        }
    }
}
