"""What the stack adds to a whole request, timed in alternating blocks in one process.

A single pytest-benchmark run times bare and stack minutes apart, and this host's speed changes
by a third from one minute to the next. Here one process builds both apps (the same ones as
``footprint.py`` and the pytest-benchmark stack groups) and alternates blocks of ``--block``
requests: bare, stack, bare, stack... Each pair of adjacent blocks gives a difference and a
ratio of per-request means, and each process prints the medians of its pairs. Processes run one
after the other (``--procs``), each a fresh interpreter, so a slow stretch of the host shows up as
one process's outlier rather than as a skew between the two variants.

    python tests/bench/blocks.py flask --procs 8
    python tests/bench/blocks.py django --procs 6
    PYTHONPATH=/some/other/build python tests/bench/blocks.py flask   # another build's package
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE))

import footprint  # noqa: E402  (after the path: footprint is a sibling module, not a package)


def one_process(framework: str, block: int, pairs: int) -> tuple[float, float, float]:
    """(median bare µs, median added µs, median ratio) over ``pairs`` bare/stack block pairs."""
    bare = footprint.requests_of(f"{framework}-bare")
    stack = footprint.requests_of(f"{framework}-stack")
    n = 0

    def timed(one: Callable[[int], Any]) -> float:
        nonlocal n
        t0 = time.perf_counter()
        for _ in range(block):
            n += 1
            footprint.drain(one(n))
        return (time.perf_counter() - t0) / block * 1e6

    for _ in range(20):  # warm-up: imports, first-request set-up, the allocator's arenas
        timed(bare)
        timed(stack)
    bares, added, ratios = [], [], []
    for _ in range(pairs):
        b = timed(bare)
        s = timed(stack)
        bares.append(b)
        added.append(s - b)
        ratios.append(s / b)
    return statistics.median(bares), statistics.median(added), statistics.median(ratios)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("framework", choices=("flask", "django"))
    parser.add_argument("--procs", type=int, default=6)
    parser.add_argument("--block", type=int, default=25)
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        b, a, r = one_process(args.framework, args.block, args.pairs)
        print(f"{b:.2f} {a:.2f} {r:.4f}")
        return 0
    rows = []
    for i in range(args.procs):
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                args.framework,
                "--child",
                f"--block={args.block}",
                f"--pairs={args.pairs}",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        b, a, r = float(out[0]), float(out[1]), float(out[2])
        rows.append((b, a, r))
        print(f"process {i + 1}: bare {b:7.1f} µs, stack adds {a:+6.1f} µs, {r:.3f}x bare", flush=True)
    bares, adds, ratios = zip(*rows, strict=True)
    print(
        f"{args.framework}, {args.procs} processes, blocks of {args.block}: bare {min(bares):.0f}-{max(bares):.0f} µs;"
        f" adds {min(adds):+.1f} to {max(adds):+.1f} µs (median {statistics.median(adds):+.1f});"
        f" {min(ratios):.3f}-{max(ratios):.3f}x bare (median {statistics.median(ratios):.3f}x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
