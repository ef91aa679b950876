"""``ferrogate.cached``: a thread-safe memoize decorator on a Rust store (cachetools/functools users'
replacement). Keys are compared with ``==`` after a hash match, so a hash collision never returns
another call's value."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from ferrogate._native import CachedFunction

__all__ = ["cached"]

F = TypeVar("F", bound=Callable[..., Any])


def cached(
    ttl: float | None = None, maxsize: int = 1024, key: Callable[..., Any] | None = None
) -> Callable[[Callable[..., Any]], CachedFunction]:
    """``@cached(ttl=60, maxsize=10_000)``: memoizes a function on its arguments (hashable, as
    for ``functools.lru_cache``), or on ``key(*args, **kwargs)`` when given. The wrapper has
    ``cache_info()``, ``cache_clear()`` and ``invalidate(*args, **kwargs)``."""

    def decorate(func: Callable[..., Any]) -> CachedFunction:
        return CachedFunction(func, ttl=ttl, maxsize=maxsize, key=key)

    return decorate
