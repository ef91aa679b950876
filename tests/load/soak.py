"""Soak: mixed traffic against one gunicorn worker (gthread, 8 threads) on 127.0.0.1 for a while,
sampling the worker's RSS and thread count. Exits non-zero if RSS grows more than 10 % after the
warm-up or threads leak.

    python tests/load/soak.py [--seconds 600] [--clients 8] [--redis]

``--redis`` runs the same traffic with the rate limits counted in a redis-server started for the
run (on a free loopback port), and also requires the worker's open sockets to stay flat: a pool
that leaks connections shows there first.

Traffic: valid tokens, invalid tokens, over-quota writes, cacheable reads with many distinct
query strings (cache churn), denied paths and distinct client keys (limiter churn). Bounded by
time; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import os
import random
import sys
import threading
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from servers import start_gunicorn  # noqa: E402 (tests/ is put on the path just above)


def worker_pid(master: int) -> int:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return int(children[0])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def threads(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/task").iterdir()))


def sockets(pid: int) -> int:
    """Open sockets of the worker (client connections and, with --redis, its Redis pool)."""
    n = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # closed between the listing and the readlink
            n += fd.readlink().name.startswith("socket:")
    return n


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=600)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--redis", action="store_true", help="count the limits in a local redis-server")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    from apps import TOKEN

    env = dict(os.environ)
    redis = None
    if args.redis:
        from redis_server import RedisServer

        redis = RedisServer()
        redis.start()
        env["FG_LOAD_REDIS"] = redis.url

    server = None
    try:
        server, port = start_gunicorn(
            "apps:gated", HERE, "-k", "gthread", "--threads", "8", "-w", "1", env=env
        )
        pid = worker_pid(server.pid)
        stop = time.monotonic() + args.seconds
        counts: Counter[int] = Counter()
        lock = threading.Lock()
        seq = itertools.count()

        def client(n: int) -> None:
            rng = random.Random(n)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            while time.monotonic() < stop:
                i = next(seq)
                kind = rng.random()
                headers = {}
                if kind < 0.3:
                    path = f"/articles?page={i % 5000}"  # cache churn
                elif kind < 0.5:
                    path = "/me"
                    headers["Authorization"] = f"Bearer {TOKEN}"
                elif kind < 0.6:
                    path = "/me"
                    headers["Authorization"] = "Bearer not.a.valid-token"
                elif kind < 0.7:
                    path = "/admin/stats"
                else:
                    path = f"/articles/{1 + i % 5}"
                    headers["X-Forwarded-For"] = f"203.0.113.{i % 250}"
                try:
                    conn.request("GET", path, headers=headers)
                    resp = conn.getresponse()
                    resp.read()
                    status = resp.status
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                    status = 0
                with lock:
                    counts[status] += 1
            conn.close()

        pool = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(args.clients)]
        for t in pool:
            t.start()
        samples: list[tuple[float, int, int, int]] = []
        started = time.monotonic()
        while time.monotonic() < stop:
            time.sleep(min(10, max(0.5, args.seconds / 20)))
            samples.append((time.monotonic() - started, rss_kib(pid), threads(pid), sockets(pid)))
            t, rss, th, so = samples[-1]
            print(
                f"{t:7.1f}s  rss {rss / 1024:7.1f} MiB  threads {th:3}  sockets {so:3}  "
                f"requests {sum(counts.values())}",
                flush=True,
            )
        for t in pool:
            t.join(timeout=15)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=20)
        if redis is not None:
            redis.close()
    print(f"statuses: {dict(counts)}")
    warm = samples[len(samples) // 4 :]
    base_rss = warm[0][1]
    peak_rss = max(s[1] for s in warm)
    growth = (peak_rss - base_rss) / base_rss if base_rss else 0.0
    thread_counts = {s[2] for s in warm}
    # The last sample may fall while the clients hang up.
    socket_counts = [s[3] for s in warm[:-1]] or [warm[0][3]]
    print(
        f"RSS after warm-up: {base_rss / 1024:.1f} -> peak {peak_rss / 1024:.1f} MiB ({growth:+.1%}); "
        f"threads {sorted(thread_counts)}; sockets {min(socket_counts)}..{max(socket_counts)}"
    )
    # Sockets: one per client connection plus the Redis pool (at most one per server thread).
    ok = (
        growth <= 0.10
        and max(thread_counts) - min(thread_counts) <= 2
        and max(socket_counts) - min(socket_counts) <= 8
        and counts.get(500, 0) == 0
        and counts.get(0, 0) == 0
    )
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
