"""Compiling a Django URLconf into gate routes.

``path()`` patterns become matchit patterns (``articles/<int:year>/`` -> ``/articles/{year}/``;
a trailing ``<path:rest>`` -> ``{*rest}``). ``re_path()`` patterns, locale prefixes and converters
that share a segment with other text fall back to ``process_view``, keyed by the resolved route.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable
from typing import Any

from django.urls import URLPattern, URLResolver
from django.urls.resolvers import RoutePattern

from ferrogate._adapter import Candidate, policy_of

__all__ = ["candidates", "fallback_key", "route_to_matchit"]

_PARAM = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>")


def route_to_matchit(route: str) -> tuple[str | None, str | None]:
    """``(pattern, None)`` for a ``path()`` route string, else ``(None, reason)``."""
    segments = route.split("/")
    out: list[str] = []
    for i, seg in enumerate(segments):
        m = _PARAM.fullmatch(seg)
        if m is None:
            if "<" in seg or ">" in seg:
                return None, "a converter shares its segment with other text"
            if any(c in seg for c in "{}*"):
                return None, "literal braces or '*' in the route"
            out.append(seg)
            continue
        if m["converter"] == "path":
            if i != len(segments) - 1:
                return None, "<path:...> is not the last segment"
            out.append("{*" + m["name"] + "}")
        else:
            # int, slug, uuid and custom converters match a subset of what {name} matches; the
            # gate then applies the route's policy to paths Django answers 404 anyway.
            out.append("{" + m["name"] + "}")
    return "/" + "/".join(out), None


def _join_route(route1: str, route2: str) -> str:
    # As django.urls.resolvers.URLResolver._join_route builds ResolverMatch.route.
    if not route1:
        return route2
    return route1 + route2.removeprefix("^")


def fallback_key(route: str, callback: Any) -> Hashable:
    """Identifies a resolved route: ``(request.resolver_match.route, id(view function))``."""
    return (route, id(callback))


def candidates(patterns: Iterable[Any]) -> list[Candidate]:
    out: list[Candidate] = []
    _walk(patterns, "", "", None, out)
    return out


def _walk(
    patterns: Iterable[Any], route: str, path_route: str, reason: str | None, out: list[Candidate]
) -> None:
    for p in patterns:
        pattern = p.pattern
        full_route = _join_route(route, str(pattern))
        own_reason = reason
        if own_reason is None and not isinstance(pattern, RoutePattern):
            own_reason = f"{type(pattern).__name__} (re_path or i18n) cannot be compiled"
        full_path_route = path_route + (str(pattern) if isinstance(pattern, RoutePattern) else "")
        if isinstance(p, URLResolver):
            _walk(p.url_patterns, full_route, full_path_route, own_reason, out)
        elif isinstance(p, URLPattern):
            callback = p.callback
            matchit, why = (None, own_reason) if own_reason else route_to_matchit(full_path_route)
            label = p.name or getattr(callback, "__qualname__", None) or repr(callback)
            out.append(
                Candidate(
                    key=fallback_key(full_route, callback),
                    label=label,
                    rule=full_route,
                    pattern=matchit,
                    methods=None,
                    policy=policy_of(callback),
                    reason=why,
                )
            )
