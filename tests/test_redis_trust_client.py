"""The Redis client and the deployment around it, from issue 21's smaller points.

- A new connection to a server that accepts but does not answer (paused, overloaded) waits for one
  reply, the command's: the connect handshake asks the server nothing, so the wait is not doubled;
  with a password and a database, AUTH and SELECT go out in one write and are the one wait.
- A worker count set only in a gunicorn config file is detected (the file is parsed, not run).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from ferrogate import Gate, StoreUnavailableError
from ferrogate.ratelimit import detect_worker_processes
from servers import get, start_gunicorn


class Silent:
    """A TCP server that accepts connections and records what it is sent, never answering."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            with self.lock:
                self.received.append(data)

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()


@pytest.fixture
def silent() -> Iterator[Silent]:
    s = Silent()
    yield s
    s.close()


def ping_silent(url: str, silent: Silent) -> list[bytes]:
    """Pings a gate whose Redis is ``url`` on the silent server; what the server was sent."""
    gate = Gate(
        {
            "redis": {"url": url, "connect_timeout_ms": 300, "timeout_ms": 300},
            "rate_limit": {"storage": "redis"},
            "routes": [{"path": "/a", "limit": "1/hour"}],
        }
    )
    with pytest.raises(StoreUnavailableError):
        gate.ping_redis()
    with silent.lock:
        return list(silent.received)


def test_a_new_connection_to_a_silent_server_waits_for_one_reply(silent: Silent) -> None:
    sent = b"".join(ping_silent(f"redis://127.0.0.1:{silent.port}/0", silent))
    # The PING is the only request that waited for an answer: no handshake before it.
    assert b"SETINFO" not in sent, sent
    assert sent.count(b"PING") == 1, sent


def test_auth_and_select_are_one_wait_on_a_silent_server(silent: Silent) -> None:
    # With a password and a database the handshake asks two things; they go out together and a
    # silent server costs the one wait for their replies, after which nothing else is sent.
    chunks = ping_silent(f"redis://:secret@127.0.0.1:{silent.port}/3", silent)
    sent = b"".join(chunks)
    assert sent.count(b"AUTH") == 1, sent
    assert sent.count(b"SELECT") == 1, sent
    assert b"PING" not in sent, sent
    # One write: SELECT did not wait for AUTH's reply.
    assert any(b"AUTH" in c and b"SELECT" in c for c in chunks), chunks


APP = """
import json
from ferrogate.ratelimit import detect_worker_processes

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(detect_worker_processes()).encode()]
"""


def test_a_worker_count_set_only_in_a_gunicorn_config_file_is_detected(tmp_path: Path) -> None:
    (tmp_path / "detect_app.py").write_text(APP)
    conf = tmp_path / "conf.py"
    conf.write_text("import multiprocessing\n\nbind = '127.0.0.1:0'\nworkers = 3\n")
    proc, port = start_gunicorn("detect_app:app", tmp_path, "-c", str(conf), env={"PATH": "/usr/bin:/bin"})
    try:
        assert json.loads(get(port, "/")[1]) == ["gunicorn", 3]
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("workers = 4\n", 4),
        ("import multiprocessing\nworkers = multiprocessing.cpu_count() * 2 + 1\n", None),
        ("workers: int = 5\nworkers = 6\n", 6),
        ("workers = open('/etc/passwd')\n", None),
        ("workers = 'four'\n", None),
        ("threads = 8\n", None),
        ("this is not python\n", None),
    ],
)
def test_the_config_file_is_parsed_not_run(tmp_path: Path, text: str, expected: int | None) -> None:
    import multiprocessing

    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text(text)
    found = detect_worker_processes({}, ["gunicorn", "-c", str(conf), "app:app"], {})
    if expected is None and "cpu_count" in text:
        expected = multiprocessing.cpu_count() * 2 + 1
    assert found == ("gunicorn", expected or 1)
    # The command line and GUNICORN_CMD_ARGS come first, as in gunicorn; WEB_CONCURRENCY last.
    assert detect_worker_processes({}, ["gunicorn", "-w", "2", "-c", str(conf)], {}) == ("gunicorn", 2)
    env = {"GUNICORN_CMD_ARGS": f"--config={conf}", "WEB_CONCURRENCY": "9"}
    assert detect_worker_processes(env, ["gunicorn", "app:app"], {}) == ("gunicorn", expected or 9)
