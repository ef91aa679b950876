"""The WSGI store path: what is buffered, what is sent, and indexes that survive a re-store."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

from ferrogate import Gate
from flask import Flask, Response, request

MIB = 1 << 20


def environ(path: str, method: str = "GET", **headers: str) -> dict[str, Any]:
    env: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "api.example.com",
        "SERVER_PORT": "80",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": io.StringIO(),
    }
    env.update({f"HTTP_{k.upper()}": v for k, v in headers.items()})
    return env


def streaming_app(pulled: list[int], tags: str | None = None, length: bool = False) -> Flask:
    app = Flask(__name__)

    @app.get("/dl")
    def dl() -> Any:
        def gen() -> Iterator[bytes]:
            for i in range(6):
                pulled.append(i)
                yield b"y" * MIB

        headers = {"X-Cache-Tags": tags} if tags else {}
        if length:
            headers["Content-Length"] = str(6 * MIB)
        return Response(gen(), headers=headers)

    return app


def run(gate: Gate, app: Flask, env: dict[str, Any]) -> tuple[list[tuple[str, str]], Any]:
    seen: list[tuple[str, str]] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen.extend(headers)

    return seen, gate.wsgi(app.wsgi_app)(env, start_response)


def test_a_body_over_max_entry_bytes_streams_without_its_tags() -> None:
    pulled: list[int] = []
    app = streaming_app(pulled, tags="internal:42")
    gate = Gate({"cache": {"max_entry_bytes": MIB}, "routes": [{"path": "/dl", "cache": 60}]})
    headers, body = run(gate, app, environ("/dl"))
    chunks = iter(body)
    first = next(chunks)
    assert len(pulled) <= 2, "buffered past max_entry_bytes"
    names = {k.lower(): v for k, v in headers}
    assert "x-cache-tags" not in names
    assert names["cache-status"] == "ferrogate; fwd=miss; detail=too-large"
    rest = b"".join(chunks)
    body.close()
    assert len(first) + len(rest) == 6 * MIB
    assert gate.cache is not None
    assert gate.cache.stats()["entries"] == 0


def test_a_declared_length_over_the_limit_is_not_buffered_at_all() -> None:
    pulled: list[int] = []
    app = streaming_app(pulled, length=True)
    gate = Gate({"cache": {"max_entry_bytes": MIB}, "routes": [{"path": "/dl", "cache": 60}]})
    headers, body = run(gate, app, environ("/dl"))
    assert pulled == []
    assert dict(headers)["cache-status"] == "ferrogate; fwd=miss; detail=too-large"
    assert len(b"".join(body)) == 6 * MIB


def test_a_re_stored_entry_is_still_invalidated_and_purged() -> None:
    app = Flask(__name__)
    version = [1]

    @app.route("/doc", methods=["GET", "POST"])
    def doc() -> Any:
        if request.method == "POST":
            version[0] += 1
            return "", 204
        return {"v": version[0]}, 200, {"X-Cache-Tags": "docs"}

    gate = Gate({"routes": [{"path": "/doc", "cache": 60}]})
    app.wsgi_app = gate.wsgi(app.wsgi_app)  # type: ignore[method-assign]
    c = app.test_client()
    assert c.get("/doc").json == {"v": 1}
    refetched = c.get("/doc", headers={"Cache-Control": "no-cache"})
    assert refetched.headers["Cache-Status"] == "ferrogate; fwd=miss; stored"
    assert c.post("/doc").status_code == 204
    after = c.get("/doc")
    assert after.json == {"v": 2}
    assert after.headers["Cache-Status"] == "ferrogate; fwd=miss; stored"
    c.get("/doc", headers={"Cache-Control": "no-cache"})
    assert gate.cache is not None
    assert gate.cache.purge_tag("docs") == 1


def test_a_stored_body_is_whole_however_the_app_sent_it() -> None:
    """One chunk (sent back as the app's own object), several chunks, ``write()`` plus chunks, and an
    empty chunk first: the miss sends and the hit serves exactly the app's bytes."""

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        kind = environ["PATH_INFO"].rsplit("/", 1)[-1]
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        if kind == "one":
            return [b"hello world"]
        if kind == "many":
            return iter([b"hello", b" ", b"world"])
        if kind == "written":
            write(b"hello")
            return [b" world"]
        return iter([b"", b"hello world"])

    gate = Gate({"routes": [{"path": "/{kind}", "cache": 60}]})
    wrapped = gate.wsgi(app)
    sent: list[list[tuple[str, str]]] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        sent.append(headers)

    for kind in ("one", "many", "written", "empty-first"):
        for expected in ("fwd=miss; stored", "hit"):
            result = wrapped(environ(f"/{kind}"), start_response)
            assert b"".join(result) == b"hello world", kind
            status = {k.lower(): v for k, v in sent[-1]}["cache-status"]
            assert status.startswith(f"ferrogate; {expected}"), (kind, status)


_NAME_CAP_SCRIPT = r"""
from ferrogate import Gate

calls = []

def app(environ, start_response):
    n = int(environ["PATH_INFO"].rsplit("/", 1)[1])
    calls.append(n)
    start_response("200 OK", [("Content-Type", "text/plain"), (f"X-Item-{n}", str(n))])
    return [b"item %d" % n]

gate = Gate({"routes": [{"path": "/items/{n}", "cache": 60}]})
wsgi = gate.wsgi(app)

def get(n):
    seen = []
    env = {"REQUEST_METHOD": "GET", "PATH_INFO": f"/items/{n}", "QUERY_STRING": "",
           "SERVER_NAME": "h", "SERVER_PORT": "80", "REMOTE_ADDR": "127.0.0.1",
           "wsgi.url_scheme": "http"}
    body = b"".join(wsgi(env, lambda s, h, e=None: seen.extend(h)))
    return {k.lower(): v for k, v in seen}, body

# Past the process's cap on kept header names (4096, with the few the gate itself keeps).
for n in range(4200):
    get(n)
for n in range(4200):
    get(n)
headers_last, body_last = get(4199)
headers_first, _ = get(0)
import json
print(json.dumps([len(calls), headers_first, headers_last, body_last.decode()]))
"""


def test_header_names_past_the_process_cap_are_served_by_the_app_never_renamed() -> None:
    # In a child process: the kept names are process-wide, and filling them here would change
    # what every later test's hits can serve.
    out = subprocess.run(
        [sys.executable, "-c", _NAME_CAP_SCRIPT], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    calls, first, last, body = json.loads(out)
    # The first round stores everything; in the second, early names are hits and the ones past
    # the cap go back to the app each time.
    assert 4200 + 100 < calls < 2 * 4200, calls
    assert first["x-item-0"] == "0"
    assert first["cache-status"].startswith("ferrogate; hit")
    assert last["x-item-4199"] == "4199"
    assert last["cache-status"] == "ferrogate; fwd=miss; stored"
    assert body == "item 4199"
