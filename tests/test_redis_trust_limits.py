"""Redis-backed limits under the faults of issue 21, against real redis-server processes.

- A limit's identity in Redis is unique and stable: a GET and a POST limit on one path, or two
  unnamed views, never share a counter; duplicates are refused at start-up; and the script never
  drops values of quotas it does not own.
- Batched leases taken by several threads at once are merged, never lost: across 4 processes of
  8 threads each, a quota of 100 is used exactly once the leases are drained.
- The cache tier cannot fill the limiter's Redis: a Redis at its `maxmemory` (noeviction) under a
  flood of distinct cacheable GETs still counts every login.
"""

from __future__ import annotations

import io
import multiprocessing
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from ferrogate import ConfigError, Gate, RateLimiter
from redis_server import RedisServer


def environ(method: str, path: str, query: str = "", **extra: str) -> dict[str, Any]:
    env: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "REMOTE_ADDR": "192.0.2.7",
        "SERVER_NAME": "api.example.com",
        "SERVER_PORT": "80",
        "HTTP_HOST": "api.example.com",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": io.StringIO(),
    }
    env.update(extra)
    return env


def status(gate: Gate, method: str, path: str) -> int:
    d = gate.check(environ(method, path))
    return 200 if d.forward else d.status


# --- 1. a limit's identity ------------------------------------------------------------------


def test_a_get_limit_never_resets_the_post_limit_on_the_same_path(redis_server: RedisServer) -> None:
    gate = Gate(
        {
            "redis": {"url": redis_server.url},
            "rate_limit": {"storage": "redis"},
            "routes": [
                {"path": "/login", "methods": ["GET"], "limit": "1000/second"},
                {"path": "/login", "methods": ["POST"], "limit": "1000/second; 3/hour"},
            ],
        }
    )
    seen = []
    for _ in range(5):
        seen.append(status(gate, "POST", "/login"))
        assert status(gate, "GET", "/login") == 200
    assert seen == [200, 200, 200, 429, 429]


def test_a_script_keeps_the_quotas_it_does_not_own(redis_server: RedisServer) -> None:
    # Two limiters that (by configuration) share one name and so one key: each keeps the other's
    # counts instead of writing back its own quotas alone.
    hourly = RateLimiter("3/hour", storage=redis_server.url, name="shared")
    fast = RateLimiter("1000/second", storage=redis_server.url, name="shared")
    allowed = []
    for _ in range(5):
        allowed.append(hourly.hit("k").allowed)
        assert fast.hit("k").allowed
    assert allowed == [True, True, True, False, False]


def test_two_unnamed_dispatch_routes_never_share_a_counter(redis_server: RedisServer) -> None:
    # Two routes with the same label and no path (what two unnamed Django class-based views
    # looked like): one identity each, or a refusal at start-up, never one shared counter.
    base: dict[str, Any] = {"redis": {"url": redis_server.url}, "rate_limit": {"storage": "redis"}}
    routes = [
        {"name": "View.as_view.<locals>.view", "dispatch": True, "limit": "1/hour"},
        {"name": "View.as_view.<locals>.view", "dispatch": True, "limit": "1/hour"},
    ]
    with pytest.raises(ConfigError) as e:
        Gate({**base, "routes": routes})
    assert any("limit" in k and "same" in m for k, m in e.value.issues), e.value.issues


def test_unnamed_django_class_based_views_count_apart(redis_server: RedisServer) -> None:
    from django.test import Client, override_settings
    from django_project.settings import FERROGATE
    from ferrogate.django import state

    settings = {
        **FERROGATE,
        "redis": {"url": redis_server.url},
        "rate_limit": {"storage": "redis"},
    }
    state.reset()
    try:
        with override_settings(FERROGATE=settings, ROOT_URLCONF="trust_urls"):
            c = Client()
            assert [c.get("/one/").status_code for _ in range(2)] == [200, 429]
            # Another unnamed class-based view: a counter of its own.
            assert c.get("/two/").status_code == 200
    finally:
        state.reset()


# --- 2. batched leases under threads and processes --------------------------------------------

QUOTA = 100
BATCH = 10
PROCESSES = 4
THREADS = 8
#: Each round counts a fresh key: two threads missing the lease at once happens at the start of
#: every key, so many rounds make a lost lease certain to show if one can be lost.
ROUNDS = 30


def _batched_gate(url: str) -> Gate:
    return Gate(
        {
            # A slow CI host must not turn a round trip into an error (and a local fallback).
            "redis": {"url": url, "timeout_ms": 5000, "connect_timeout_ms": 5000},
            "rate_limit": {"storage": "redis", "on_error": "deny", "batch": BATCH, "batch_ttl_ms": 3_600_000},
            "routes": [{"path": "/a", "limit": f"{QUOTA}/hour"}],
        }
    )


