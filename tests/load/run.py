"""Load test: the example Flask API under gunicorn (real HTTP on 127.0.0.1), driven by wrk.

    python tests/load/run.py [--duration 5] [--workers 2] [--connections 16]

Each variant is served in turn by gunicorn on a free loopback port and driven by wrk for the same
duration; the table gives requests/s, the ratio to the bare app measured in the same run, and the
share of the server's ceiling (gunicorn serving an app that returns two constant bytes).
Requests are bounded by the duration; nothing leaves 127.0.0.1. The Redis variants count the limits
in a redis-server started on a free loopback port for the run (direct: one round trip per request;
batched: leases of 100).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from servers import free_port, wait_listening  # noqa: E402 (tests/ is put on the path just above)

# (name, gunicorn target, path, with a bearer token, Redis: None, "direct" or "batched")
VARIANTS: list[tuple[str, str, str, bool, str | None]] = [
    ("ceiling: gunicorn + a 2-byte WSGI app", "apps:ceiling", "/", False, None),
    ("bare: GET /articles/1", "apps:bare", "/articles/1", False, None),
    ("ferrogate: GET /articles/1 (limit + cache hit)", "apps:gated", "/articles/1", False, None),
    ("ferrogate: GET /me (JWT + limit)", "apps:gated", "/me", True, None),
    ("ferrogate+Redis: GET /articles/1 (cache hit)", "apps:gated", "/articles/1", False, "direct"),
    ("ferrogate+Redis: GET /me (JWT + limit)", "apps:gated", "/me", True, "direct"),
    ("ferrogate+Redis batch=100: GET /me", "apps:gated", "/me", True, "batched"),
]


def run_variant(
    target: str, path: str, token: bool, args: argparse.Namespace, env: dict[str, str] | None = None
) -> float:
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-w",
            str(args.workers),
            "-b",
            f"127.0.0.1:{port}",
            "--chdir",
            str(HERE),
            "--log-level",
            "warning",
            target,
        ],
        env={**os.environ, **(env or {})},
    )
    try:
        if not wait_listening(port, 20.0):
            raise RuntimeError(f"gunicorn did not listen on {port}")
        url = f"http://127.0.0.1:{port}{path}"
        header: list[str] = []
        if token:
            sys.path.insert(0, str(HERE))
            from apps import TOKEN

            header = ["-H", f"Authorization: Bearer {TOKEN}"]
        subprocess.run(
            ["wrk", "-t1", "-c4", "-d1s", *header, url], capture_output=True, check=True
        )  # warm-up
        out = subprocess.run(
            ["wrk", "-t2", f"-c{args.connections}", f"-d{args.duration}s", *header, url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        m = re.search(r"Requests/sec:\s+([\d.]+)", out)
        if m is None or "Non-2xx" in out:
            raise RuntimeError(f"unexpected wrk output:\n{out}")
        return float(m.group(1))
    finally:
        server.terminate()
        server.wait(timeout=20)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    from redis_server import RedisServer

    redis = RedisServer()
    redis.start()
    try:
        results = {}
        for name, target, path, token, store in VARIANTS:
            env = None
            if store is not None:
                env = {"FG_LOAD_REDIS": redis.url, "FG_LOAD_BATCH": "100" if store == "batched" else "0"}
            results[name] = run_variant(target, path, token, args, env)
    finally:
        redis.close()
    print(f"\nunder gunicorn -w {args.workers}, wrk -t2 -c{args.connections} -d{args.duration}s, 127.0.0.1")
    print(f"{'variant':50} {'req/s':>10} {'vs bare':>8} {'of ceiling':>11}")
    base = results["bare: GET /articles/1"]
    top = results["ceiling: gunicorn + a 2-byte WSGI app"]
    for name, rps in results.items():
        print(f"{name:50} {rps:10.0f} {rps / base:7.2f}x {rps / top:10.0%}")
    # What a cache hit can gain is bounded by what the server costs per request without any app.
    print(f"\nthe server's ceiling is {top / base:.2f}x bare: no app behind it can be served faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
