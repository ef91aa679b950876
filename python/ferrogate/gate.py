"""The Python face of the gate: construction from dicts or TOML files, and WSGI wrapping."""

from __future__ import annotations

import os
import tomllib
from typing import TYPE_CHECKING, Any, Self

from ferrogate import _native
from ferrogate.exceptions import ConfigError

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

__all__ = ["Gate"]


class Gate(_native.Gate):
    """Route policies, enforced in one Rust call per request.

    ``Gate(config)`` takes a dict; ``Gate.from_file(path)`` a TOML (or JSON) file. Invalid config
    raises :class:`~ferrogate.ConfigError` listing every problem with its key path.
    """

    def __new__(cls, config: dict[str, Any]) -> Self:
        from ferrogate.ratelimit import with_worker_count

        return super().__new__(cls, with_worker_count(config))

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        from ferrogate.ratelimit import warn_if_multiprocess

        warn_if_multiprocess(self.memory_rate_limiters)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Gate:
        return cls(load_config_file(path))

    def wsgi(self, app: WSGIApplication) -> WSGIApplication:
        """Wraps a WSGI app so this gate sees every request first."""
        from ferrogate.wsgi import GateMiddleware

        return GateMiddleware(app, self)


def load_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Reads a TOML or JSON config file into a dict; syntax errors become ConfigError."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ConfigError(f"cannot read config file {name!r}: {e.strerror}", [("", str(e))]) from e
    if name.endswith(".json"):
        import json

        try:
            loaded = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise ConfigError(f"{name}: invalid JSON: {e}", [("", str(e))]) from e
        if not isinstance(loaded, dict):
            raise ConfigError(f"{name}: the top level must be an object", [("", "expected an object")])
        return loaded
    try:
        return tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{name}: invalid TOML: {e}", [("", str(e))]) from e
