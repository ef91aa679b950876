"""Compiling a Django URLconf into gate routes.

``path()`` patterns become matchit patterns (``articles/<int:year>/`` -> ``/articles/{year}/``;
a trailing ``<path:rest>`` -> ``{*rest}``). ``re_path()`` patterns of the plain shape DRF's routers
generate (``^articles/(?P<pk>[^/.]+)/$``: literal segments and whole-segment named groups that cannot
match ``/``) compile too. Anything else (other regexes, locale prefixes, converters that share a
segment with other text) falls back to ``process_view``, keyed by the resolved route.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Hashable, Iterable
from typing import Any

from django.urls import URLPattern, URLResolver
from django.urls.resolvers import RegexPattern, RoutePattern

from ferrogate._adapter import (
    Candidate,
    Var,
    callables_of,
    matchit_pattern,
    patterns_overlap,
    policy_of,
    prefers_second,
)

__all__ = ["candidates", "fallback_key", "outruns_int", "regex_to_matchit", "route_to_matchit"]

_PARAM = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>")


def route_to_matchit(route: str) -> tuple[str | None, str | None]:
    """``(pattern, None)`` for a ``path()`` route string, else ``(None, reason)``."""
    segments: list[str | Var | None] = []
    for seg in route.split("/"):
        m = _PARAM.fullmatch(seg)
        if m is None:
            segments.append(None if "<" in seg or ">" in seg else seg)
        else:
            # int, slug, uuid and custom converters that never match "/" match a subset of what
            # {name} matches; the middleware confirms at dispatch that Django resolved this route.
            converter = m["converter"]
            segments.append(Var(m["name"], _spans_slash(converter or "str"), repr(converter)))
    # Django routes may hold an empty segment anywhere: it is matched as written.
    return matchit_pattern(segments, noun="route", variable="converter", inner_empty=True)


#: Django's converters whose regex the gate checks as a shape (exactly: the same character sets).
_SHAPES = {
    "int": ("[0-9]+", "digits"),
    "uuid": ("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "uuid_lower"),
    "slug": ("[-a-zA-Z0-9_]+", "slug"),
}


def outruns_int(path: str) -> bool:
    """Whether a segment of ``path`` is ASCII digits too long for ``int()`` (past
    ``sys.get_int_max_str_digits()``). Django's ``int`` converter then raises and Django tries
    the next pattern, while the gate's ``digits`` shape (checked natively, with no length bound)
    would admit the value under the ``int`` route and count its limits."""
    bound = sys.get_int_max_str_digits()
    if not bound or len(path) <= bound:
        return False
    return any(len(seg) > bound and seg.isascii() and seg.isdigit() for seg in path.split("/"))


def param_shapes(path_route: str) -> dict[str, str]:
    """The route's parameters whose converter is Django's ``int``, ``uuid`` or ``slug`` (checked
    by regex, so a re-registered converter of the same name is not mistaken for it)."""
    from django.urls.converters import get_converters

    registered = get_converters()
    out: dict[str, str] = {}
    for m in _PARAM.finditer(path_route):
        known = _SHAPES.get(m["converter"] or "str")
        conv = registered.get(m["converter"] or "str")
        if known is not None and conv is not None and conv.regex == known[0]:
            out[m["name"]] = known[1]
    return out


def _spans_slash(converter: str) -> bool:
    """Whether a registered path converter's regex can match across '/' (``path`` and any custom
    converter whose regex matches '/', such as ``[\\S]+`` or ``[0-9]{4}/[0-9]{2}``)."""
    from django.urls.converters import get_converters

    found = get_converters().get(converter)
    if found is None:
        return True  # Unknown here: Django refuses it at import; never assume it stays in a segment.
    return regex_may_match_slash(found.regex)


def regex_may_match_slash(regex: str) -> bool:
    """Whether some string the regex matches contains '/', read from its parse tree: a literal
    '/', '.', a class or category that holds '/' (``\\S``, ``\\W``, ``[^a]``). Anything this does
    not understand counts as matching '/': the cost of a wrong yes is a dispatch-time check, of
    a wrong no a route the gate matches one segment at a time while Django spans several."""
    try:
        # Private (CPython's own parser), hence the blanket fallback below.
        from re import _parser  # type: ignore[attr-defined]

        return _tree_may_match_slash(_parser.parse(regex))
    except Exception:
        return True


_SLASH = ord("/")


def _tree_may_match_slash(items: Any) -> bool:
    from re import _constants as c  # type: ignore[attr-defined]

    for op, av in items:
        if op is c.LITERAL:
            if av == _SLASH:
                return True
        elif op is c.NOT_LITERAL or op is c.ANY:
            if op is c.ANY or av != _SLASH:
                return True
        elif op is c.IN:
            if _class_holds_slash(av, c):
                return True
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
            if av[1] > 0 and _tree_may_match_slash(av[2]):
                return True
        elif op is c.SUBPATTERN or op is c.ATOMIC_GROUP:
            if _tree_may_match_slash(av[-1]):
                return True
        elif op is c.BRANCH:
            if any(_tree_may_match_slash(branch) for branch in av[1]):
                return True
        elif op is c.GROUPREF_EXISTS:
            if any(b is not None and _tree_may_match_slash(b) for b in av[1:]):
                return True
        elif op in (c.AT, c.ASSERT, c.ASSERT_NOT, c.GROUPREF):
            # Consume nothing of their own (a back-reference repeats what its group matched).
            continue
        else:
            return True
    return False


def _class_holds_slash(items: Any, c: Any) -> bool:
    negated = False
    holds = False
    for op, av in items:
        if op is c.NEGATE:
            negated = True
        elif op is c.LITERAL:
            holds = holds or av == _SLASH
        elif op is c.RANGE:
            holds = holds or av[0] <= _SLASH <= av[1]
        elif op is c.CATEGORY:
            # '/' is no digit, space, word character or line break: only the negated ones hold it.
            holds = holds or "NOT" in str(av)
        else:
            return True
    return holds != negated


# A named group over a character class, \d or \w, with a quantifier; whether it can match "/" is
# tested on the class itself.
_GROUP = re.compile(
    r"\(\?P<(?P<name>[A-Za-z_][A-Za-z0-9_]*)>"
    r"(?:\[(?P<cls>\^?(?:[^\]\\]|\\.)+)\]|\\d|\\w)"
    r"(?:\+|\{\d+(?:,\d*)?\})\)"
)
_LITERAL = re.compile(r"(?:[A-Za-z0-9_~-]|\\[.-])+")


def regex_to_matchit(regex: str, *, endpoint: bool) -> tuple[str | None, str | None]:
    """Route text for a plain ``re_path`` regex, or ``(None, reason)``. The result is a ``path()``-
    style route (``articles/<pk>/``) for :func:`route_to_matchit` to finish."""
    body = regex.removeprefix("^")
    if body == regex and regex:
        return None, "regex is not anchored with '^'"
    if endpoint:
        for end in ("\\Z", "$"):
            if body.endswith(end):
                body = body[: -len(end)]
                break
        else:
            return None, "regex is not anchored at the end"
    out: list[str] = []
    for seg in _split_segments(body):
        group = _GROUP.fullmatch(seg)
        if group is not None:
            cls = group["cls"]
            if cls is not None and _class_matches_slash(cls):
                return None, f"group {group['name']!r} may match '/'"
            out.append(f"<{group['name']}>")
        elif seg == "" or _LITERAL.fullmatch(seg):
            out.append(seg.replace("\\", ""))
        else:
            return None, "regex is more than literal segments and named groups"
    return "/".join(out), None


def _class_matches_slash(cls: str) -> bool:
    try:
        return re.fullmatch(f"[{cls}]", "/") is not None
    except re.error:
        return True


def _split_segments(regex: str) -> list[str]:
    """Splits on "/" outside character classes and escapes."""
    segments: list[str] = []
    current: list[str] = []
    in_class = escaped = False
    for ch in regex:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "[":
            in_class = True
        elif ch == "]":
            in_class = False
        elif ch == "/" and not in_class:
            segments.append("".join(current))
            current = []
            continue
        current.append(ch)
    segments.append("".join(current))
    return segments


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
    _order_conflicts(out)
    return out


def _order_conflicts(found: list[Candidate]) -> None:
    """Django tries patterns in URLconf order, the gate's radix tree the most specific first: where
    an earlier route overlaps a later one that matchit prefers (``articles/<slug>/`` before
    ``articles/new/``), the later one leaves the router. The router then picks the earlier one
    for every path of the overlap, as Django does, and the later one is checked under the route
    Django's resolver picks, for the paths only it matches."""
    fast = [c for c in found if c.pattern is not None]
    moved: dict[int, Candidate] = {}
    for i, earlier in enumerate(fast):
        for later in fast[i + 1 :]:
            a, b = earlier.pattern or "", later.pattern or ""
            # As Django reads them: `<path:p>` never matches an empty value, so `docs/<path:p>`
            # leaves `docs/` to the later route (which then claims the root in the router too).
            overlap = patterns_overlap(a, b, catch_all_root=False)
            if id(later) not in moved and a != b and overlap and prefers_second(a, b):
                later.reason = f"an earlier route ({earlier.rule}) matches its paths first in URLconf order"
                moved[id(later)] = later
    for c in moved.values():
        c.shape, c.pattern = c.pattern, None


