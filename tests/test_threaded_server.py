"""The gate under a threaded server (gunicorn gthread, 8 threads, real HTTP on 127.0.0.1) gives the
same answers as a single thread: exact counts under concurrency."""

from __future__ import annotations

import textwrap
from collections import Counter
from pathlib import Path

import pytest
from servers import fire, get, start_gunicorn

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
    proc, port = start_gunicorn("threaded_app:app", tmp_path, "-k", "gthread", "--threads", "8", "-w", "1")
    yield port
    proc.terminate()
    proc.wait(timeout=20)


def test_exact_quota_under_eight_threads(server: int) -> None:
    statuses = fire(server, "/limited", 320)
    assert statuses == Counter({200: 100, 429: 220})


def test_denied_and_cached_under_eight_threads(server: int) -> None:
    assert fire(server, "/denied", 64) == Counter({403: 64})
    statuses = fire(server, "/cached", 160)
    assert statuses == Counter({200: 160})
    _, body = get(server, "/calls")
    # Concurrent misses are coalesced: the view ran once (or a few times if a miss landed before
    # the first store began), never once per request.
    import json

    assert 1 <= json.loads(body)["cached"] <= 8
