"""Helpers for tests that run real servers on 127.0.0.1: a free port, waiting until one listens,
and plain HTTP GETs against it, one at a time or from many threads at once."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections import Counter


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
