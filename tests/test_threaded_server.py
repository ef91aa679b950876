"""The gate under a threaded server (gunicorn gthread, 8 threads, real HTTP on 127.0.0.1) gives the
same answers as a single thread: exact counts under concurrency."""

from __future__ import annotations

import http.client
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from pathlib import Path

import pytest
from servers import free_port, wait_listening

APP = textwrap.dedent(
    """
    from flask import Flask
    from ferrogate import Gate

    gate = Gate({
        "routes": [
            {"path": "/limited", "limit": "100/hour"},
            {"path": "/cached", "cache": 60},
            {"path": "/denied", "access": "deny"},
        ]
    })
    app = Flask(__name__)
    calls = {"cached": 0}

    @app.get("/limited")
    def limited():
        return "ok"

    @app.get("/cached")
    def cached():
        calls["cached"] += 1
        return {"calls": calls["cached"]}

    @app.get("/calls")
    def count():
        return calls

    app.wsgi_app = gate.wsgi(app.wsgi_app)
    """
)


@pytest.fixture
def server(tmp_path: Path) -> object:
    (tmp_path / "threaded_app.py").write_text(APP)
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-k",
            "gthread",
            "--threads",
            "8",
            "-w",
            "1",
            "-b",
            f"127.0.0.1:{port}",
            "--chdir",
            str(tmp_path),
            "--log-level",
            "warning",
            "threaded_app:app",
        ],
    )
    if not wait_listening(port):  # pragma: no cover
        proc.kill()
        pytest.fail("gunicorn did not start")
    yield port
    proc.terminate()
    proc.wait(timeout=20)


def _get(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def _fire(port: int, path: str, total: int, threads: int = 16) -> Counter[int]:
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    per_thread = total // threads

    def worker() -> None:
        for _ in range(per_thread):
            status = _get(port, path)
            with lock:
                statuses[status] += 1

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return statuses


def test_exact_quota_under_eight_threads(server: int) -> None:
    statuses = _fire(server, "/limited", 320)
    assert statuses == Counter({200: 100, 429: 220})


def test_denied_and_cached_under_eight_threads(server: int) -> None:
    assert _fire(server, "/denied", 64) == Counter({403: 64})
    statuses = _fire(server, "/cached", 160)
    assert statuses == Counter({200: 160})
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=20)
    conn.request("GET", "/calls")
    body = conn.getresponse().read()
    conn.close()
    # Concurrent misses are coalesced: the view ran once (or a few times if a miss landed before
    # the first store began), never once per request.
    import json

    assert 1 <= json.loads(body)["cached"] <= 8
