"""GateMiddleware in front of a plain WSGI app and a real Flask app."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from ferrogate import Gate
from ferrogate.wsgi import GateMiddleware
from flask import Flask, request
from werkzeug.test import Client

CONFIG: dict[str, Any] = {
    "routes": [
        {"path": "/admin/{*rest}", "access": "deny"},
        {"path": "/items/{id}", "methods": ["GET", "DELETE"], "name": "item"},
        {"path": "/stream", "methods": ["GET"]},
        {"path": "/file", "methods": ["GET"]},
        {"path": "/caf\u00e9/{x}", "methods": ["GET"], "name": "cafe"},
    ]
}


def environ(method: str = "GET", path: str = "/", **extra: Any) -> dict[str, Any]:
    env: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "test",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": io.StringIO(),
        "wsgi.url_scheme": "http",
    }
    env.update(extra)
    return env


class Recorder:
    """A plain WSGI app that records what it saw and streams its body."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.closed = 0

    def __call__(self, env: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        self.calls.append(env)
        start_response("200 OK", [("content-type", "text/plain")])
        recorder = self

        class Body:
            def __iter__(self) -> Iterator[bytes]:
                yield b"chunk1;"
                yield b"chunk2"

            def close(self) -> None:
                recorder.closed += 1

        return Body()


def call(app: Any, env: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes, Iterable[bytes]]:
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured["status"] = status
        captured["headers"] = headers
        return lambda data: None

    result = app(env, start_response)
    body = b"".join(result)
    return captured["status"], captured["headers"], body, result


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def wrapped(recorder: Recorder) -> GateMiddleware:
    return GateMiddleware(recorder, Gate(CONFIG))


def test_forwarded_request_sees_route_and_params(wrapped: GateMiddleware, recorder: Recorder) -> None:
    status, _, body, result = call(wrapped, environ("GET", "/items/42"))
    assert status == "200 OK"
    assert body == b"chunk1;chunk2"
    env = recorder.calls[0]
    assert env["ferrogate.route"] == "/items/{id}"
    assert env["ferrogate.route_name"] == "item"
    assert env["ferrogate.params"] == {"id": "42"}
    # The app's iterable is handed back untouched: streaming and close() are the server's.
    assert type(result).__name__ == "Body"
    getattr(result, "close")()  # noqa: B009 - the server would call it
    assert recorder.closed == 1


def test_unmatched_paths_are_forwarded_without_route(wrapped: GateMiddleware, recorder: Recorder) -> None:
    status, _, _, _ = call(wrapped, environ("GET", "/whatever"))
    assert status == "200 OK"
    assert recorder.calls[0]["ferrogate.route"] is None
    assert recorder.calls[0]["ferrogate.params"] == {}


def test_denied_request_never_reaches_the_app(wrapped: GateMiddleware, recorder: Recorder) -> None:
    status, headers, body, _ = call(wrapped, environ("GET", "/admin/users"))
    assert status == "403 Forbidden"
    h = dict(headers)
    assert h["content-type"] == "application/problem+json"
    assert h["content-length"] == str(len(body))
    problem = json.loads(body)
    assert problem["status"] == 403
    assert problem["title"] == "Forbidden"
    assert problem["type"] == "about:blank"
    assert recorder.calls == []


def test_method_not_allowed_lists_allow(wrapped: GateMiddleware, recorder: Recorder) -> None:
    status, headers, body, _ = call(wrapped, environ("PUT", "/items/1"))
    assert status == "405 Method Not Allowed"
    assert dict(headers)["allow"] == "GET, HEAD, DELETE"
    assert json.loads(body)["allow"] == ["GET", "HEAD", "DELETE"]
    assert recorder.calls == []


def test_head_of_a_refused_request_has_no_body(wrapped: GateMiddleware) -> None:
    status, headers, body, _ = call(wrapped, environ("HEAD", "/admin/x"))
    assert status == "403 Forbidden"
    assert body == b""
    assert int(dict(headers)["content-length"]) > 0


@pytest.mark.parametrize("path", ["/admin/", "/admin/a/b/c"])
def test_deny_cannot_be_dodged_by_slashes(wrapped: GateMiddleware, path: str) -> None:
    assert call(wrapped, environ("GET", path))[0] == "403 Forbidden"


@pytest.mark.parametrize("path", ["//admin//x", "/items//1", "//", "/items/1//"])
def test_empty_segments_are_refused_by_the_plain_gate(
    wrapped: GateMiddleware, recorder: Recorder, path: str
) -> None:
    # The plain gate cannot know how the app reads `//` (merged, kept, redirected): it refuses.
    status, _, body, _ = call(wrapped, environ("GET", path))
    assert status == "400 Bad Request"
    assert "empty segment" in json.loads(body)["detail"]
    assert recorder.calls == []


def test_method_case_is_read_and_forwarded_upper_case(wrapped: GateMiddleware, recorder: Recorder) -> None:
    # werkzeug and Django upper-case the method: the gate checks DELETE and forwards DELETE, so no
    # app behind can see another method than the one checked.
    env = environ("delete", "/admin/x")
    assert call(wrapped, env)[0] == "403 Forbidden"
    env = environ("get", "/items/1")
    call(wrapped, env)
    assert recorder.calls[-1]["REQUEST_METHOD"] == "GET"


@pytest.mark.parametrize("path", ["/items/../admin/x", "/items/./1", "/a\x00"])
def test_bad_paths_are_400(wrapped: GateMiddleware, recorder: Recorder, path: str) -> None:
    status, _, body, _ = call(wrapped, environ("GET", path))
    assert status == "400 Bad Request"
    assert json.loads(body)["status"] == 400
    assert recorder.calls == []


def test_latin1_wsgi_path_is_read_as_utf8(wrapped: GateMiddleware, recorder: Recorder) -> None:
    # PEP 3333: the server hands the raw bytes as latin-1 code points.
    raw = "/café/1".encode().decode("latin-1")
    status, _, _, _ = call(wrapped, environ("GET", raw))
    assert status == "200 OK"
    assert recorder.calls[0]["ferrogate.route_name"] == "cafe"


def test_invalid_utf8_path_is_400(wrapped: GateMiddleware) -> None:
    raw = b"/caf\xe9/1".decode("latin-1")
    assert call(wrapped, environ("GET", raw))[0] == "400 Bad Request"


def test_missing_or_odd_environ_values(wrapped: GateMiddleware, recorder: Recorder) -> None:
    env = environ("GET", "/items/1")
    del env["REQUEST_METHOD"]
    assert call(wrapped, env)[0] == "400 Bad Request"
    env = environ("GET", "/items/1")
    env["PATH_INFO"] = 12  # not a string: treated as absent, i.e. "/"
    assert call(wrapped, env)[0] == "200 OK"
    env = environ("GET", "")
    assert call(wrapped, env)[0] == "200 OK"


def test_file_wrapper_passes_through() -> None:
    class FileWrapper:
        def __init__(self, f: Any, blksize: int = 8192) -> None:
            self.f = f

        def __iter__(self) -> Iterator[bytes]:
            yield self.f.read()

    def app(env: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("content-type", "application/octet-stream")])
        result: Iterable[bytes] = env["wsgi.file_wrapper"](io.BytesIO(b"file body"))
        return result

    wrapped = Gate(CONFIG).wsgi(app)
    _, _, body, result = call(wrapped, environ("GET", "/file", **{"wsgi.file_wrapper": FileWrapper}))
    assert isinstance(result, FileWrapper)
    assert body == b"file body"


