"""Benchmarks: run by `make bench` (release build), never by `make test`.

Each benchmark that does several operations per call sets ``benchmark.extra_info["ops"]`` so the
ratio table (ratios.py) reports time per operation.
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/bench/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.bench)
