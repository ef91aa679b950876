//! The Redis store from Rust, against a real `redis-server` started on a free loopback port for
//! each test (`make test` installs Debian's package). Local time (lease expiry, the circuit
//! breaker) runs on a `ManualClock`; Redis decides with its own clock.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrogate::blocking::InPlace;
use ferrogate::clock::{ManualClock, SharedClock};
use ferrogate::config::GateConfig;
use ferrogate::gate::{Decision, Gate, Request};
use ferrogate::ratelimit::parse_quotas;
use ferrogate::ratelimit::redis_store::{DigestHasher, KeyDigest, RedisLimiter, RedisOptions};
use ferrogate::shared::{RedisClient, RedisSettings, StoreError};
use serde_json::json;
use std::hash::Hasher;

struct Server {
    child: Child,
    port: u16,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Server {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let dir = std::env::temp_dir().join(format!("ferrogate-rs-redis-{port}"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "no", "--dir"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (make test installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            port,
            _dir: TempDir(dir),
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client(url: &str, clock: &SharedClock) -> Arc<RedisClient> {
    let settings = RedisSettings::from_url(url).expect("a valid URL");
    Arc::new(RedisClient::new(settings, clock.clone()).expect("client"))
}

fn digest(key: &str) -> KeyDigest {
    let mut h = DigestHasher::default();
    h.write(key.as_bytes());
    h.digest()
}

fn options(batch: u64) -> RedisOptions {
    RedisOptions {
        max_keys: 1000,
        workers: 1,
        batch,
        batch_ttl_nanos: 1_000_000_000,
    }
}

#[test]
fn multi_quota_hits_are_exact_and_atomic() {
    let server = Server::start();
    let clock: SharedClock = Arc::new(ManualClock::from_secs(1_000));
    let quotas = parse_quotas("2/hour; 3/day").unwrap();
    let l = RedisLimiter::new(
        client(&server.url(), &clock),
        "rs",
        &quotas,
        options(0),
        clock,
    )
    .unwrap();
    let k = digest("alice");
    let first = l.hit(&k, 1, true).unwrap();
    assert!(first.allowed);
    assert_eq!(first.quotas()[0].remaining, 1);
    assert_eq!(first.quotas()[1].remaining, 2);
    assert!(l.hit(&k, 1, true).unwrap().allowed);
    for _ in 0..5 {
        let o = l.hit(&k, 1, true).unwrap();
        assert!(!o.allowed);
        assert_eq!(o.binding, 0, "the hour quota refuses");
        let retry = o.state().retry_nanos;
        assert!(
            retry > 1_790_000_000_000 && retry <= 1_800_000_000_000,
            "{retry}"
        );
    }
    // The day quota saw two hits, not seven.
    let peek = l.hit(&k, 1, false).unwrap();
    assert_eq!(peek.quotas()[1].remaining, 1);
    assert!(l.key_name(&k).starts_with("ferrogate:rl:rs:{"));
}

#[test]
fn leases_never_exceed_and_expired_ones_go_back() {
    let server = Server::start();
    let manual = Arc::new(ManualClock::from_secs(1_000));
    let clock: SharedClock = manual.clone();
    let quotas = parse_quotas("25/hour").unwrap();
    let shared = client(&server.url(), &clock);
    let first =
        RedisLimiter::new(shared.clone(), "lease", &quotas, options(10), clock.clone()).unwrap();
    let second =
        RedisLimiter::new(shared.clone(), "lease", &quotas, options(10), clock.clone()).unwrap();
    let plain = RedisLimiter::new(shared, "lease", &quotas, options(0), clock).unwrap();
    let key = digest("k");
    let mut allowed = 0;
    for i in 0..60 {
        let leasing = if i % 2 == 0 { &first } else { &second };
        if leasing.hit(&key, 1, true).unwrap().allowed {
            allowed += 1;
        }
    }
    assert!(allowed <= 25, "{allowed}");
    assert!(allowed >= 25 - 2 * 9, "{allowed}");
    let held = 25 - allowed;
    assert_eq!(plain.hit(&key, 1, false).unwrap().quotas()[0].remaining, 0);
    // Nothing has expired yet: nothing goes back.
    assert_eq!(first.return_expired() + second.return_expired(), 0);
    manual.advance_nanos(1_000_000_001);
    first.return_expired();
    second.return_expired();
    assert_eq!(first.lease_count() + second.lease_count(), 0);
    assert_eq!(
        plain.hit(&key, 1, false).unwrap().quotas()[0].remaining,
        held,
        "every unused leased unit is usable again"
    );
}

fn check(gate: &Gate) -> u16 {
    let req = Request {
        method: "GET",
        path: "/a",
        query: "",
        remote_addr: Some("192.0.2.1"),
        headers: &[],
    };
    match gate.check_with(&req, &InPlace) {
        Decision::Forward(_) => 200,
        Decision::Respond(r) => r.status,
    }
}

#[test]
fn outage_fallback_breaker_and_recovery_on_a_manual_clock() {
    let mut server = Server::start();
    let url = server.url();
    let manual = Arc::new(ManualClock::from_secs(1_000));
    let config = GateConfig::from_value(&json!({
        "redis": {"url": url, "breaker_failures": 2, "breaker_cooldown_ms": 5000},
        "rate_limit": {"storage": "redis", "workers": 2},
        "routes": [{"path": "/a", "limit": "4/hour"}],
    }))
    .unwrap();
    let gate = Gate::with_clock(&config, manual.clone()).unwrap();
    assert_eq!(check(&gate), 200);
    let _ = server.child.kill();
    let _ = server.child.wait();
    // Redis gone: counted locally with the quota halved (2 workers): 2/hour here.
    assert_eq!([check(&gate), check(&gate), check(&gate)], [200, 200, 429]);
    let redis = gate.redis().unwrap();
    let stats = redis.stats();
    assert_eq!(stats.breaker.as_str(), "open");
    let attempts = stats.calls;
    for _ in 0..10 {
        check(&gate);
    }
    assert_eq!(
        redis.stats().calls,
        attempts,
        "an open breaker makes no calls"
    );
    assert!(matches!(redis.ping(), Err(StoreError::CircuitOpen)));
    // Redis back on the same port; the breaker lets one probe through after its cooldown.
    let restarted = Command::new("redis-server")
        .args([
            "--port",
            &server.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    server.child = restarted;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", server.port)).is_err() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        matches!(redis.ping(), Err(StoreError::CircuitOpen)),
        "still cooling down"
    );
    manual.advance_nanos(5_000_000_000);
    assert_eq!(check(&gate), 200, "the probe reaches the fresh Redis");
    assert_eq!(redis.stats().breaker.as_str(), "closed");
    assert!(redis.ping().is_ok());
}