def flask_app() -> Flask:
    app = Flask(__name__)

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> Any:
        return {"id": item_id, "route": request.environ.get("ferrogate.route")}

    @app.delete("/items/<int:item_id>")
    def delete_item(item_id: int) -> Any:
        return "", 204

    @app.get("/admin/<path:rest>")
    def admin(rest: str) -> Any:
        return {"secret": True}

    @app.get("/stream")
    def stream() -> Any:
        def gen() -> Iterator[str]:
            for i in range(3):
                yield f"part{i};"

        return app.response_class(gen(), mimetype="text/plain")

    return app


def test_under_flask() -> None:
    app = flask_app()
    app.wsgi_app = Gate(CONFIG).wsgi(app.wsgi_app)  # type: ignore[method-assign]
    client = app.test_client()
    r = client.get("/items/7")
    assert r.status_code == 200
    assert r.json == {"id": 7, "route": "/items/{id}"}
    assert client.delete("/items/7").status_code == 204
    r = client.put("/items/7")
    assert r.status_code == 405
    assert r.headers["Allow"] == "GET, HEAD, DELETE"
    r = client.get("/admin/secret")
    assert r.status_code == 403
    assert r.mimetype == "application/problem+json"
    assert "secret" not in r.get_data(as_text=True)
    r = client.get("/stream")
    assert r.get_data() == b"part0;part1;part2;"


def test_streaming_through_werkzeug_client() -> None:
    app = flask_app()
    client = Client(Gate(CONFIG).wsgi(app.wsgi_app))
    response = client.get("/stream", buffered=False)
    chunks = list(response.iter_encoded())
    assert b"".join(chunks) == b"part0;part1;part2;"
    response.close()


def test_gate_check_returns_a_decision() -> None:
    gate = Gate(CONFIG)
    d = gate.check(environ("GET", "/items/5"))
    assert d.forward
    assert d.status == 0
    assert d.status_line == ""
    assert d.headers == ()
    assert repr(d) == '<Decision forward route="/items/{id}">'
    d = gate.check(environ("GET", "/admin/x"))
    assert not d.forward
    assert d.status == 403
    assert repr(d) == "<Decision respond 403>"


def test_gate_is_shared_safely_across_threads() -> None:
    import threading

    gate = Gate(CONFIG)
    errors: list[str] = []

    def worker(n: int) -> None:
        for i in range(2000):
            d = gate.check(environ("GET", f"/items/{n}-{i}"))
            if not d.forward or d.params != {"id": f"{n}-{i}"}:
                errors.append(f"{n}-{i}")
            if gate.check(environ("GET", "/admin/x")).status != 403:
                errors.append("admin")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
