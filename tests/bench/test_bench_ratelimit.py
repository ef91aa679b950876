"""Rate limiting: ferrogate.RateLimiter vs the `limits` library (what Flask-Limiter uses), and a
rate-limited Flask endpoint through the gate vs Flask-Limiter, in the same run.

Per-hit groups run 1000 hits per benchmark call (``extra_info["ops"]``), so the figure per hit is
the median / 1000 and includes the Python loop both sides pay. Every limiter uses the same quota,
``1000/hour``: with one key, hits after the first thousand are refused (both libraries' refusal
path); with 100k or 1M keys every key stays live (an hour-long quota is never idle within the run)
and every hit is allowed, so the tables really hold that many keys.

Whole-request groups call the WSGI app directly (no test client) with a fresh environ per call.
"""

from __future__ import annotations

import io
import itertools
import subprocess
import sys
from typing import Any

import flask
import pytest
from ferrogate import Gate, RateLimiter
from flask_limiter import Limiter as FlaskLimiter
from flask_limiter.util import get_remote_address
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

QUOTA = "1000/hour"
OPS = 1000


def _keys(n: int) -> list[str]:
    return [f"client-{i}" for i in range(n)]


def _cycle_batches(keys: list[str]) -> Any:
    """An endless supply of 1000-key batches walking through `keys`."""
    batches = [keys[i : i + OPS] for i in range(0, len(keys), OPS)]
    return itertools.cycle(batches)


def _ours(n_keys: int) -> tuple[Any, list[str]]:
    lim = RateLimiter(QUOTA, max_keys=max(n_keys, 1000))
    keys = _keys(n_keys)
    for k in keys:
        lim.hit(k)
    return lim.hit, keys


def _limits(strategy: type[Any], n_keys: int) -> tuple[Any, list[str]]:
    limiter = strategy(MemoryStorage())
    item = parse(QUOTA)
    keys = _keys(n_keys)
    for k in keys:
        limiter.hit(item, k)

    def hit(key: str) -> bool:
        return bool(limiter.hit(item, key))

    return hit, keys


def _bench_one_key(benchmark: Any, hit: Any) -> None:
    def run() -> None:
        for _ in range(OPS):
            hit("one")

    benchmark.extra_info["ops"] = OPS
    benchmark(run)


def _bench_many(benchmark: Any, hit: Any, keys: list[str]) -> None:
    batches = _cycle_batches(keys)

    def run() -> None:
        for k in next(batches):
            hit(k)

    benchmark.extra_info["ops"] = OPS
    benchmark.extra_info["keys"] = len(keys)
    benchmark(run)


@pytest.mark.bench
@pytest.mark.benchmark(group="ratelimit: hit, one key")
def test_ferrogate_hit_one_key(benchmark: Any) -> None:
    hit, _ = _ours(1)
    _bench_one_key(benchmark, hit)


@pytest.mark.bench
@pytest.mark.benchmark(group="ratelimit: hit, one key")
def test_limits_fixed_window_hit_one_key(benchmark: Any) -> None:
    hit, _ = _limits(FixedWindowRateLimiter, 1)
    _bench_one_key(benchmark, hit)


@pytest.mark.bench
@pytest.mark.benchmark(group="ratelimit: hit, one key")
def test_limits_moving_window_hit_one_key(benchmark: Any) -> None:
    hit, _ = _limits(MovingWindowRateLimiter, 1)
    _bench_one_key(benchmark, hit)


@pytest.mark.bench
@pytest.mark.benchmark(group="ratelimit: hit, 100k keys")
def test_ferrogate_hit_100k_keys(benchmark: Any) -> None:
    hit, keys = _ours(100_000)
    _bench_many(benchmark, hit, keys)


@pytest.mark.bench
@pytest.mark.benchmark(group="ratelimit: hit, 100k keys")
def test_limits_fixed_window_hit_100k_keys(benchmark: Any) -> None:
    hit, keys = _limits(FixedWindowRateLimiter, 100_000)
    _bench_many(benchmark, hit, keys)


@pytest.mark.bench
@pytest.mark.benchmark(group="ratelimit: hit, 100k keys")
def test_limits_moving_window_hit_100k_keys(benchmark: Any) -> None:
    hit, keys = _limits(MovingWindowRateLimiter, 100_000)
    _bench_many(benchmark, hit, keys)


