"""Response caching, ferrogate vs Flask-Caching, and the memoize decorator vs cachetools, same run.

Whole requests call the WSGI app directly with a prepared environ (no sockets), as the other
whole-request benchmarks do.
"""

from __future__ import annotations

import io
import time
from typing import Any

import cachetools
import flask
import pytest
from ferrogate import Gate, cached
from flask_caching import Cache
from redis_server import RedisServer

GROUP = "cache: GET a cached JSON endpoint (whole request)"


def _app() -> flask.Flask:
    app = flask.Flask(__name__)

    @app.get("/articles")
    def articles() -> Any:
        return {"items": [{"id": i, "title": f"Article {i}"} for i in range(10)], "page": 1}

    return app


def _environ() -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/articles",
        "QUERY_STRING": "page=1",
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


def _bench(benchmark: Any, app: Any, expect: str | None = None) -> None:
    base = _environ()
    seen: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen.append((status, headers))

    def run() -> bytes:
        body = app(dict(base), start_response)
        out = b"".join(body)
        close = getattr(body, "close", None)
        if close is not None:
            close()
        return out

    first = run()
    second = run()
    assert first == second
    status, headers = seen[-1]
    assert status.startswith("200")
    if expect is not None:
        assert any(k.lower() == "cache-status" and v.startswith(expect) for k, v in headers), headers
    benchmark(run)


@pytest.mark.benchmark(group=GROUP)
def test_bare_flask_endpoint(benchmark: Any) -> None:
    _bench(benchmark, _app().wsgi_app)


@pytest.mark.benchmark(group=GROUP)
def test_ferrogate_gate_cache_hit(benchmark: Any) -> None:
    app = _app()
    gate = Gate({"routes": [{"path": "/articles", "cache": 60}]})
    _bench(benchmark, gate.wsgi(app.wsgi_app), "ferrogate; hit")


@pytest.mark.benchmark(group=GROUP)
def test_ferrogate_gate_cache_hit_shared_tier(benchmark: Any, redis_server: RedisServer) -> None:
    """An L1 hit with the Redis tier on: no network call, one more atomic load."""
    app = _app()
    gate = Gate(
        {
            "redis": {"url": redis_server.url},
            "cache": {"shared": "redis"},
            "routes": [{"path": "/articles", "cache": 60}],
        }
    )
    assert gate.cache is not None
    deadline = time.monotonic() + 5
    while not gate.cache.stats()["l2_connected"] and time.monotonic() < deadline:
        time.sleep(0.01)
    _bench(benchmark, gate.wsgi(app.wsgi_app), "ferrogate; hit")


@pytest.mark.benchmark(group=GROUP)
def test_flask_caching_hit(benchmark: Any) -> None:
    app = _app()
    cache = Cache(app, config={"CACHE_TYPE": "SimpleCache"})
    view = app.view_functions["articles"]
    app.view_functions["articles"] = cache.cached(timeout=60, query_string=True)(view)
    _bench(benchmark, app.wsgi_app)


def _expensive(n: int) -> int:
    return n * 2


@pytest.mark.benchmark(group="cache: memoized function hit")
def test_ferrogate_cached_hit(benchmark: Any) -> None:
    f = cached(maxsize=1024)(_expensive)
    f(21)
    benchmark(f, 21)


@pytest.mark.benchmark(group="cache: memoized function hit")
def test_cachetools_lru_hit(benchmark: Any) -> None:
    f = cachetools.cached(cachetools.LRUCache(maxsize=1024))(_expensive)
    f(21)
    benchmark(f, 21)


@pytest.mark.benchmark(group="cache: memoized function hit")
def test_cachetools_ttl_hit(benchmark: Any) -> None:
    f = cachetools.cached(cachetools.TTLCache(maxsize=1024, ttl=60))(_expensive)
    f(21)
    benchmark(f, 21)
