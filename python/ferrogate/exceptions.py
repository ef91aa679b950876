"""ferrogate's exceptions.

Names follow PyJWT where the meaning is the same, so ``except jwt.InvalidTokenError`` code ports by
changing the import. Every error ferrogate raises on purpose derives from :class:`FerroGateError`.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "ConfigError",
    "FerroGateError",
    "InMemoryRateLimitWarning",
    "InvalidPathError",
]


class FerroGateError(Exception):
    """Base class of every ferrogate error."""


class ConfigError(FerroGateError, ValueError):
    """A config, quota, route or decorator argument is invalid.

    ``issues`` holds every problem found, as ``(key_path, message)`` pairs such as
    ``("routes[2].access", 'expected one of allow | deny, got "denny"')``.
    """

    def __init__(self, message: str, issues: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.issues: list[tuple[str, str]] = list(issues)

    def __reduce__(self) -> tuple[type[ConfigError], tuple[str, list[tuple[str, str]]]]:
        return (type(self), (str(self), self.issues))


class InvalidPathError(FerroGateError, ValueError):
    """A request path that cannot be matched safely (dot segments, control characters, bad escapes)."""


class InMemoryRateLimitWarning(RuntimeWarning):
    """In-memory rate limits under a server with several worker processes: each counts alone."""
