"""What a whole request costs in instructions and cache misses, counted by valgrind, not timed.

Timed benchmarks on a shared VM swing by a third from one second to the next; callgrind's counts do
not depend on how fast the host is at the moment. Each variant runs twice under
``valgrind --tool=callgrind --cache-sim=yes`` (``LOW`` and ``HIGH`` requests, everything else equal),
and the difference divided by ``HIGH - LOW`` is the cost of one request: instructions, lines missed
in the L1 caches (32 KiB code, 32 KiB data, as on these hosts), and lines missed in a simulated
512 KiB L2 (the per-core L2 of the machines we measure on; ``lscpu`` prints "1 MiB (2 instances)"
for two cores). The stack variants are the pytest-benchmark groups' (JWT HS256 + limit + cache
miss, a fresh query per request).

    python tests/bench/footprint.py            # needs valgrind; about ten minutes on two cores
    python tests/bench/footprint.py --run flask-stack 100   # the requests alone (valgrind's child)
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
VARIANTS = ("flask-bare", "flask-stack", "django-bare", "django-stack")
LOW, HIGH = 300, 1300
#: callgrind's event order with --cache-sim=yes.
EVENTS = ("Ir", "Dr", "Dw", "I1mr", "D1mr", "D1mw", "ILmr", "DLmr", "DLmw")
#: Cache geometries (size, ways, line) given to valgrind rather than read from the host, so the
#: printout's labels hold wherever it runs: the L1s of these hosts, and their per-core L2.
L1 = "32768,8,64"
L2 = "524288,8,64"


def requests_of(variant: str) -> Any:
    """A callable making one request of ``variant`` (query ``i=<n>``)."""
    sys.path[:0] = [str(_HERE.parent), str(_HERE)]
    framework, kind = variant.split("-")

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        if not status.startswith("200"):
            raise RuntimeError(f"{variant}: the benchmark request was answered {status}")

    if framework == "flask":
        import test_bench_flask_stack as fl

        # The Flask app itself, as a server calls it (and as the pytest-benchmark groups do).
        app = fl.bare_app() if kind == "bare" else fl.ferrogate_app()
        return lambda n: app(fl.environ(f"i={n}"), start_response)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_project.settings")
    import django

    django.setup()
    import test_bench_django as dj
    from django.core.handlers.wsgi import WSGIHandler

    handler = WSGIHandler()
    path = "/bench/bare/" if kind == "bare" else "/bench/ferrogate/"
    token = None if kind == "bare" else dj.token()
    return lambda n: handler(dj.environ(path, token, f"i={n}"), start_response)


def drain(body: Any) -> None:
    """What a server does with a WSGI result: read it all, then close it."""
    for _ in body:
        pass
    close = getattr(body, "close", None)
    if close is not None:
        close()


def run(variant: str, n: int) -> None:
    one = requests_of(variant)
    for i in range(n):
        drain(one(i))


def count(variant: str, n: int, out_dir: Path) -> dict[str, int]:
    """callgrind's totals for a process that makes ``n`` requests."""
    out = out_dir / f"callgrind.{variant}.{n}"
    proc = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--cache-sim=yes",
            f"--I1={L1}",
            f"--D1={L1}",
            f"--LL={L2}",
            f"--callgrind-out-file={out}",
            sys.executable,
            __file__,
            "--run",
            variant,
            str(n),
        ],
        capture_output=True,
        text=True,
        # Python's hash seed changes dict layouts, and with them the counts.
        env={**os.environ, "PYTHONHASHSEED": "0"},
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{variant} x{n} under valgrind failed:\n{proc.stderr[-2000:]}")
    m = re.search(r"Collected : ([\d ]+)", proc.stderr)
    if m is None:
        raise RuntimeError(f"no callgrind totals for {variant} x{n}:\n{proc.stderr[-2000:]}")
    return dict(zip(EVENTS, map(int, m.group(1).split()), strict=True))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", nargs=2, metavar=("VARIANT", "N"))
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    args = parser.parse_args()
    if args.run:
        run(args.run[0], int(args.run[1]))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    jobs = [(v, n) for v in VARIANTS for n in (LOW, HIGH)]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        totals = dict(zip(jobs, pool.map(lambda j: count(j[0], j[1], args.out), jobs), strict=True))
    per: dict[str, dict[str, float]] = {
        v: {e: (totals[(v, HIGH)][e] - totals[(v, LOW)][e]) / (HIGH - LOW) for e in EVENTS} for v in VARIANTS
    }
    print(
        f"\nper request, counted by callgrind (L1 code and data each simulated as {L1}, L2 as {L2}: size, ways, line)"
    )
    print(
        f"{'variant':14} {'instructions':>13} {'L1 misses':>10} {'L2 misses':>10} {'code':>7} {'data':>7}   vs bare"
    )

    def l1_misses(p: dict[str, float]) -> float:
        return p["I1mr"] + p["D1mr"] + p["D1mw"]

    def l2_misses(p: dict[str, float]) -> float:
        return p["ILmr"] + p["DLmr"] + p["DLmw"]

    for v in VARIANTS:
        p = per[v]
        l1, misses = l1_misses(p), l2_misses(p)
        line = (
            f"{v:14} {p['Ir']:13,.0f} {l1:10,.0f} {misses:10,.0f} {p['ILmr']:7,.0f}"
            f" {p['DLmr'] + p['DLmw']:7,.0f}"
        )
        if v.endswith("-stack"):
            b = per[v.replace("-stack", "-bare")]
            line += (
                f"   instructions {p['Ir'] / b['Ir']:.3f}x, L1 misses {l1 / l1_misses(b):.3f}x,"
                f" L2 misses {misses / l2_misses(b):.2f}x"
            )
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