def _hammer(gate: Gate, client: str, threads: int) -> int:
    """Threads hit until each has been refused 20 times (Redis is exhausted by then)."""
    counts = [0] * threads
    start = threading.Barrier(threads)
    env = environ("GET", "/a", REMOTE_ADDR=client)

    def run(i: int) -> None:
        start.wait()
        refused = 0
        while refused < 20:
            if gate.check(dict(env)).forward:
                counts[i] += 1
            else:
                refused += 1

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return sum(counts)


def _drain(gate: Gate, client: str) -> int:
    """What this process's lease still holds, one hit at a time."""
    env = environ("GET", "/a", REMOTE_ADDR=client)
    n = 0
    while gate.check(dict(env)).forward:
        n += 1
    return n


def _lease_worker(url: str, barrier: Any, out: Any) -> None:
    gate = _batched_gate(url)
    gate.ping_redis()
    results = []
    for r in range(ROUNDS):
        client = f"198.51.100.{r + 1}"
        barrier.wait()  # every process's threads start together
        during = _hammer(gate, client, THREADS)
        barrier.wait()  # every process has stopped hammering before any drains
        results.append((during, _drain(gate, client)))
    stats = gate.redis_stats()
    assert stats is not None
    out.put((results, stats["limit_errors"]))


def test_batched_leases_are_never_lost_across_threads_and_processes(redis_server: RedisServer) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_lease_worker, args=(redis_server.url, barrier, out)) for _ in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    got = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert [errors for _, errors in got] == [0] * PROCESSES
    results = [rounds for rounds, _ in got]
    for r in range(ROUNDS):
        during = sum(proc[r][0] for proc in results)
        total = during + sum(proc[r][1] for proc in results)
        # While hammering, each process holds back at most one lease's unused units (N - 1)...
        assert during >= QUOTA - PROCESSES * (BATCH - 1), (r, results)
        # ...and once the leases are drained, exactly the quota was used: no lease was lost.
        assert total == QUOTA, (r, [proc[r] for proc in results])


def test_batched_leases_under_threads_in_one_process(redis_server: RedisServer) -> None:
    gate = _batched_gate(redis_server.url)
    for r in range(ROUNDS):
        client = f"203.0.113.{r + 1}"
        during = _hammer(gate, client, 16)
        assert during >= QUOTA - (BATCH - 1), (r, during)
        assert during + _drain(gate, client) == QUOTA, r
    stats = gate.redis_stats()
    assert stats is not None
    assert stats["limit_errors"] == 0


# --- 3. the cache cannot switch the limits off ------------------------------------------------


@pytest.fixture
def full_redis() -> Iterator[RedisServer]:
    server = RedisServer(extra_args=["--maxmemory", "4mb", "--maxmemory-policy", "noeviction"])
    server.start()
    try:
        yield server
    finally:
        server.close()


def _flooded_gate(url: str, on_error: str) -> Gate:
    return Gate(
        {
            "redis": {"url": url, "breaker_cooldown_ms": 60_000},
            "rate_limit": {"storage": "redis", "on_error": on_error},
            "cache": {"shared": "redis"},
            "routes": [
                {"path": "/page", "cache": 3600, "limit": False},
                {"path": "/login", "methods": ["POST"], "limit": "3/hour"},
            ],
        }
    )


def _flood(gate: Gate, n: int) -> None:
    wsgi = gate.wsgi(_big_page)
    for i in range(n):
        body = wsgi(environ("GET", "/page", f"q={i}"), lambda status, headers, exc_info=None: None)
        b"".join(body)


def _big_page(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Cache-Control", "public, max-age=3600")])
    return [b"x" * 40_000]


@pytest.mark.parametrize(("on_error", "refused"), [("allow", 429), ("deny", 429)])
def test_a_cache_flood_never_trips_the_limiter(full_redis: RedisServer, on_error: str, refused: int) -> None:
    gate = _flooded_gate(full_redis.url, on_error)
    _flood(gate, 300)  # 12 MB of distinct cacheable responses into a 4 MB Redis
    assert gate.cache is not None
    used = int(full_redis.command("INFO", "memory").split(b"used_memory:")[1].split(b"\r\n")[0])
    assert used < 4 * 1024 * 1024, "the cache tier stayed within its budget"
    logins = [status(gate, "POST", "/login") for _ in range(5)]
    assert logins == [200, 200, 200, refused, refused]
    stats = gate.redis_stats()
    assert stats is not None
    assert (stats["limit_errors"], stats["failed_open"], stats["failed_closed"]) == (0, 0, 0), stats
