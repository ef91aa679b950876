"""The whole stack through Flask, same run: JWT HS256 + a rate limit + a cache miss.

ferrogate's FerroGate extension vs bare Flask vs Flask-JWT-Extended + Flask-Limiter +
Flask-Caching. Every request has a fresh query string, so both caches miss (and store); a separate
group measures a FerroGate cache hit against the bare endpoint.
"""

from __future__ import annotations

import io
import itertools
import time
from typing import Any

import flask
import pytest
from ferrogate import encode
from ferrogate.flask import FerroGate
from flask_caching import Cache
from flask_jwt_extended import JWTManager, jwt_required
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

SECRET = "flask-stack-bench-secret-long-enough-for-hs256"
BIG = "1000000000/hour"
STACK = "flask stack: JWT HS256 + limit + cache miss (whole request)"
HIT = "flask stack: cache hit vs the bare endpoint (whole request)"


def _token() -> str:
    return encode(
        {"sub": "user-42", "exp": time.time() + 3600, "type": "access", "fresh": False, "jti": "j1"},
        SECRET,
        "HS256",
    )


def _view() -> Any:
    return {"items": [{"id": i, "title": f"Article {i}"} for i in range(10)]}


def environ(query: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/articles",
        "QUERY_STRING": query,
        "REMOTE_ADDR": "198.51.100.7",
        "HTTP_AUTHORIZATION": f"Bearer {_TOKEN}",
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


_TOKEN = _token()


def _bench(benchmark: Any, app: Any, *, fresh_query: bool, expect_header: str | None = None) -> None:
    counter = itertools.count()
    seen: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen.append((status, headers))

    def run() -> None:
        env = environ(f"i={next(counter)}" if fresh_query else "i=0")
        body = app(env, start_response)
        for _ in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()

    run()
    status, headers = seen[-1]
    assert status.startswith("200"), status
    if expect_header is not None:
        assert any(k.lower() == expect_header for k, _ in headers), headers
    benchmark(run)


def bare_app() -> flask.Flask:
    app = flask.Flask(__name__)
    app.get("/articles")(_view)
    return app


def ferrogate_app() -> flask.Flask:
    app = flask.Flask(__name__)
    app.config["FERROGATE_JWT"] = {"algorithms": ["HS256"], "key": SECRET}
    gate = FerroGate()
    app.get("/articles")(gate.auth()(gate.limit(BIG, key="sub")(gate.cache(ttl=60)(_view))))
    gate.init_app(app)
    return app


def peer_app() -> flask.Flask:
    app = flask.Flask(__name__)
    app.config.update(JWT_SECRET_KEY=SECRET, JWT_TOKEN_LOCATION=["headers"], CACHE_TYPE="SimpleCache")
    JWTManager(app)
    limiter = Limiter(get_remote_address, app=app, storage_uri="memory://", headers_enabled=True)
    cache = Cache(app)
    app.get("/articles")(
        jwt_required()(limiter.limit(BIG)(cache.cached(timeout=60, query_string=True)(_view)))
    )
    return app


@pytest.mark.benchmark(group=STACK)
def test_bare_flask(benchmark: Any) -> None:
    _bench(benchmark, bare_app().wsgi_app, fresh_query=True)


@pytest.mark.benchmark(group=STACK)
def test_ferrogate_flask_stack(benchmark: Any) -> None:
    _bench(benchmark, ferrogate_app().wsgi_app, fresh_query=True, expect_header="ratelimit")


@pytest.mark.benchmark(group=STACK)
def test_peer_stack_jwt_extended_limiter_caching(benchmark: Any) -> None:
    _bench(benchmark, peer_app().wsgi_app, fresh_query=True, expect_header="x-ratelimit-limit")


@pytest.mark.benchmark(group=HIT)
def test_bare_flask_same_request(benchmark: Any) -> None:
    _bench(benchmark, bare_app().wsgi_app, fresh_query=False)


@pytest.mark.benchmark(group=HIT)
def test_ferrogate_flask_cache_hit(benchmark: Any) -> None:
    _bench(benchmark, ferrogate_app().wsgi_app, fresh_query=False, expect_header="cache-status")
