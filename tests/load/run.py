"""Load test: the example Flask API under gunicorn (real HTTP on 127.0.0.1), driven by wrk.

    python tests/load/run.py [--duration 5] [--workers 2] [--connections 16] [--rounds 3]
                             [--only SUBSTRING ...]

Each variant is served in turn by gunicorn on a free loopback port and driven by wrk for the same
duration. wrk runs on the last CPU, and gunicorn (with redis-server, for the Redis variants) on
the others: on a 2-core machine, one each, so the load generator takes no CPU from the server it
measures. The table gives requests/s, the ratio to the bare app measured in the same run, and the
share of the server's ceiling (gunicorn serving an app that returns two constant bytes).
Requests are bounded by the duration; nothing leaves 127.0.0.1. The Redis variants count the limits
in a redis-server started on a free loopback port for the run (direct: one round trip per request;
batched: leases of 100). The host variants count them in one LMDB file shared by the workers
(``storage = "host"``); the last lines compare them with the same requests counted in memory.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from servers import start_gunicorn  # noqa: E402 (tests/ is put on the path just above)

# (name, gunicorn target, path, with a bearer token, store: None (memory), "host", or Redis:
# "direct" or "batched")
VARIANTS: list[tuple[str, str, str, bool, str | None]] = [
    ("ceiling: gunicorn + a 2-byte WSGI app", "apps:ceiling", "/", False, None),
    ("bare: GET /articles/1", "apps:bare", "/articles/1", False, None),
    ("ferrogate: GET /articles/1 (limit + cache hit)", "apps:gated", "/articles/1", False, None),
    ("ferrogate host: GET /articles/1 (limit + cache hit)", "apps:gated", "/articles/1", False, "host"),
    ("ferrogate: GET /me (JWT + limit)", "apps:gated", "/me", True, None),
    ("ferrogate host: GET /me (JWT + limit)", "apps:gated", "/me", True, "host"),
    ("ferrogate+Redis: GET /articles/1 (cache hit)", "apps:gated", "/articles/1", False, "direct"),
    ("ferrogate+Redis: GET /me (JWT + limit)", "apps:gated", "/me", True, "direct"),
    ("ferrogate+Redis batch=100: GET /me", "apps:gated", "/me", True, "batched"),
]


def cpu_split() -> tuple[set[int], set[int]]:
    """The cores for the server and for wrk: wrk gets the last one to itself, so the load
    generator's own CPU is not taken from the server it measures. One core: both share it."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return set(cores), set(cores)
    return set(cores[:-1]), {cores[-1]}


def run_variant(
    target: str,
    path: str,
    token: bool,
    args: argparse.Namespace,
    wrk_cpus: set[int],
    env: dict[str, str] | None = None,
) -> float:
    server, port = start_gunicorn(
        target, HERE, "-w", str(args.workers), env={**os.environ, **(env or {})}, timeout=20
    )
    try:
        url = f"http://127.0.0.1:{port}{path}"
        header: list[str] = []
        if token:
            sys.path.insert(0, str(HERE))
            from apps import TOKEN

            header = ["-H", f"Authorization: Bearer {TOKEN}"]
        pin = ["taskset", "-c", ",".join(map(str, sorted(wrk_cpus)))]
        subprocess.run(
            [*pin, "wrk", "-t1", "-c4", "-d1s", *header, url], capture_output=True, check=True
        )  # warm-up
        out = subprocess.run(
            [*pin, "wrk", f"-t{len(wrk_cpus)}", f"-c{args.connections}", f"-d{args.duration}s", *header, url],
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
    parser.add_argument(
        "--rounds", type=int, default=3, help="runs of every variant, interleaved; the median is reported"
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        help="run only the variants whose name contains this (repeatable; the bare app always runs)",
    )
    args = parser.parse_args()
    variants = [
        v
        for v in VARIANTS
        if not args.only or v[0].startswith(("bare", "ceiling")) or any(o in v[0] for o in args.only)
    ]
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    # Everything started from here (redis-server, gunicorn) inherits the server's CPUs.
    server_cpus, wrk_cpus = cpu_split()
    os.sched_setaffinity(0, server_cpus)
    import tempfile

    from redis_server import RedisServer

    host_dir = tempfile.mkdtemp(prefix="ferrogate-load-")
    redis = RedisServer()
    redis.start()
    # Shared machines change speed from minute to minute: every variant runs once per round, and
    # its median over the rounds is compared with the bare app's. Every other round runs the
    # variants in reverse, so a drift in the host's speed favours neither of two neighbours.
    runs: dict[str, list[float]] = {name: [] for name, *_ in variants}
    try:
        for r in range(args.rounds):
            for name, target, path, token, store in variants if r % 2 == 0 else variants[::-1]:
                env = None
                if store == "host":
                    env = {"FG_LOAD_HOST": os.path.join(host_dir, "limits.mdb")}
                elif store is not None:
                    env = {"FG_LOAD_REDIS": redis.url, "FG_LOAD_BATCH": "100" if store == "batched" else "0"}
                runs[name].append(run_variant(target, path, token, args, wrk_cpus, env))
    finally:
        redis.close()
        shutil.rmtree(host_dir, ignore_errors=True)
    results = {name: statistics.median(r) for name, r in runs.items()}
    print(
        f"\nunder gunicorn -w {args.workers} on CPUs {sorted(server_cpus)}, wrk -t{len(wrk_cpus)} "
        f"-c{args.connections} -d{args.duration}s on CPUs {sorted(wrk_cpus)}, 127.0.0.1; "
        f"median of {args.rounds} interleaved rounds"
    )
    print(f"{'variant':50} {'req/s':>10} {'vs bare':>8} {'of ceiling':>11}")
    base = results["bare: GET /articles/1"]
    top = results["ceiling: gunicorn + a 2-byte WSGI app"]
    for name, rps in results.items():
        print(f"{name:50} {rps:10.0f} {rps / base:7.2f}x {rps / top:10.0%}")
    # What a cache hit can gain is bounded by what the server costs per request without any app.
    print(f"\nthe server's ceiling is {top / base:.2f}x bare: no app behind it can be served faster")
    for memory, host in [
        (
            "ferrogate: GET /articles/1 (limit + cache hit)",
            "ferrogate host: GET /articles/1 (limit + cache hit)",
        ),
        ("ferrogate: GET /me (JWT + limit)", "ferrogate host: GET /me (JWT + limit)"),
    ]:
        if host in results and memory in results:
            # Paired by round: each round's host run against the memory run beside it.
            ratios = sorted(h / m for h, m in zip(runs[host], runs[memory], strict=True))
            print(
                f"host / memory, {memory.split(': ', 1)[1]}: {statistics.median(ratios):.2f}x"
                f" (median of {len(ratios)} rounds; {ratios[0]:.2f}-{ratios[-1]:.2f})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
