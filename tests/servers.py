"""Helpers for tests that run real servers on 127.0.0.1: a free port, waiting until one listens,
starting gunicorn, and plain HTTP GETs against it, one at a time or from many threads at once."""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_listening(port: int, timeout: float = 30.0) -> bool:
    """True once something accepts connections on ``127.0.0.1:port``; False after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.05)
    return False


def start_gunicorn(
    target: str, chdir: str | Path, *options: str, env: Mapping[str, str] | None = None, timeout: float = 30.0
) -> tuple[subprocess.Popen[bytes], int]:
    """``python -m gunicorn <options> <target>`` on a free loopback port, run from ``chdir`` with
    quiet logs, once it listens. A server that never listens is killed and raises RuntimeError."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            *options,
            "-b",
            f"127.0.0.1:{port}",
            "--chdir",
            str(chdir),
            "--log-level",
            "warning",
            target,
        ],
        env=None if env is None else dict(env),
    )
    if not wait_listening(port, timeout):
        proc.kill()
        proc.wait(timeout=10)
        raise RuntimeError(f"gunicorn ({target}) did not listen on 127.0.0.1:{port}")
    return proc, port


def get(port: int, path: str) -> tuple[int, bytes]:
    """``GET path`` on a fresh connection: the status and the body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def fire(port: int, path: str, total: int, threads: int = 16) -> Counter[int]:
    """``total`` GETs of ``path`` from ``threads`` threads at once; how many got each status."""
    statuses: Counter[int] = Counter()
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(total // threads):
            status, _ = get(port, path)
            with lock:
                statuses[status] += 1

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return statuses
