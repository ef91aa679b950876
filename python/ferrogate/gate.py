"""The Python face of the gate: construction from dicts or TOML files, and WSGI wrapping."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime
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

    ``resolve(environ) -> int | None`` is a framework's own router, for adapters: asked when the
    gate's router matches nothing and some routes are ``dispatch = true``, it names the route (by
    index in ``routes``) the framework would run, or None for none (the defaults apply).
    """

    def __new__(
        cls, config: dict[str, Any], *, resolve: Callable[[dict[str, Any]], int | None] | None = None
    ) -> Self:
        from ferrogate.ratelimit import with_worker_count

        return super().__new__(cls, with_worker_count(config), resolve=resolve)

    def __init__(
        self, config: dict[str, Any], *, resolve: Callable[[dict[str, Any]], int | None] | None = None
    ) -> None:
        super().__init__()
        from ferrogate.ratelimit import warn_if_multiprocess

        warn_if_multiprocess(self.memory_rate_limiters)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Gate:
        return cls(load_config_file(path))

    def revoke_token(self, token_or_jti: str, *, exp: float | datetime | None = None) -> str:
        """Revokes a token, given whole (its signature is checked; its ``jti`` and ``exp`` are
        read) or as a bare ``jti``. The entry lasts until ``exp`` plus the leeway (``exp`` given
        here wins over the token's; a bare jti without ``exp`` never expires). Applies in this
        process at once and in every other one through Redis; returns the jti.

        Raises :class:`~ferrogate.StoreUnavailableError` when Redis cannot be told (this process
        refuses the token anyway), :class:`~ferrogate.MissingRequiredClaimError` for a token
        without ``jti`` (revoke its subject instead), :class:`~ferrogate.ConfigError` when the
        gate has no ``[jwt] revocation``.
        """
        return super().revoke_token(token_or_jti, exp=_seconds(exp))

    def revoke_subject(
        self, sub: str, *, before: float | datetime | None = None, issuer: str | None = None
    ) -> float:
        """Revokes every token of ``sub`` from ``issuer`` issued before ``before`` (default: Redis's
        clock plus the leeway, so a token issued a moment before by a host whose clock runs ahead
        is refused too): tokens with ``iat`` < T, and its tokens without ``iat``. Tokens issued
        from T on pass. ``issuer`` may be left out when the gate trusts one issuer, or names none
        (then a subject is revoked whatever its tokens' ``iss``); with several it is required
        (``ValueError``). Returns T (Unix seconds). Raises as :meth:`revoke_token` does."""
        return super().revoke_subject(sub, before=_seconds(before), issuer=issuer)

    def explain(self, method: str, path: str) -> dict[str, Any]:
        """Which route and policy apply to ``method path``, and the status an anonymous request
        (no token, quota not used up) gets: ``status`` (``None``: forwarded to the app) and
        ``answer`` (one line). Boolean policy keys are booleans."""
        info = super().explain(method, path)
        policy = info.get("policy")
        if isinstance(policy, dict):
            info["policy"] = {k: (v == "true") if v in ("true", "false") else v for k, v in policy.items()}
        info["status"], info["answer"] = _anonymous_answer(info)
        return info

    def reset(self) -> None:
        """Starts over, for tests: every in-memory rate-limit count is forgotten and the response
        cache emptied (with a shared tier, Redis's entries and every process's copy too).
        Counts kept in Redis or the host file are shared with other processes and stay."""
        self.reset_limits()
        cache = self.cache
        if cache is not None:
            cache.clear()

    def wsgi(
        self, app: WSGIApplication, *, on_refused: Callable[[_native.Decision, Any], object] | None = None
    ) -> WSGIApplication:
        """Wraps a WSGI app so this gate sees every request first. ``on_refused(decision, environ)``
        is called for each refusal (logging, metrics; its errors are logged, never raised)."""
        from ferrogate.wsgi import GateMiddleware

        return GateMiddleware(app, self, on_refused=on_refused)


def _anonymous_answer(info: dict[str, Any]) -> tuple[int | None, str]:
    """What a request without a token gets, in the order the gate checks: path, method, exempt,
    access, auth; limits and the cache come after and do not refuse a first request."""
    outcome = info["outcome"]
    if outcome == "bad_path":
        return 400, f"400 Bad Request: {info['reason']}"
    if outcome == "method_not_allowed":
        return 405, f"405 Method Not Allowed (Allow: {', '.join(info['allow'])})"
    policy = info["policy"]
    if policy.get("exempt") is True:
        return None, "forwarded to the app unchecked (exempt)"
    if policy.get("access") == "deny":
        return 403, "403 Forbidden: access is denied"
    auth = str(policy.get("auth", "none"))
    if auth.startswith("required"):
        return 401, "401 Unauthorized without a valid token; forwarded with one that satisfies: " + auth
    limited = "" if policy.get("limit") in (None, "off") else f" (limit: {policy['limit']}, then 429)"
    return None, f"forwarded to the app{limited}"


def _seconds(t: float | datetime | None) -> float | None:
    """Unix seconds; a naive datetime is taken as UTC (as JWT NumericDates are)."""
    if isinstance(t, datetime):
        if t.tzinfo is None:
            t = t.replace(tzinfo=UTC)
        return t.timestamp()
    return t


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
