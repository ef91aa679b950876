"""The host-shared store under a real pre-fork server: gunicorn with 4 worker processes and real
HTTP on 127.0.0.1, no Redis. Proves the quota is exact across processes (also when the master
used the store before forking, with ``--preload``), and that ``kill -9`` of a worker in the
middle of traffic leaves the others answering and the count exact."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path

from servers import fire, get, start_gunicorn

APP = textwrap.dedent(
    """
    import os
    from flask import Flask
    from ferrogate import Gate, RateLimiter

    path = os.environ["FG_HOST_PATH"]
    if os.environ.get("FG_WARM"):
        # The master (with --preload) opens and writes the file before forking its workers.
        RateLimiter("1/hour", storage="host", path=path, name="warm").hit("master")

    gate = Gate({
        "rate_limit": {"storage": "host", "host_path": path},
        "routes": [
            {"path": "/limited", "name": "limited", "limit": os.environ.get("FG_QUOTA", "100/hour")},
            {"path": "/stats", "limit": False},
        ],
    })
    app = Flask(__name__)

    @app.get("/limited")
    def ok():
        return "ok"

    @app.get("/stats")
    def stats():
        return {"pid": os.getpid(), "host_limiters": gate.host_rate_limiters}

    app.wsgi_app = gate.wsgi(app.wsgi_app)
    """
)


def _start(tmp_path: Path, *options: str, **env: str) -> tuple[subprocess.Popen[bytes], int]:
    (tmp_path / "host_app.py").write_text(APP)
    full_env = {"FG_HOST_PATH": str(tmp_path / "limits.mdb"), "PATH": "/usr/bin:/bin", **env}
    proc, port = start_gunicorn("host_app:app", tmp_path, "-w", "4", *options, env=full_env)
    _wait_workers(port, 4)
    return proc, port


def _wait_workers(port: int, n: int) -> set[int]:
    deadline = time.monotonic() + 30
    pids: set[int] = set()
    while len(pids) < n and time.monotonic() < deadline:
        pids.add(json.loads(get(port, "/stats")[1])["pid"])
    assert len(pids) >= n, f"only {len(pids)} workers answered"
    return pids


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=20)


def test_four_workers_allow_exactly_the_quota(tmp_path: Path) -> None:
    proc, port = _start(tmp_path)
    try:
        statuses = fire(port, "/limited", 400)
        # Several processes still answer (which one accepts is the kernel's choice, so poll).
        pids = _wait_workers(port, 2)
    finally:
        _stop(proc)
    assert statuses == Counter({200: 100, 429: 300})
    assert len(pids) > 1
    assert (tmp_path / "limits.mdb").stat().st_mode & 0o077 == 0


def test_preload_master_used_the_file_before_forking(tmp_path: Path) -> None:
    proc, port = _start(tmp_path, "--preload", FG_WARM="1")
    try:
        statuses = fire(port, "/limited", 400)
    finally:
        _stop(proc)
    assert statuses == Counter({200: 100, 429: 300})


def _fire_counting_errors(port: int, total: int, threads: int, sent: list[int]) -> Counter[int | str]:
    """Like ``fire``, but a request whose connection dies (its worker was killed) counts as
    ``"error"`` instead of raising."""
    statuses: Counter[int | str] = Counter()
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(total // threads):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
            try:
                conn.request("GET", "/limited")
                status: int | str = conn.getresponse().status
            except (OSError, http.client.HTTPException):
                status = "error"
            finally:
                conn.close()
            with lock:
                statuses[status] += 1
                sent[0] += 1

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return statuses


def test_kill_9_of_a_worker_mid_traffic_keeps_the_count_exact(tmp_path: Path) -> None:
    quota = 1500
    proc, port = _start(tmp_path, FG_QUOTA=f"{quota}/hour")
    try:
        victims = sorted(_wait_workers(port, 4))
        sent = [0]
        result: list[Counter[int | str]] = []
        runner = threading.Thread(target=lambda: result.append(_fire_counting_errors(port, 2400, 16, sent)))
        runner.start()
        deadline = time.monotonic() + 60
        while sent[0] < 600 and time.monotonic() < deadline:
            time.sleep(0.005)
        # In the middle of traffic, some worker is likely inside a write transaction.
        os.kill(victims[0], signal.SIGKILL)
        runner.join(timeout=120)
        assert not runner.is_alive(), "requests hung: a dead worker's lock was never recovered"
        statuses = result[0]
        after = Counter(get(port, "/limited")[0] for _ in range(20))
        survivors = {json.loads(get(port, "/stats")[1])["pid"] for _ in range(40)}
    finally:
        _stop(proc)
    assert set(statuses) <= {200, 429, "error"}, statuses
    allowed, lost = statuses[200], statuses["error"]
    # Every allowed request was counted once: never more than the quota were answered 200, and
    # the quota was used up by the answered ones plus at most the ones the kill cut off.
    assert allowed <= quota, statuses
    assert allowed + lost >= quota, statuses
    assert lost < 50, statuses
    assert after == Counter({429: 20}), "the quota stays used up"
    assert victims[0] not in survivors
    assert len(survivors) > 1, "the others (and a new worker) answer"
