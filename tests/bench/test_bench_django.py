"""A Django view with JWT + throttle + cache (miss), same run: bare vs ferrogate (GateMiddleware)
vs djangorestframework-simplejwt + DRF throttling + cache_page. Django's WSGI handler is called
in-process with a prepared environ; every request has a fresh query, so both caches miss."""

from __future__ import annotations

import io
import itertools
import time
from typing import Any

import pytest
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from ferrogate import encode

GROUP = "django: view + JWT + throttle + cache miss (whole request)"


def token() -> str:
    claims = {"sub": "42", "exp": time.time() + 3600, "token_type": "access", "jti": "j1", "user_id": "42"}
    return encode(claims, settings.JWT_SECRET, "HS256")


def environ(path: str, token: str | None, query: str) -> dict[str, Any]:
    env: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "REMOTE_ADDR": "198.51.100.7",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": io.StringIO(),
        "wsgi.url_scheme": "http",
    }
    if token is not None:
        env["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return env


def _bench(benchmark: Any, path: str, token: str | None) -> None:
    handler = WSGIHandler()
    counter = itertools.count()
    seen: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen.append(status)

    def run() -> None:
        body = handler(environ(path, token, f"i={next(counter)}"), start_response)
        for _ in body:
            pass
        body.close()

    run()
    assert seen[-1].startswith("200"), seen[-1]
    benchmark(run)


@pytest.mark.benchmark(group=GROUP)
def test_bare_django_view(benchmark: Any) -> None:
    _bench(benchmark, "/bench/bare/", None)


@pytest.mark.benchmark(group=GROUP)
def test_ferrogate_django_view(benchmark: Any) -> None:
    _bench(benchmark, "/bench/ferrogate/", token())


@pytest.mark.benchmark(group=GROUP)
def test_peer_simplejwt_drf_throttle_cache_page(benchmark: Any) -> None:
    _bench(benchmark, "/bench/peer/", token())