#: Converters whose paths are exactly what the matchit parameter matches.
_EXACT_CONVERTERS = {None, "str", "path"}


def _label(name: str | None, namespace: str, callback: Any, route: str) -> str:
    """A view's label (messages, ``RateLimit`` names, the identity of its limits in Redis): its
    URL name with its namespaces (``shop:cart``), else its qualified name, else (every unnamed
    class-based view is ``View.as_view.<locals>.view``) its route."""
    if name:
        return f"{namespace}:{name}" if namespace else name
    qualname = getattr(callback, "__qualname__", None)
    if qualname and "<locals>" not in qualname:
        return str(qualname)
    return "/" + route if route else repr(callback)


def _walk(
    patterns: Iterable[Any],
    route: str,
    path_route: str,
    reason: str | None,
    out: list[Candidate],
    groups: bool = False,
    namespace: str = "",
) -> None:
    """``groups``: an enclosing ``re_path`` had named groups, whose regexes narrow what they match.
    ``namespace``: the enclosing ``include()``'s namespaces, ``a:b``."""
    for p in patterns:
        pattern = p.pattern
        full_route = _join_route(route, str(pattern))
        own_reason = reason
        piece = str(pattern)
        own_groups = groups
        if own_reason is None and isinstance(pattern, RegexPattern):
            converted, why = regex_to_matchit(piece, endpoint=isinstance(p, URLPattern))
            if converted is None:
                own_reason = f"re_path {piece!r}: {why}"
            piece = converted or ""
            own_groups = groups or "<" in piece
        elif own_reason is None and not isinstance(pattern, RoutePattern):
            own_reason = f"{type(pattern).__name__} cannot be compiled"
        full_path_route = path_route + piece
        if isinstance(p, URLResolver):
            ns = ":".join(n for n in (namespace, p.namespace or "") if n)
            _walk(p.url_patterns, full_route, full_path_route, own_reason, out, own_groups, ns)
        elif isinstance(p, URLPattern):
            callback = p.callback
            matchit, why = (None, own_reason) if own_reason else route_to_matchit(full_path_route)
            label = _label(p.name, namespace, callback, full_route)
            shapes = param_shapes(full_path_route)
            out.append(
                Candidate(
                    key=fallback_key(full_route, callback),
                    label=label,
                    rule=full_route,
                    pattern=matchit,
                    methods=None,
                    policy=policy_of(callback),
                    reason=why,
                    callables=callables_of(callback),
                    narrowed=own_groups
                    or any(
                        m["converter"] not in _EXACT_CONVERTERS and m["name"] not in shapes
                        for m in _PARAM.finditer(full_path_route)
                    ),
                    params=shapes if matchit is not None and not own_groups else {},
                )
            )
