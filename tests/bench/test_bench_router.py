"""Route matching over the 203-route GitHub API set: ferrogate.Router vs werkzeug, same run.

One call matches all 203 requests, so the per-match figure is the median divided by 203.
"""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from ferrogate import Gate, Router
from werkzeug.routing import Map, Rule

_PARAM = re.compile(r"\{(\*?)(\w+)\}")


def to_werkzeug(pattern: str) -> str:
    return _PARAM.sub(lambda m: f"<path:{m[2]}>" if m[1] else f"<{m[2]}>", pattern)


@pytest.mark.benchmark(group="router: match 203 GitHub requests")
def test_ferrogate_router_match(
    benchmark: Any, github_routes: list[tuple[str, str]], github_requests: list[tuple[str, str]]
) -> None:
    r = Router()
    for method, pattern in github_routes:
        r.insert(pattern, pattern, [method])
    match = r.match
    reqs = github_requests

    def run() -> int:
        n = 0
        for method, path in reqs:
            if match(method, path) is not None:
                n += 1
        return n

    assert run() == len(reqs)
    benchmark.extra_info["ops"] = len(reqs)
    benchmark(run)


@pytest.mark.benchmark(group="router: match 203 GitHub requests")
def test_werkzeug_map_match(
    benchmark: Any, github_routes: list[tuple[str, str]], github_requests: list[tuple[str, str]]
) -> None:
    rules: dict[str, list[str]] = {}
    for method, pattern in github_routes:
        rules.setdefault(to_werkzeug(pattern), []).append(method)
    m = Map([Rule(p, methods=methods, endpoint=p) for p, methods in rules.items()])
    adapter = m.bind("api.example.com")
    match = adapter.match
    reqs = github_requests

    def run() -> int:
        n = 0
        for method, path in reqs:
            match(path, method)
            n += 1
        return n

    assert run() == len(reqs)
    benchmark.extra_info["ops"] = len(reqs)
    benchmark(run)


def _environ(method: str, path: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "REMOTE_ADDR": "127.0.0.1",
        "SERVER_NAME": "api.example.com",
        "SERVER_PORT": "80",
        "wsgi.input": io.BytesIO(),
        "wsgi.url_scheme": "http",
    }


@pytest.mark.benchmark(group="gate: check an allowed request (no auth/limit/cache)")
def test_ferrogate_gate_check_allowed(benchmark: Any, github_routes: list[tuple[str, str]]) -> None:
    gate = Gate({"routes": [{"path": p, "methods": [m]} for m, p in github_routes]})
    env = _environ("GET", "/repos/octo/hello/issues/7")
    d = gate.check(env)
    assert d.forward
    assert d.params == {"owner": "octo", "repo": "hello", "number": "7"}
    benchmark(gate.check, env)


@pytest.mark.benchmark(group="gate: check an allowed request (no auth/limit/cache)")
def test_werkzeug_bind_to_environ_match(benchmark: Any, github_routes: list[tuple[str, str]]) -> None:
    rules: dict[str, list[str]] = {}
    for method, pattern in github_routes:
        rules.setdefault(to_werkzeug(pattern), []).append(method)
    m = Map([Rule(p, methods=methods, endpoint=p) for p, methods in rules.items()])
    env = _environ("GET", "/repos/octo/hello/issues/7")

    def run() -> Any:
        return m.bind_to_environ(env).match()

    assert run()[1] == {"owner": "octo", "repo": "hello", "number": "7"}
    benchmark(run)
