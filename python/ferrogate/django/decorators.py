"""View decorators: marker attributes read when the URLconf is compiled, like ``csrf_exempt``.

They work on function views and, through ``method_decorator(..., name="dispatch")`` or directly on
the class, on class-based views. Arguments are validated when the decorator runs, so a malformed one
fails at import, naming the view.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from ferrogate._adapter import (
    add_limit,
    add_policy,
    auth_fragment,
    cache_fragment,
    check_limit,
    describe,
    limit_entry,
    validate_fragment,
)

__all__ = ["NAMED_LIMITS", "auth", "cache", "exempt", "limit", "policy"]

#: Named limits defined by ``@limit(quota, shared=name)``; merged into the gate config's ``limits``.
NAMED_LIMITS: dict[str, dict[str, Any]] = {}

F = TypeVar("F", bound=Callable[..., Any])


def policy(**fragment: Any) -> Callable[[F], F]:
    """Sets gate policy keys on a view: ``@policy(access="deny")``."""

    def decorate(view: F) -> F:
        validate_fragment(fragment, describe(view))
        return add_policy(view, fragment)

    return decorate


def exempt(view: F) -> F:
    """No gate checks at all for this view."""
    return add_policy(view, {"exempt": True})


def limit(
    quota: str | None = None,
    *,
    key: str | list[str] | Callable[[Any], Any] | None = None,
    cost: int | None = None,
    shared: str | None = None,
    dry_run: bool | None = None,
    exempt_methods: list[str] | None = None,
    on_error: str | None = None,
) -> Callable[[F], F]:
    """A rate limit on a view: ``@limit("10/second")``.

    ``key``: ``"ip"`` (default), ``"sub"``, ``"claim:<name>"``, ``"header:<name>"``, a list of those,
    or a function of the request (the slow path: such views are checked in ``process_view``).
    ``shared="name"`` counts on a named limit from ``FERROGATE["limits"]``, or defined here when a
    quota is given too. Stacked decorators add limits. ``on_error``: ``"allow"``, ``"deny"`` (503) or
    ``"local"``, what the limit does when its Redis store cannot answer.
    """
    entry, definition, callable_key = limit_entry(
        quota,
        key=key,
        cost=cost,
        shared=shared,
        dry_run=dry_run,
        exempt_methods=exempt_methods,
        on_error=on_error,
    )

    def decorate(view: F) -> F:
        check_limit(entry, definition, shared, describe(view), NAMED_LIMITS, "@limit")
        return add_limit(view, entry, callable_key)

    return decorate


def auth(
    scopes: list[str] | str | None = None,
    *,
    optional: bool = False,
    locations: list[str] | None = None,
    claims: dict[str, Any] | None = None,
    exempt_methods: list[str] | None = None,
) -> Callable[[F], F]:
    """Bearer-token auth on a view: ``@auth(scopes=["articles:write"])``. The verified claims are
    in ``request.jwt_claims``. Arguments as for Flask's ``@gate.auth``."""
    return policy(
        **auth_fragment(
            scopes=scopes,
            optional=optional,
            locations=locations,
            claims=claims,
            exempt_methods=exempt_methods,
        )
    )


def cache(
    ttl: int | None = None,
    *,
    vary: list[str] | None = None,
    public: bool | None = None,
    statuses: list[int] | None = None,
) -> Callable[[F], F]:
    """Caches a GET view's responses in the gate: ``@cache(ttl=60)``; arguments as for Flask's
    ``@gate.cache``. Behind the WSGI fast path, hits never build an ``HttpRequest``."""
    return policy(**cache_fragment(ttl, vary, public, statuses))
