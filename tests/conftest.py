from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from redis_server import RedisServer

# Bounded in `make test`; `make fuzz` runs the same properties for much longer.
settings.register_profile("ci", max_examples=300, deadline=None)
settings.register_profile("long", max_examples=20_000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"


def _read_pairs(name: str) -> list[tuple[str, str]]:
    pairs = []
    for line in (DATA / name).read_text().splitlines():
        if line.strip():
            method, path = line.split(maxsplit=1)
            pairs.append((method, path))
    return pairs


@pytest.fixture(scope="session")
def github_routes() -> list[tuple[str, str]]:
    """The 203-route GitHub API set (method, matchit pattern)."""
    return _read_pairs("github_routes.txt")


@pytest.fixture(scope="session")
def github_requests() -> list[tuple[str, str]]:
    """One concrete request per GitHub route (method, path)."""
    return _read_pairs("github_requests.txt")


def _running_redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def redis_session() -> Iterator[RedisServer]:
    """One real redis-server for the session (started once, stopped at the end)."""
    yield from _running_redis()


@pytest.fixture
def redis_server(redis_session: RedisServer) -> Iterator[RedisServer]:
    """The session's redis-server, running and empty at the start of each test."""
    redis_session.start()
    redis_session.flushall()
    yield redis_session
    redis_session.resume()
    redis_session.start()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own (for tests that kill or pause it)."""
    yield from _running_redis()


@pytest.fixture(scope="session", autouse=True)
def _drf_views_bound_under_the_project_settings() -> None:
    """DRF binds a view's ``throttle_classes`` (and its other defaults) from ``REST_FRAMEWORK`` when
    the class is defined. Imported first inside a test's ``override_settings`` (one that empties
    ``DEFAULT_THROTTLE_CLASSES``, say), the project's views would keep that test's settings for the
    rest of the session, and whether a later test is throttled would depend on the order."""
    import django_project.views  # noqa: F401
