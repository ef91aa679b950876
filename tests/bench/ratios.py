"""Prints a ratio table from a pytest-benchmark JSON file: ferrogate vs its peer, same run.

Benchmarks are paired by group (``@pytest.mark.benchmark(group=...)``): in each group, the test whose
name contains ``ferrogate`` is ours, every other one a peer. Times are medians per operation
(``extra_info["ops"]`` operations per call), in microseconds.

    python tests/bench/ratios.py bench-results/latest.json
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from typing import Any


def per_op_us(bench: dict[str, Any]) -> float:
    ops = bench.get("extra_info", {}).get("ops", 1)
    return float(bench["stats"]["median"]) * 1e6 / ops


def main(path: str) -> int:
    with open(path) as f:
        data = json.load(f)
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for b in data["benchmarks"]:
        groups[b.get("group") or b["name"]].append(b)
    machine = data.get("machine_info", {})
    print(
        f"\nmedians per operation, {machine.get('cpu', {}).get('brand_raw', '?')}, python {machine.get('python_version', '?')}"
    )
    print(f"{'group':44} {'benchmark':46} {'median µs':>10} {'ratio':>8}")
    for group in sorted(groups):
        members = groups[group]
        ours = [b for b in members if "ferrogate" in b["name"]]
        base = per_op_us(ours[0]) if ours else None
        for b in sorted(members, key=per_op_us):
            t = per_op_us(b)
            ratio = "" if base is None or "ferrogate" in b["name"] else f"{t / base:7.1f}x"
            print(f"{group[:44]:44} {b['name'][:46]:46} {t:10.3f} {ratio:>8}")
    print("\nratio = peer median / ferrogate median in the same group (higher: ferrogate faster)")
    for b in data["benchmarks"]:
        extra = b.get("extra_info", {})
        if "bytes_per_key" in extra:
            print(
                f"{b['name']}: {extra['bytes_per_key']} bytes of file in use per live key "
                f"({extra.get('allocated_bytes_per_key', '?')} allocated on disk) at {extra.get('live_keys', '?')} keys"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
