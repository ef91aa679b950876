from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"


def _read_pairs(name: str) -> list[tuple[str, str]]:
    pairs = []
    for line in (DATA / name).read_text().splitlines():
        if line.strip():
            method, path = line.split(maxsplit=1)
            pairs.append((method, path))
    return pairs


@pytest.fixture(scope="session")
def github_routes() -> list[tuple[str, str]]:
    """The 203-route GitHub API set (method, matchit pattern)."""
    return _read_pairs("github_routes.txt")


@pytest.fixture(scope="session")
def github_requests() -> list[tuple[str, str]]:
    """One concrete request per GitHub route (method, path)."""
    return _read_pairs("github_requests.txt")
