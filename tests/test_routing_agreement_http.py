"""The `//` and method-case classes of issue 19 over real HTTP: a Flask app under gunicorn on
127.0.0.1, raw request lines sent on a socket (an HTTP client library would normalise them)."""

from __future__ import annotations

import socket
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import start_gunicorn

APP = textwrap.dedent(
    """
    from flask import Flask
    from ferrogate.flask import FerroGate

    app = Flask(__name__)
    app.config["FERROGATE_JWT"] = {"algorithms": ["HS256"], "key": "http-test-secret-long-enough-for-hs256"}
    gate = FerroGate()

    @app.get("/admin/<path:page>")
    @gate.auth(scopes=["admin"])
    def admin(page):
        return {"admin": page}

    @app.get("/admin/help/<topic>")
    @gate.cache(ttl=60, public=True)
    def help_page(topic):
        return {"help": topic}

    @app.route("/articles/<int:aid>", methods=["GET", "DELETE"])
    @gate.policy(access="deny")
    def article(aid):
        return {"deleted": aid}

    @app.route("/<path:anything>", methods=["GET", "DELETE", "POST"])
    def anything(anything):
        return {"anything": anything}

    gate.init_app(app)
    """
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    where: Path = tmp_path_factory.mktemp("http_app")
    (where / "agreement_app.py").write_text(APP)
    proc, port = start_gunicorn("agreement_app:app", where, "-w", "1")
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def raw(port: int, request_line: str) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"{request_line}\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_double_slash_over_http(server: int) -> None:
    status, body = raw(server, "GET /admin/help//x HTTP/1.1")
    assert status == 401, body
    assert raw(server, "GET /admin/help/x HTTP/1.1") == (200, b'{"help":"x"}\n')


def test_lower_case_method_over_http(server: int) -> None:
    status, body = raw(server, "delete /articles/1 HTTP/1.1")
    # gunicorn may refuse the lower-case method itself; it must never reach the view unchecked.
    assert status in (400, 403), body
    assert b"deleted" not in body
