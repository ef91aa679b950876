"""``ferrogate.cached``: a thread-safe memoize decorator on a Rust store (cachetools/functools users'
replacement). Keys are compared with ``==`` after a hash match, so a hash collision never returns
another call's value."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

from ferrogate._native import CachedFunction

__all__ = ["CacheInfo", "cached"]


class CacheInfo(NamedTuple):
    """What ``cache_info()`` returns, as ``functools.lru_cache``'s: ``currsize`` counts values."""

    hits: int
    misses: int
    maxsize: int
    currsize: int


F = TypeVar("F", bound=Callable[..., Any])


def cached(
    ttl: float | None = None, maxsize: int = 1024, key: Callable[..., Any] | None = None
) -> Callable[[Callable[..., Any]], CachedFunction]:
    """``@cached(ttl=60, maxsize=10_000)``: memoizes a function on its arguments (hashable, as
    for ``functools.lru_cache``), or on ``key(*args, **kwargs)`` when given. The wrapper has
    ``cache_info()``, ``cache_clear()`` and ``invalidate(*args, **kwargs)``, and the function's
    ``__name__``, ``__qualname__``, ``__module__`` and ``__doc__`` (as ``functools.wraps`` gives).
    On a method, ``self`` is part of the key (and is kept alive by the cache), as with
    ``functools.lru_cache``; invalidate with ``Class.method.invalidate(obj, *args)``."""

    def decorate(func: Callable[..., Any]) -> CachedFunction:
        wrapper = CachedFunction(func, ttl=ttl, maxsize=maxsize, key=key)
        for attr in ("__module__", "__name__", "__qualname__", "__doc__"):
            try:
                value = getattr(func, attr)
            except AttributeError:
                continue
            setattr(wrapper, attr, value)
        wrapper.__dict__.update(getattr(func, "__dict__", {}))
        return wrapper

    return decorate
