"""The slowest single ``ResponseCache.put`` while a store grows, and while a full one evicts.

A measurement, not a test (tests never assert times): a table that grows in one step shows up
here as one put taking milliseconds. Run it on a release build:

    .venv/bin/python tests/bench/store_growth.py
"""

from __future__ import annotations

import statistics
import time

from ferrogate import ResponseCache

PUTS = 140_000
BODY = b"x" * 300
HEADERS = [("content-type", "application/json")]


def timed_puts(cache: ResponseCache, path: str, tags: list[str]) -> list[int]:
    took = []
    for i in range(PUTS):
        start = time.perf_counter_ns()
        cache.put(f"{path}{i}", 200, HEADERS, BODY, tags=tags)
        took.append(time.perf_counter_ns() - start)
    return took


def report(label: str, took: list[int]) -> None:
    ordered = sorted(took)
    worst = max(took)
    print(
        f"{label}: median {statistics.median(ordered) / 1e3:.2f} µs, "
        f"p99.9 {ordered[int(len(ordered) * 0.999)] / 1e3:.1f} µs, "
        f"slowest {worst / 1e6:.2f} ms (put {took.index(worst)})"
    )


def main() -> None:
    # Room for everything: every index only grows, and all keys share one tag.
    report("growing, one tag", timed_puts(ResponseCache(max_bytes=256 << 20), "/items/", ["items"]))
    report("growing, no tags", timed_puts(ResponseCache(max_bytes=256 << 20), "/plain/", []))
    # Full after a few thousand puts: from then on each put evicts.
    report("evicting", timed_puts(ResponseCache(max_bytes=4 << 20), "/evict/", []))


if __name__ == "__main__":
    main()
