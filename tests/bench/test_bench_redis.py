"""Rate limits in Redis: a ferrogate hit vs a PING round trip on the same pooled connection, vs the
`limits` library's RedisStorage (what Flask-Limiter uses with Redis), and batched mode's average,
all against one local redis-server started for the run.

Each benchmark call makes 100 operations (``extra_info["ops"]``). The quota is large enough that
every hit is allowed and does the full write path on both sides.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from ferrogate import Gate, RateLimiter
from limits import parse
from limits.storage import RedisStorage
from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter
from redis_server import RedisServer

OPS = 100
QUOTA = "100000000/hour"


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    s = RedisServer()
    s.start()
    yield s
    s.close()


def _run(benchmark: Any, op: Any) -> None:
    def run() -> None:
        for _ in range(OPS):
            op()

    benchmark.extra_info["ops"] = OPS
    benchmark(run)


@pytest.mark.benchmark(group="redis: check vs PING (same connection)")
def test_ferrogate_redis_hit(benchmark: Any, server: RedisServer) -> None:
    rl = RateLimiter(QUOTA, storage=server.url)
    _run(benchmark, lambda: rl.hit("client"))


@pytest.mark.benchmark(group="redis: check vs PING (same connection)")
def test_ping_same_pooled_connection(benchmark: Any, server: RedisServer) -> None:
    rl = RateLimiter(QUOTA, storage=server.url)
    _run(benchmark, rl.ping)


@pytest.mark.benchmark(group="redis: check vs PING (same connection)")
def test_ping_redis_py(benchmark: Any, server: RedisServer) -> None:
    client = redis.Redis.from_url(server.url)
    _run(benchmark, client.ping)


@pytest.mark.benchmark(group="redis: hit vs limits RedisStorage")
def test_ferrogate_redis_hit_vs_limits(benchmark: Any, server: RedisServer) -> None:
    rl = RateLimiter(QUOTA, storage=server.url, name="vs")
    _run(benchmark, lambda: rl.hit("client"))


@pytest.mark.benchmark(group="redis: hit vs limits RedisStorage")
def test_limits_redis_fixed_window(benchmark: Any, server: RedisServer) -> None:
    limiter = FixedWindowRateLimiter(RedisStorage(server.url))
    item = parse(QUOTA)
    _run(benchmark, lambda: limiter.hit(item, "client"))


@pytest.mark.benchmark(group="redis: hit vs limits RedisStorage")
def test_limits_redis_moving_window(benchmark: Any, server: RedisServer) -> None:
    # A moving window stores one entry per hit: a smaller quota keeps its list bounded.
    limiter = MovingWindowRateLimiter(RedisStorage(server.url))
    item = parse("1000/hour")
    _run(benchmark, lambda: limiter.hit(item, "client"))


@pytest.mark.benchmark(group="redis: batched mode average")
def test_ferrogate_redis_batched_100(benchmark: Any, server: RedisServer) -> None:
    rl = RateLimiter(QUOTA, storage=server.url, name="batched", batch=100)
    _run(benchmark, lambda: rl.hit("client"))


@pytest.mark.benchmark(group="redis: batched mode average")
def test_redis_unbatched_for_reference(benchmark: Any, server: RedisServer) -> None:
    rl = RateLimiter(QUOTA, storage=server.url, name="unbatched")
    _run(benchmark, lambda: rl.hit("client"))


@pytest.mark.benchmark(group="redis: Gate.check with a Redis limit")
def test_ferrogate_gate_check_redis_limit(benchmark: Any, server: RedisServer) -> None:
    g = Gate({"rate_limit": {"storage": server.url}, "routes": [{"path": "/a", "limit": QUOTA}]})
    env = {"REQUEST_METHOD": "GET", "PATH_INFO": "/a", "REMOTE_ADDR": "192.0.2.1"}
    _run(benchmark, lambda: g.check(env))


@pytest.mark.benchmark(group="redis: Gate.check with a Redis limit")
def test_gate_check_memory_limit_for_reference(benchmark: Any, server: RedisServer) -> None:
    g = Gate({"routes": [{"path": "/a", "limit": QUOTA}]})
    env = {"REQUEST_METHOD": "GET", "PATH_INFO": "/a", "REMOTE_ADDR": "192.0.2.1"}
    _run(benchmark, lambda: g.check(env))


# The host-shared store (storage="host") beside the Redis limiter, same run: both share one count
# between worker processes, one through a local LMDB file, the other through a round trip.


@pytest.fixture(scope="module")
def host_dir(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return tmp_path_factory.mktemp("host-store")


@pytest.mark.benchmark(group="host store vs Redis limiter (one key)")
def test_ferrogate_host_hit(benchmark: Any, host_dir: Any) -> None:
    rl = RateLimiter(QUOTA, storage="host", path=host_dir / "one.mdb")
    _run(benchmark, lambda: rl.hit("client"))


@pytest.mark.benchmark(group="host store vs Redis limiter (one key)")
def test_redis_limiter_hit_beside_host(benchmark: Any, server: RedisServer) -> None:
    rl = RateLimiter(QUOTA, storage=server.url, name="beside-host")
    _run(benchmark, lambda: rl.hit("client"))


@pytest.mark.benchmark(group="host store vs Redis limiter (one key)")
def test_memory_limiter_hit_beside_host(benchmark: Any) -> None:
    rl = RateLimiter(QUOTA)
    _run(benchmark, lambda: rl.hit("client"))


LIVE = 100_000
# Long enough an emission interval that a key hit once stays live for the whole run (at QUOTA a
# key is idle 36 µs after its hit and would be swept).
LIVE_QUOTA = "1000/hour"


def _cycle(benchmark: Any, rl: RateLimiter, keys: list[str]) -> None:
    """Hits walking through ``keys``: the same Python loop whatever the number of keys."""
    it = iter(range(10**12))
    n = len(keys)
    _run(benchmark, lambda: rl.hit(keys[next(it) % n]))


@pytest.mark.benchmark(group="host store: 100k live keys vs one")
def test_ferrogate_host_hit_one_live_key(benchmark: Any, host_dir: Any) -> None:
    rl = RateLimiter(QUOTA, storage="host", path=host_dir / "one-vs-many.mdb", name="one")
    _cycle(benchmark, rl, ["client"])
    assert rl.peek("client").allowed, "every hit was allowed: the write path was measured"


@pytest.mark.benchmark(group="host store: 100k live keys vs one")
def test_host_hit_100k_live_keys(benchmark: Any, host_dir: Any) -> None:
    path = host_dir / "many.mdb"
    rl = RateLimiter(LIVE_QUOTA, storage="host", path=path, name="many")
    keys = [f"client-{i}" for i in range(LIVE)]
    for k in keys:
        rl.hit(k)
    assert len(rl) == LIVE
    # An hour-long quota keeps every key live for the run: the file really holds 100k keys.
    benchmark.extra_info["live_keys"] = LIVE
    benchmark.extra_info["bytes_per_key"] = round(rl.memory_bytes() / LIVE, 1)
    benchmark.extra_info["allocated_bytes_per_key"] = round(path.stat().st_blocks * 512 / LIVE, 1)
    _cycle(benchmark, rl, keys)
    assert len(rl) == LIVE, "every key stayed live"
    assert rl.peek(keys[0]).allowed, "and allowed: the write path was measured"
