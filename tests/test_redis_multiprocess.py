"""The Redis store under a real pre-fork server: gunicorn with 4 worker processes, real HTTP on
127.0.0.1, a real redis-server. Proves the quota is exact across processes, and that killing
Redis mid-run gives the configured failure mode (never a 500) and recovers when it is back."""

from __future__ import annotations

import json
import subprocess
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis_server import RedisServer
from servers import fire, get, start_gunicorn

APP = textwrap.dedent(
    """
    import os
    from flask import Flask
    from ferrogate import Gate

    gate = Gate({
        "redis": {"url": os.environ["FG_REDIS"], "breaker_cooldown_ms": 200},
        "rate_limit": {"storage": "redis", "batch": int(os.environ.get("FG_BATCH", "0"))},
        "routes": [
            {"path": "/limited", "limit": "100/hour"},
            {"path": "/open", "limit": {"quota": "1000/hour", "on_error": "allow"}},
            {"path": "/closed", "limit": {"quota": "1000/hour", "on_error": "deny"}},
            {"path": "/local", "limit": {"quota": "1000/hour", "on_error": "local"}},
            {"path": "/stats", "limit": False},
        ],
    })
    app = Flask(__name__)

    @app.get("/limited")
    @app.get("/open")
    @app.get("/closed")
    @app.get("/local")
    def ok():
        return "ok"

    @app.get("/stats")
    def stats():
        return {"pid": os.getpid(), **gate.redis_stats()}

    app.wsgi_app = gate.wsgi(app.wsgi_app)
    """
)


def _start(tmp_path: Path, redis_url: str, batch: int = 0) -> tuple[subprocess.Popen[bytes], int]:
    (tmp_path / "redis_app.py").write_text(APP)
    env = {"FG_REDIS": redis_url, "FG_BATCH": str(batch), "PATH": "/usr/bin:/bin"}
    proc, port = start_gunicorn("redis_app:app", tmp_path, "-w", "4", env=env)
    deadline = time.monotonic() + 30
    # Every worker is up once four distinct pids have answered.
    pids: set[int] = set()
    while len(pids) < 4 and time.monotonic() < deadline:
        pids.add(json.loads(get(port, "/stats")[1])["pid"])
    return proc, port


@pytest.fixture
def workers(tmp_path: Path, redis_server: RedisServer) -> Iterator[int]:
    proc, port = _start(tmp_path, redis_server.url)
    yield port
    proc.terminate()
    proc.wait(timeout=20)


def _pids_that_served(port: int) -> set[int]:
    return {json.loads(get(port, "/stats")[1])["pid"] for _ in range(40)}


def test_four_workers_allow_exactly_the_quota(workers: int) -> None:
    statuses = fire(workers, "/limited", 400)
    assert statuses == Counter({200: 100, 429: 300})
    assert len(_pids_that_served(workers)) > 1, "the requests were spread over several processes"


def test_batched_four_workers_never_exceed_the_quota(tmp_path: Path, redis_server: RedisServer) -> None:
    proc, port = _start(tmp_path, redis_server.url, batch=5)
    try:
        statuses = fire(port, "/limited", 400)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert set(statuses) <= {200, 429}
    # Leased units are taken from Redis when granted: never more than the quota; each of the 4
    # workers may end holding up to 4 unused units of its last lease.
    assert 100 - 4 * 4 <= statuses[200] <= 100


def test_redis_killed_mid_run_then_back(tmp_path: Path, own_redis: RedisServer) -> None:
    proc, port = _start(tmp_path, own_redis.url)
    try:
        assert fire(port, "/closed", 32) == Counter({200: 32})
        own_redis.stop()
        down: dict[str, Counter[int]] = {p: fire(port, p, 64) for p in ("/open", "/closed", "/local")}
        assert down["/open"] == Counter({200: 64}), "fail open"
        assert down["/closed"] == Counter({503: 64}), "fail closed"
        assert down["/local"] == Counter({200: 64}), "local fallback (well under its divided quota)"
        own_redis.start()
        deadline = time.monotonic() + 10
        while True:
            # Recovery: within the breaker's cooldown every worker goes back to Redis.
            if fire(port, "/closed", 32) == Counter({200: 32}):
                break
            assert time.monotonic() < deadline, "the workers did not go back to Redis"
            time.sleep(0.25)
        stats = [json.loads(get(port, "/stats")[1]) for _ in range(20)]
        assert all(s["breaker"] == "closed" for s in stats)
        assert sum(s["failed_open"] for s in {s["pid"]: s for s in stats}.values()) > 0
    finally:
        proc.terminate()
        proc.wait(timeout=20)
