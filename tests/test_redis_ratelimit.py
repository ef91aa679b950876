"""Rate limits counted in a real redis-server (started by the fixture on a free loopback port).

Quotas are per hour or per minute so that the milliseconds a test takes never refill a request:
the counts below are exact. Redis decides with its own clock (TIME), so no test passes `now=`.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from typing import Any

import pytest
from ferrogate import ConfigError, Gate, RateLimiter, StoreUnavailableError
from ferrogate.ratelimit import with_worker_count
from redis_server import RedisServer

ENV = {"REQUEST_METHOD": "GET", "PATH_INFO": "/a", "REMOTE_ADDR": "192.0.2.7"}


def gate(url: str, limit: Any = "3/hour", **rate_limit: Any) -> Gate:
    return Gate(
        {
            "rate_limit": {"storage": url, **rate_limit},
            "routes": [
                {"path": "/a", "name": "a", "limit": limit},
                {"path": "/b", "name": "b", "limit": {"quota": "2/hour", "on_error": "deny"}},
                {"path": "/c", "name": "c", "limit": {"quota": "2/hour", "on_error": "allow"}},
            ],
        }
    )


def status(g: Gate, path: str = "/a", ip: str = "192.0.2.7") -> int:
    return g.check({**ENV, "PATH_INFO": path, "REMOTE_ADDR": ip}).status


def header(d: Any, name: str) -> str | None:
    return next((v for k, v in d.headers if k == name), None)


# -- the standalone limiter ------------------------------------------------------------------------


def test_exact_counts_shared_by_limiters_with_one_name(redis_server: RedisServer) -> None:
    a = RateLimiter("5/hour", storage=redis_server.url, name="api")
    b = RateLimiter("5/hour", storage=redis_server.url, name="api")
    other = RateLimiter("5/hour", storage=redis_server.url, name="other")
    results = [bool(x.hit("alice")) for x in (a, b, a, b, a, b)]
    assert results == [True] * 5 + [False]
    r = b.hit("alice")
    assert not r
    assert r.remaining == 0
    assert 700 < r.retry_after <= 720  # one emission interval (720 s) after the first hit
    assert other.hit("alice"), "another name is another count"
    assert a.hit("bob"), "another key is another count"
    assert a.storage == redis_server.url
    assert "storage=" in repr(a)


def test_refused_quota_consumes_nothing_from_the_others(redis_server: RedisServer) -> None:
    rl = RateLimiter("2/hour; 3/day", storage=redis_server.url)
    assert rl.hit("k")
    assert rl.hit("k")
    for _ in range(10):
        assert not rl.hit("k")
    # The day quota saw two hits, not twelve.
    p = rl.peek("k")
    assert not p
    assert p.limit == 2


def test_peek_and_cost(redis_server: RedisServer) -> None:
    rl = RateLimiter("10/hour", storage=redis_server.url)
    assert rl.peek("k").remaining == 10
    r = rl.hit("k", cost=4)
    assert r.remaining == 6
    assert rl.peek("k").remaining == 6, "peek consumes nothing"
    assert not rl.hit("k", cost=7)
    assert rl.hit("k", cost=6).remaining == 0
    big = rl.hit("x", cost=11)
    assert not big
    assert big.retry_after == float("inf"), "above the burst: no wait helps"


def test_keys_are_hashed_prefixed_hash_tagged_and_expire(redis_server: RedisServer) -> None:
    rl = RateLimiter("2/minute", storage=redis_server.url, prefix="svc1:", name="login")
    rl.hit("203.0.113.9")
    keys = redis_server.command("KEYS", "*")
    assert b"svc1:rl:login:{" in keys
    assert b"203.0.113.9" not in keys, "no client material in key names"
    name = keys.split(b"\r\n")[2].decode()
    ttl = int(redis_server.command("PTTL", name)[1:].split(b"\r\n")[0])
    assert 29_000 < ttl <= 30_002, "expires when the TAT passes (30 s after one hit of 2/minute)"


def test_noscript_after_script_flush_is_handled(redis_server: RedisServer) -> None:
    rl = RateLimiter("3/hour", storage=redis_server.url)
    assert rl.hit("k")
    assert redis_server.command("SCRIPT", "FLUSH").startswith(b"+OK")
    assert rl.hit("k"), "EVALSHA got NOSCRIPT: the script was loaded again"
    assert rl.hit("k")
    assert not rl.hit("k")


def test_unix_socket(redis_server: RedisServer) -> None:
    rl = RateLimiter("1/hour", storage=redis_server.unix_url)
    assert rl.hit("k")
    assert not RateLimiter("1/hour", storage=redis_server.url).hit("k"), "same server, same count"


def test_bad_storage_values_are_config_errors() -> None:
    for bad in ["http://x", "redis+cluster://", "nope"]:
        with pytest.raises(ConfigError):
            RateLimiter("1/second", storage=bad)
    with pytest.raises(ConfigError, match="batch"):
        RateLimiter("1/second", batch=5)
    with pytest.raises(ConfigError, match="name"):
        RateLimiter("1/second", storage="redis://127.0.0.1:1", name="bad name")
    with pytest.raises(ConfigError) as e:
        RateLimiter("1/second", storage="redis://user:hunter2@127.0.0.1:1", prefix="a{b}")
    assert "hunter2" not in str(e.value)


def test_dead_redis_raises_store_unavailable_then_breaker_fails_fast(own_redis: RedisServer) -> None:
    rl = RateLimiter("5/hour", storage=own_redis.url)
    assert rl.hit("k")
    own_redis.stop()
    for _ in range(3):
        with pytest.raises(StoreUnavailableError, match="unavailable"):
            rl.hit("k")
    t = time.perf_counter()
    with pytest.raises(StoreUnavailableError, match="circuit breaker"):
        rl.hit("k")
    assert time.perf_counter() - t < 0.05
    with pytest.raises(ValueError, match="now="):
        rl.hit("k", now=1.0)


def test_redis_io_releases_the_gil(own_redis: RedisServer) -> None:
    """A stalled Redis (SIGSTOP) blocks the calling thread for its timeout, not the process."""
    rl = RateLimiter("5/hour", storage=own_redis.url, timeout_ms=400)
    assert rl.hit("k")
    own_redis.pause()
    done = threading.Event()
    ticks = 0

    def call() -> None:
        with contextlib.suppress(StoreUnavailableError):
            rl.hit("k")
        done.set()

    t = threading.Thread(target=call)
    t.start()
    while not done.is_set():
        ticks += 1
        time.sleep(0.001)
    t.join()
    own_redis.resume()
    assert ticks > 50, f"the main thread ran only {ticks} times while Redis stalled"


# -- in the gate -----------------------------------------------------------------------------------


def test_two_gates_share_one_quota_with_headers(redis_server: RedisServer) -> None:
    g1, g2 = gate(redis_server.url), gate(redis_server.url)
    d = g1.check(ENV)
    assert d.forward
    assert header(d, "ratelimit") == '"a";r=2;t=1200'
    assert header(d, "ratelimit-policy") == '"a";q=3;w=3600'
    assert status(g2) == 0
    assert status(g1) == 0
    d = g2.check(ENV)
    assert d.status == 429
    assert header(d, "retry-after") in ("1199", "1200")
    assert header(d, "content-type") == "application/problem+json"
    assert status(g1, ip="192.0.2.8") == 0, "another client"
    assert g1.memory_rate_limiters == 0
    stats = g1.redis_stats()
    assert stats is not None
    assert stats["round_trips"] == 3
    assert stats["breaker"] == "closed"
    g1.ping_redis()


def test_on_error_modes_when_redis_dies_and_recovery(own_redis: RedisServer) -> None:
    g = Gate(
        {
            "redis": {"url": own_redis.url, "breaker_failures": 1, "breaker_cooldown_ms": 50},
            "rate_limit": {"storage": "redis", "workers": 3},
            "routes": [
                {"path": "/a", "name": "a", "limit": "6/hour"},
                {"path": "/b", "name": "b", "limit": {"quota": "2/hour", "on_error": "deny"}},
                {"path": "/c", "name": "c", "limit": {"quota": "2/hour", "on_error": "allow"}},
            ],
        }
    )
    assert status(g) == 0
    own_redis.stop()
    # local: the quota divided by the 3 workers (6/hour -> 2/hour per process), counted here.
    assert [status(g) for _ in range(3)] == [0, 0, 429]
    d = g.check({**ENV, "PATH_INFO": "/b"})
    assert d.status == 503
    assert header(d, "retry-after") == "1"
    assert header(d, "content-type") == "application/problem+json"
    body = json.loads(d.body)
    assert body["status"] == 503
    assert body["limit"] == "b"
    assert [status(g, "/c") for _ in range(5)] == [0] * 5, "fail open"
    stats = g.redis_stats()
    assert stats is not None
    assert stats["breaker"] in ("open", "half-open")
    assert stats["failed_open"] == 5
    assert stats["failed_closed"] == 1
    assert stats["fallback"] == 3
    own_redis.start()
    deadline = time.monotonic() + 5
    while status(g, "/c") == 0 and g.redis_stats()["breaker"] != "closed":  # type: ignore[index]
        assert time.monotonic() < deadline, "no recovery"
        time.sleep(0.06)
    # Back on Redis (a fresh server: empty counts).
    d = g.check({**ENV, "PATH_INFO": "/b"})
    assert d.forward
    assert header(d, "ratelimit") == '"b";r=1;t=1800'


def test_dead_redis_at_start_up_is_an_outage_not_a_crash() -> None:
    g = Gate(
        {
            "rate_limit": {"storage": "redis://127.0.0.1:1/0", "on_error": "deny"},
            "routes": [{"path": "/a", "limit": "1/hour"}],
        }
    )
    assert [status(g) for _ in range(5)] == [503] * 5


def test_config_errors_name_their_keys() -> None:
    with pytest.raises(ConfigError) as e:
        Gate(
            {
                "redis": {"url": "redis://h", "timeout_ms": -1, "pool_size": 0},
                "rate_limit": {"storage": "redis", "on_error": "explode", "workers": 0, "batch": "x"},
                "routes": [{"path": "/a", "limit": {"quota": "1/hour", "on_error": 1}}],
            }
        )
    keys = [k for k, _ in e.value.issues]
    for k in [
        "redis.timeout_ms",
        "redis.pool_size",
        "rate_limit.on_error",
        "rate_limit.workers",
        "rate_limit.batch",
        "routes[0].limit.on_error",
    ]:
        assert k in keys, (k, keys)
    with pytest.raises(ConfigError, match=r"redis\.url"):
        Gate({"rate_limit": {"storage": "redis"}})
    with pytest.raises(ConfigError, match=r"rate_limit\.batch"):
        Gate({"rate_limit": {"batch": 10}})
    with pytest.raises(ConfigError, match=r"redis\.url"):
        Gate({"rate_limit": {"storage": "ftp://x"}})


def test_batched_mode_never_exceeds_the_quota_and_saves_round_trips(redis_server: RedisServer) -> None:
    gates = [gate(redis_server.url, limit="100/hour", batch=10) for _ in range(3)]
    allowed = 0
    for i in range(150):
        if status(gates[i % 3]) == 0:
            allowed += 1
    assert allowed <= 100
    # Each gate may hold one unused lease (up to 9 units) when the others run dry.
    assert allowed >= 100 - 3 * 9
    served = [g.redis_stats() for g in gates]
    leased = sum(s["leased_hits"] for s in served if s)
    trips = sum(s["round_trips"] for s in served if s)
    assert leased >= 60
    assert trips < 100


def test_batched_single_process_is_exact(redis_server: RedisServer) -> None:
    g = gate(redis_server.url, limit="50/hour", batch=8)
    results = [status(g) for _ in range(60)]
    assert results.count(0) == 50
    assert results[50:] == [429] * 10
    stats = g.redis_stats()
    assert stats is not None
    assert stats["leased_hits"] == 50 - 7  # 7 lease calls (8 + ... + 2 left) then the refusals
    assert stats["round_trips"] <= 7 + 10


def test_worker_count_is_filled_in_for_redis_storage() -> None:
    cfg = {"rate_limit": {"storage": "redis://h"}}
    out = with_worker_count(cfg, environ={}, argv=["gunicorn", "-w", "4", "app:app"], modules={})
    assert out["rate_limit"]["workers"] == 4
    assert cfg["rate_limit"] == {"storage": "redis://h"}, "the caller's dict is not changed"
    same = with_worker_count(
        {"rate_limit": {"storage": "redis://h", "workers": 2}}, argv=["gunicorn", "-w", "4"]
    )
    assert same["rate_limit"]["workers"] == 2
    mem = {"rate_limit": {"storage": "memory"}}
    assert with_worker_count(mem, argv=["gunicorn", "-w", "4"]) is mem


# -- the framework adapters ------------------------------------------------------------------------


def test_flask_extension_on_redis(own_redis: RedisServer) -> None:
    import flask
    from ferrogate.exceptions import ServiceUnavailable
    from ferrogate.flask import FerroGate

    def make() -> Any:
        app = flask.Flask(__name__)
        app.config["FERROGATE_REDIS"] = {"url": own_redis.url, "breaker_cooldown_ms": 60_000}
        app.config["FERROGATE_RATE_LIMIT"] = {"storage": "redis"}
        fg = FerroGate(app)

        @app.get("/strict")
        @fg.limit("2/hour", on_error="deny")
        def strict() -> str:
            return "ok"

        @app.get("/lenient")
        @fg.limit("2/hour", on_error="allow")
        def lenient() -> str:
            return "ok"

        return app

    one, two = make().test_client(), make().test_client()
    assert one.get("/strict").status_code == 200
    assert two.get("/strict").status_code == 200, "a second app counts on the same quota"
    r = one.get("/strict")
    assert r.status_code == 429
    assert r.headers["RateLimit-Policy"] == '"strict";q=2;w=3600'
    own_redis.stop()
    r = two.get("/strict")
    assert r.status_code == 503
    assert r.headers["Content-Type"] == "application/problem+json"
    assert r.headers["Retry-After"] == "60"
    assert [two.get("/lenient").status_code for _ in range(4)] == [200] * 4

    # An app's own handler renders the 503 like any other refusal.
    app = make()

    @app.errorhandler(ServiceUnavailable)
    def unavailable(e: ServiceUnavailable) -> tuple[str, int]:
        return "try later", 503

    r = app.test_client().get("/strict")
    assert (r.status_code, r.get_data(as_text=True)) == (503, "try later")
    assert r.headers["Retry-After"] == "60"

    decorator = FerroGate(flask.Flask(__name__)).limit("1/hour", on_error="explode")
    with pytest.raises(ConfigError, match="on_error"):
        decorator(lambda: "x")


def test_django_middleware_on_redis(redis_server: RedisServer) -> None:
    from django.conf import settings
    from django.test import Client, override_settings
    from ferrogate.django import state

    config = {**settings.FERROGATE, "rate_limit": {"storage": redis_server.url}}
    with override_settings(FERROGATE=config):
        state.reset()
        try:
            assert Client().get("/limited/").status_code == 200
            state.reset()  # a fresh gate (as in another worker process): the count is in Redis
            r = Client().get("/limited/")
            assert r.status_code == 429
            assert json.loads(r.content)["status"] == 429
            assert b"rl:" in redis_server.command("KEYS", "*")
        finally:
            state.reset()


def test_drf_throttle_counts_in_redis_and_survives_an_outage(own_redis: RedisServer) -> None:
    from django.conf import settings
    from django.test import override_settings
    from ferrogate import encode
    from ferrogate.django import state
    from ferrogate.drf import _limiters
    from rest_framework.test import APIClient

    tok = encode({"sub": "gail", "exp": time.time() + 300}, settings.JWT_SECRET, "HS256")
    h = {"HTTP_AUTHORIZATION": f"Bearer {tok}"}
    for on_error, down in [("local", [200, 200, 200, 429]), ("allow", [200] * 4), ("deny", [429] * 4)]:
        own_redis.start()
        own_redis.flushall()
        config = {**settings.FERROGATE, "rate_limit": {"storage": own_redis.url, "on_error": on_error}}
        with override_settings(FERROGATE=config):
            state.reset()
            _limiters.clear()
            try:
                client = APIClient()
                assert [client.get("/drf/notes/", **h).status_code for _ in range(3)] == [200] * 3
                _limiters.clear()  # as another worker process: the count is in Redis
                r = client.get("/drf/notes/", **h)
                assert r.status_code == 429
                assert b"rl:drf:" in own_redis.command("KEYS", "*")
                own_redis.stop()
                assert [client.get("/drf/notes/", **h).status_code for _ in range(4)] == down, on_error
            finally:
                state.reset()
                _limiters.clear()


def test_django_deploy_check_pings_redis(own_redis: RedisServer) -> None:
    from django.conf import settings
    from django.test import override_settings
    from ferrogate.django import checks, state

    config = {**settings.FERROGATE, "redis": {"url": own_redis.url}, "rate_limit": {"storage": "redis"}}
    with override_settings(FERROGATE=config):
        state.reset()
        try:
            assert checks.check_redis() == []
            own_redis.stop()
            [warning] = checks.check_redis()
            assert warning.id == "ferrogate.W003"
            assert own_redis.url in warning.msg
        finally:
            state.reset()
    state.reset()
    assert checks.check_redis() == [], "no [redis]: nothing to check"


def test_django_async_checks_on_redis_do_not_block_the_event_loop(own_redis: RedisServer) -> None:
    import asyncio

    from asgiref.sync import async_to_sync
    from django.conf import settings
    from django.test import AsyncClient, override_settings
    from ferrogate.django import state

    config = {
        **settings.FERROGATE,
        "redis": {"url": own_redis.url, "timeout_ms": 300},
        "rate_limit": {"storage": "redis", "on_error": "allow"},
        "defaults": {"access": "allow", "limit": "2/hour"},
    }

    async def scenario() -> None:
        client = AsyncClient()
        codes = [(await client.get("/async/items/3/")).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        own_redis.pause()
        ticks = 0
        request = asyncio.ensure_future(client.get("/async/items/4/"))
        while not request.done():
            ticks += 1
            await asyncio.sleep(0.001)
        own_redis.resume()
        assert (await request).status_code == 200, "fail open after the timeout"
        assert ticks > 50, f"the event loop ran only {ticks} times while Redis stalled"

    # Only async-capable middleware, so the gate really runs on the event loop.
    with override_settings(FERROGATE=config, MIDDLEWARE=["ferrogate.django.GateMiddleware"]):
        state.reset()
        try:
            async_to_sync(scenario)()
        finally:
            state.reset()


def test_expired_leases_go_back_in_the_background(redis_server: RedisServer) -> None:
    leasing = RateLimiter("100/hour", storage=redis_server.url, name="shared", batch=10, batch_ttl_ms=50)
    plain = RateLimiter("100/hour", storage=redis_server.url, name="shared")
    assert leasing.hit("k")
    # The lease took 10 units; one was used, nine sit in this process.
    assert plain.peek("k").remaining == 90
    deadline = time.monotonic() + 5
    while plain.peek("k").remaining != 99:
        assert time.monotonic() < deadline, "the unused units never went back"
        time.sleep(0.01)
    # Given back means usable by everyone: the next lease starts from 99 again.
    assert leasing.hit("k").remaining == 98


def test_cli_check_reports_redis_reachability(
    own_redis: RedisServer, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from ferrogate.cli import main

    cfg = tmp_path / "gate.toml"
    cfg.write_text(f'[rate_limit]\nstorage = "{own_redis.url}"\n')
    assert main(["check", str(cfg)]) == 0
    assert "answers PING" in capsys.readouterr().out
    own_redis.stop()
    assert main(["check", str(cfg)]) == 0, "an unreachable Redis is a warning, not an invalid config"
    assert "does not answer" in capsys.readouterr().err


def test_forked_children_use_their_own_connections(redis_server: RedisServer) -> None:
    """gunicorn --preload forks workers from a process that may already hold pooled connections:
    each child opens its own, so replies never cross between processes."""
    import os

    g = gate(redis_server.url, limit="1000/hour")
    assert status(g) == 0  # the parent now has a pooled connection
    children = []
    for n in range(4):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            ok = True
            try:
                for _ in range(50):
                    d = g.check({**ENV, "REMOTE_ADDR": f"192.0.2.{100 + n}"})
                    ok &= d.forward
                ok &= header(d, "ratelimit") == '"a";r=950;t=180'
            except BaseException:
                ok = False
            os._exit(0 if ok else 1)
        children.append(pid)
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
    assert codes == [0, 0, 0, 0]
    d = g.check(ENV)
    assert header(d, "ratelimit") == '"a";r=998;t=8', "the parent's own connection still works"
    stats = g.redis_stats()
    assert stats is not None
    assert stats["errors"] == 0