@pytest.mark.bench
@pytest.mark.benchmark(group="ratelimit: hit, 1M keys")
def test_ferrogate_hit_1m_keys(benchmark: Any) -> None:
    hit, keys = _ours(1_000_000)
    _bench_many(benchmark, hit, keys)


_RSS_PROBE = """
import os, sys
from ferrogate import RateLimiter

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

n = int(sys.argv[1])
keys = [f"client-{i}" for i in range(n)]  # built before the first reading, so not counted
before = rss()
lim = RateLimiter("1000/hour")
for k in keys:
    lim.hit(k)
after = rss()
print(len(lim), lim.memory_bytes(), after - before)
"""


@pytest.mark.bench
@pytest.mark.benchmark(group="ratelimit: peek at 1M live keys (+ bytes per key)")
def test_ferrogate_peek_1m_keys_and_bytes_per_key(benchmark: Any) -> None:
    """Records bytes per live key at 1M keys, by table size and by RSS delta in a fresh process
    (so memory freed by earlier benchmarks cannot hide the growth), then times peek at 1M keys."""
    out = subprocess.run(
        [sys.executable, "-c", _RSS_PROBE, "1000000"], check=True, capture_output=True, text=True
    ).stdout.split()
    live, table, rss = (int(x) for x in out)
    assert live == 1_000_000
    benchmark.extra_info["table_bytes_per_key"] = round(table / live, 1)
    benchmark.extra_info["rss_bytes_per_key"] = round(rss / live, 1)
    print(f"\nbytes per live key at 1M keys: table {table / live:.1f}, RSS delta {rss / live:.1f}")
    assert table / live <= 120
    assert rss / live <= 120
    lim = RateLimiter(QUOTA)
    keys = _keys(1_000_000)
    for k in keys:
        lim.hit(k)
    batches = _cycle_batches(keys)
    peek = lim.peek

    def run() -> None:
        for k in next(batches):
            peek(k)

    benchmark.extra_info["ops"] = OPS
    benchmark(run)


# -- whole request ------------------------------------------------------------------------------

BIG = "1000000000/hour"  # never refuses during the run: every request reaches the view


def _flask_app() -> flask.Flask:
    app = flask.Flask(__name__)

    @app.route("/items/<int:item>")
    def item(item: int) -> str:
        return "ok"

    return app


def _environ() -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/items/7",
        "QUERY_STRING": "",
        "REMOTE_ADDR": "198.51.100.7",
        "SERVER_NAME": "api.example.com",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": io.StringIO(),
        "wsgi.url_scheme": "http",
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }


def _bench_wsgi(benchmark: Any, app: Any, expect_header: str | None) -> None:
    base = _environ()
    seen: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen.append((status, headers))
        return None

    def run() -> None:
        body = app(dict(base), start_response)
        for _ in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()

    run()
    status, headers = seen[-1]
    assert status.startswith("200")
    if expect_header is not None:
        assert any(k.lower() == expect_header for k, _ in headers), headers
    seen.clear()

    def measured() -> None:
        run()
        seen.clear()

    benchmark(measured)


@pytest.mark.bench
@pytest.mark.benchmark(group="ratelimit: Flask request with a limit")
def test_bare_flask_endpoint(benchmark: Any) -> None:
    _bench_wsgi(benchmark, _flask_app().wsgi_app, None)


@pytest.mark.bench
@pytest.mark.benchmark(group="ratelimit: Flask request with a limit")
def test_ferrogate_gate_limited_endpoint(benchmark: Any) -> None:
    app = _flask_app()
    gate = Gate({"routes": [{"path": "/items/{id}", "limit": BIG}]})
    _bench_wsgi(benchmark, gate.wsgi(app.wsgi_app), "ratelimit")


@pytest.mark.bench
@pytest.mark.benchmark(group="ratelimit: Flask request with a limit")
def test_flask_limiter_limited_endpoint(benchmark: Any) -> None:
    app = _flask_app()
    FlaskLimiter(
        get_remote_address,
        app=app,
        default_limits=[BIG],
        storage_uri="memory://",
        headers_enabled=True,
    )
    _bench_wsgi(benchmark, app.wsgi_app, "x-ratelimit-limit")
