"""ferrogate.cached (memoize) and the standalone ResponseCache."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from ferrogate import ConfigError, ResponseCache, cached


def test_memoizes_and_reports() -> None:
    calls: list[tuple[Any, ...]] = []

    @cached(maxsize=100)
    def add(a: int, b: int = 0) -> int:
        calls.append((a, b))
        return a + b

    assert add(1, 2) == 3
    assert add(1, 2) == 3
    assert add(1, b=2) == 3  # keyword calls are keyed apart from positional ones
    assert add(2) == 2
    assert calls == [(1, 2), (1, 2), (2, 0)]
    hits, misses, maxsize, currsize = add.cache_info()
    assert (hits, misses, maxsize) == (1, 3, 100)
    assert currsize == 3
    assert add.invalidate(1, 2) is True
    assert add.invalidate(1, 2) is False
    assert add(1, 2) == 3
    assert len(calls) == 4
    add.cache_clear()
    assert add.cache_info()[:2] == (0, 0)
    assert add.__wrapped__(5, 5) == 10


class Collide:
    """Equal hash, different identity: a collision must never return another key's value."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __hash__(self) -> int:
        return 42

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Collide) and other.name == self.name


def test_hash_collisions_compare_keys() -> None:
    @cached()
    def name_of(x: Collide) -> str:
        return x.name

    assert name_of(Collide("a")) == "a"
    assert name_of(Collide("b")) == "b"
    assert name_of(Collide("a")) == "a"
    assert name_of.cache_info()[:2] == (1, 2)


def test_custom_key_and_unhashable_arguments() -> None:
    @cached(key=lambda d: tuple(sorted(d.items())))
    def total(d: dict[str, int]) -> int:
        return sum(d.values())

    assert total({"a": 1, "b": 2}) == 3
    assert total({"b": 2, "a": 1}) == 3
    assert total.cache_info()[0] == 1

    @cached()
    def plain(x: Any) -> Any:
        return x

    with pytest.raises(TypeError):
        plain([1, 2])


def test_exceptions_are_not_cached() -> None:
    n = [0]

    @cached()
    def flaky() -> int:
        n[0] += 1
        if n[0] == 1:
            raise ValueError("first time")
        return n[0]

    with pytest.raises(ValueError, match="first"):
        flaky()
    assert flaky() == 2
    assert flaky() == 2


def test_thread_safety() -> None:
    @cached(maxsize=1000)
    def square(x: int) -> int:
        return x * x

    errors: list[int] = []

    def worker() -> None:
        for i in range(2000):
            if square(i % 300) != (i % 300) ** 2:
                errors.append(i)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert square.cache_info()[3] <= 300


def test_stats_count_what_the_store_evicted_for_space() -> None:
    """A small cache's counts add up exactly: every entry stored is still there or was evicted,
    and a purge afterwards finds exactly what is left."""
    cache = ResponseCache(max_bytes=20_000, default_ttl=300)
    for i in range(500):
        cache.put(f"/items/{i}", 200, [("content-type", "text/plain")], b"x" * 500, tags=["items"])
    stats = cache.stats()
    assert stats["stores"] == 500
    assert stats["evictions"] > 0
    assert stats["entries"] + stats["evictions"] == 500, stats
    assert stats["bytes"] <= 20_000
    # The purge finds exactly what is left, evicted keys are not counted, and nothing lingers.
    assert cache.purge_tag("items") == stats["entries"]
    assert cache.purge_tag("items") == 0
    assert cache.purge_prefix("/items/") == 0
    assert cache.stats()["entries"] == 0


@pytest.mark.parametrize("kwargs", [{"maxsize": 0}, {"ttl": 0}, {"ttl": -1}, {"ttl": float("nan")}])
def test_bad_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        cached(**kwargs)(lambda: None)


def test_response_cache_on_its_own() -> None:
    cache = ResponseCache(max_bytes=1 << 20, default_ttl=30)
    cache.put("/a?x=1", 200, [("content-type", "text/plain")], b"hello", tags=["t"])
    assert cache.get("/a?x=1") == (200, [("content-type", "text/plain")], b"hello")
    assert cache.get("/missing") is None
    cache.put("/a?x=2", 200, [], b"x", ttl=0)
    assert cache.get("/a?x=2") is None  # expired at once
    assert cache.purge_tag("t") == 1
    cache.put("/b/1", 200, [], b"1")
    cache.put("/b/2", 200, [], b"2")
    assert cache.purge_prefix("/b/") == 2
    cache.put("k", 201, [], b"")
    assert cache.purge("k") is True
    assert cache.purge("k") is False
    stats = cache.stats()
    assert stats["hits"] == 1
    assert stats["max_bytes"] == 1 << 20
    with pytest.raises(ConfigError):
        ResponseCache(max_bytes=0)
    with pytest.raises(ConfigError):
        ResponseCache(default_ttl=0)


def test_response_cache_is_bounded_by_bytes() -> None:
    cache = ResponseCache(max_bytes=64 * 1024)
    for i in range(200):
        cache.put(f"k{i}", 200, [], b"x" * 2000)
    stats = cache.stats()
    assert stats["bytes"] <= 64 * 1024
    assert stats["entries"] < 200


def test_methods_bind_like_functions() -> None:
    class Repo:
        def __init__(self, n: int) -> None:
            self.n = n
            self.calls = 0

        @cached(maxsize=16)
        def scaled(self, x: int) -> int:
            self.calls += 1
            return self.n * x

    two, three = Repo(2), Repo(3)
    assert (two.scaled(5), three.scaled(5), two.scaled(5)) == (10, 15, 10)
    assert (two.calls, three.calls) == (1, 1)  # self is part of the key
    assert Repo.scaled.invalidate(two, 5) is True  # type: ignore[attr-defined]
    assert two.scaled(5) == 10
    assert two.calls == 2


def test_wraps_the_function_metadata() -> None:
    @cached()
    def compute(x: int) -> int:
        """Computes."""
        return x

    assert compute.__name__ == "compute"  # type: ignore[attr-defined]
    assert compute.__qualname__.endswith("compute")  # type: ignore[attr-defined]
    assert compute.__doc__ == "Computes."
    assert compute.__module__ == __name__


def test_cache_info_is_a_named_tuple() -> None:
    @cached(maxsize=8)
    def f(x: int) -> int:
        return x

    f(1)
    f(1)
    info = f.cache_info()
    assert (info.hits, info.misses, info.maxsize, info.currsize) == (1, 1, 8, 1)


def test_maxsize_counts_values_even_when_hashes_collide() -> None:
    @cached(maxsize=4)
    def name_of(x: Collide) -> str:
        return x.name

    for i in range(50):
        name_of(Collide(str(i)))
    assert name_of.cache_info().currsize <= 4
    assert name_of(Collide("49")) == "49"
