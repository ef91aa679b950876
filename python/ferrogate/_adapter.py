"""The adapter protocol: what the Flask and Django adapters share with each other and with the
WSGI middleware (whose per-request half is native, ``src/python/wsgi.rs``). Each framework module
keeps only what is specific to its framework.

- **The request half**: the decision of a forwarded request goes into its environ
  (``Decision.forward_into``, the one implementation the WSGI middleware uses too); a refusal is
  answered with the gate's status, headers and body (:func:`refusal_answer`, no body for HEAD: the rule
  of :func:`body_for`), after the ``on_refused`` hook (:func:`notify_refused`).
- **The response half**: a finished response goes to the decision's cache ticket once
  (:func:`store_response`), then the gate's headers are added.
- **Decorators**: the policy fragments (:func:`auth_fragment`, :func:`cache_fragment`,
  :func:`limit_entry`, :func:`check_limit`), validated where they are written.
- **Compiling routes and confirming them**, below.

A framework route becomes a *candidate*: a matchit pattern (or the reason it has none), the methods
it answers and its policy keys. Each candidate is one route of the gate, at the same index:

- with a pattern, the router matches it before the framework runs (the fast path);
- without one, it is *dispatch-only*: the gate asks the framework's own router (``resolve``) when its
  router matches nothing, and the framework hook checks it once the framework has resolved it.

Whatever the gate decided early is an optimisation: the framework hook compares the route the
framework resolved with the one the gate enforced (:meth:`Compiled.confirmed`, one identity check)
and, when they differ, checks the request again under the resolved route's policy, with the cache
off (:meth:`Compiled.recheck`).
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ferrogate import _native
from ferrogate._native import CacheTicket, Decision, Router
from ferrogate.exceptions import ConfigError
from ferrogate.gate import Gate

_log = logging.getLogger("ferrogate")


def invalid_token_answer(realm: str, detail: str, **extra: object) -> tuple[list[tuple[str, str]], bytes]:
    """The headers and body of a 401 ``invalid_token`` an adapter decides itself (the token
    verified, but its user is gone or disabled), shaped as the gate's own: an RFC 6750 challenge
    and an RFC 9457 problem document (``extra`` adds members, such as simplejwt's ``code``)."""
    quoted = detail.replace("\\", "'").replace('"', "'")
    headers = [
        ("Content-Type", "application/problem+json"),
        ("WWW-Authenticate", f'Bearer realm="{realm}", error="invalid_token", error_description="{quoted}"'),
    ]
    problem = {"type": "about:blank", "title": "Unauthorized", "status": 401, "detail": detail, **extra}
    return headers, json.dumps(problem).encode()


def body_for(method: str | None, body: bytes) -> bytes:
    """What an answer of the gate's (or an adapter's) carries to a request of ``method``: HEAD gets
    no body (RFC 9110 §9.3.2), as from the native WSGI middleware."""
    return b"" if method == "HEAD" else body


def refusal_answer(
    d: Decision, method: str | None, environ: Any, hook: Callable[[Decision, Any], object] | None
) -> tuple[int, tuple[tuple[str, str], ...], bytes]:
    """A refusal as every adapter answers it: ``on_refused`` told first, then the gate's status,
    headers and body (none for HEAD). The gate's other answers (a cache hit: 200, or 304 to a
    conditional request) go out the same way but are no refusal: the hook is not told."""
    if hook is not None and is_refusal(d):
        notify_refused(hook, d, environ)
    return d.status, d.headers, body_for(method, d.body)


def is_refusal(d: Decision) -> bool:
    """Whether an answer of the gate's is a refusal (4xx, 5xx) rather than a cache hit."""
    return d.status >= 400


def store_response(
    ticket: CacheTicket,
    status: int,
    streamed: bool,
    read: Callable[[], tuple[list[tuple[str, str]], bytes]],
) -> tuple[list[tuple[str, str]], list[str]]:
    """Hands a finished response to its cache ticket, once: an unsafe request's status may
    invalidate its path, a streamed response is never stored, any other is offered (``read`` gives
    its headers and body). Returns what to change in the response's headers: ``(add, remove)``
    (the cache status and a computed ``ETag`` to add, the tags header to take away)."""
    if not ticket.is_store:
        ticket.unsafe_done(status)
        return [], []
    if streamed:
        ticket.end()
        return [], []
    headers, body = read()
    return ticket.store_changes(status, headers, body)


def check_limit(
    entry: Mapping[str, Any],
    definition: dict[str, Any] | None,
    shared: str | None,
    where: str,
    named: dict[str, dict[str, Any]],
    decorator: str,
) -> None:
    """What every adapter's ``limit`` decorator does with a decorated view: a shared limit defined
    differently before is an error, the entry is validated where it is written (against its named
    limit), and a definition given here is recorded in ``named``."""
    context = None
    if shared is not None:
        known = named.get(shared)
        if definition is not None and known is not None and known != definition:
            raise ConfigError(
                f"{decorator} on {where}: shared limit {shared!r} is already defined differently",
                [(f"{where}: limit", "conflicting definition")],
            )
        context = {"limits": {shared: definition or known or {"quota": "1/second"}}}
    validate_fragment({"limit": [entry]}, where, context)
    if definition is not None and shared is not None:
        named[shared] = definition


@dataclass(frozen=True)
class Var:
    """A variable that fills a whole path segment, for :func:`matchit_pattern`."""

    name: str
    #: Its converter may match ``/`` (werkzeug's ``path``, Django's ``path``).
    spans_slash: bool
    #: How a reason names the converter.
    converter: str


def matchit_pattern(
    segments: Sequence[str | Var | None], *, noun: str, variable: str, inner_empty: bool
) -> tuple[str | None, str | None]:
    """The segment rules both route compilers share: ``(pattern, None)`` for the segments of a
    route after its leading ``/`` (text, a whole-segment :class:`Var`, or None for a segment where
    a variable shares the segment with text), else ``(None, reason)``. A variable whose converter
    spans ``/`` must be last and becomes a catch-all; text may not hold matchit's ``{}*``, a
    control character or be a dot segment; an empty segment other than the last (``//``) is
    refused unless ``inner_empty``."""
    out: list[str] = []
    last = len(segments) - 1
    for i, seg in enumerate(segments):
        if seg is None:
            return None, f"a {variable} shares its segment with other text"
        if isinstance(seg, Var):
            if seg.spans_slash:
                if i != last:
                    return None, f"converter {seg.converter} matches '/' and is not last"
                out.append("{*" + seg.name + "}")
            else:
                out.append("{" + seg.name + "}")
            continue
        if not seg and i != last and not inner_empty:
            return None, f"an empty segment ('//') in the {noun}"
        if any(c in seg for c in "{}*"):
            return None, f"literal braces or '*' in the {noun}"
        # The gate's router refuses these patterns (the gate answers such request paths 400
        # before routing), so the route is left to the framework rather than failing the build.
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in seg):
            return None, f"a control character in the {noun}"
        if seg in (".", ".."):
            return None, f"a '.' or '..' segment in the {noun}"
        out.append(seg)
    return "/" + "/".join(out), None


def notify_refused(hook: Callable[[Decision, Any], object], d: Decision, environ: Any) -> None:
    """Calls an ``on_refused(decision, environ)`` hook. It is for logging and metrics: it cannot
    change the answer, and its failure is logged with the traceback, never raised (as the native
    gate does for the refusals it answers itself)."""
    try:
        hook(d, environ)
    except Exception:
        _log.exception("the on_refused hook failed")


__all__ = [
    "POLICY_ATTR",
    "ROUTER_METHODS",
    "CallableKey",
    "Candidate",
    "Compiled",
    "RouteReport",
    "Var",
    "add_limit",
    "add_policy",
    "auth_fragment",
    "body_for",
    "cache_fragment",
    "callables_of",
    "check_limit",
    "compile_routes",
    "describe",
    "is_refusal",
    "limit_entry",
    "matchit_pattern",
    "merge_named_limits",
    "notify_refused",
    "policy_of",
    "refusal_answer",
    "store_response",
    "validate_fragment",
]

F = TypeVar("F", bound=Callable[..., Any])

#: Attribute that carries a view's policy keys, like Django's ``csrf_exempt`` marker.
POLICY_ATTR = "__ferrogate_policy__"


#: Attribute that carries a view's Python key functions for rate limits.
CALLABLES_ATTR = "__ferrogate_callables__"
_callable_ids = itertools.count()


@dataclass(frozen=True)
class CallableKey:
    """A rate-limit key computed by Python. The gate keys the limit on a request header that only
    the adapter sets (from ``fn``), so such routes are checked in the framework hook, where the
    request exists: the slow path."""

    fn: Callable[..., Any]
    header: str

    @property
    def environ_key(self) -> str:
        return "HTTP_" + self.header.upper().replace("-", "_")


@dataclass
class Candidate:
    #: Identifies the route as the framework resolves it (``id(rule)``, ``(route, id(view))``).
    key: Hashable
    label: str
    rule: str
    pattern: str | None
    #: None: every method (Django routes are method-agnostic).
    methods: list[str] | None
    policy: dict[str, Any]
    reason: str | None = None
    callables: list[CallableKey] = field(default_factory=list)
    #: More patterns for the same route (werkzeug's non-strict-slash rules answer both spellings).
    aliases: list[str] = field(default_factory=list)
    #: The framework's rule matches fewer paths than the pattern (typed converters, regex groups).
    narrowed: bool = False
    #: Set when compiled: refusals under this route wait for the framework's resolver.
    confirm_refusals: bool = False
    #: Parameter shapes the gate checks (``{"id": "digits"}``): a value without its shape is left
    #: to the framework's resolver, so no stage counts it under this route.
    params: dict[str, str] = field(default_factory=dict)
    #: A dispatch-only route's pattern had it been compiled (None: no pattern describes it), so
    #: only the fast routes it overlaps wait for the resolver before refusing.
    shape: str | None = None


@dataclass
class RouteReport:
    """How one framework route is enforced; listed by the adapters' ``routes`` commands."""

    rule: str
    endpoint: str
    methods: list[str] | None
    pattern: str | None
    policy: dict[str, Any]
    #: Why the route is checked only once the framework has resolved it (None: the fast path).
    fallback_reason: str | None = None


def report_lines(reports: Sequence[RouteReport], hook: str) -> list[str]:
    """The ``routes`` commands' table: one line per route, how it is enforced (the gate's pattern,
    or ``hook`` — the framework hook that checks it — with the reason) and its policy."""
    rows = [("methods", "rule", "endpoint", "enforced as", "policy")]
    for r in sorted(reports, key=lambda r: r.rule):
        how = r.pattern if r.pattern is not None else f"{hook} ({r.fallback_reason})"
        policy = (
            ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in sorted(r.policy.items())) or "defaults"
        )
        methods = "*" if r.methods is None else ",".join(r.methods) or "-"
        rows.append((methods, r.rule, r.endpoint, how, policy))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def reports_json(reports: Sequence[RouteReport]) -> str:
    return json.dumps([r.__dict__ for r in reports], indent=2, default=str)


@dataclass
class Compiled:
    gate: Gate
    #: Framework key -> the gate route that enforces its full policy.
    index_of: dict[Hashable, int]
    #: Gate route index -> framework key (None for a pre-check route).
    keys: list[Hashable | None]
    #: Pre-check routes: what the gate checks before the framework runs for a route whose limits
    #: need the framework's request (Python key functions); the hook always checks again.
    deferred: frozenset[int] = frozenset()
    #: Framework key -> the route the gate checks before the framework runs, when it differs.
    precheck_of: dict[Hashable, int] = field(default_factory=dict)
    reports: list[RouteReport] = field(default_factory=list)
    callables: dict[Hashable, list[CallableKey]] = field(default_factory=dict)

    def confirmed(self, d: Decision | None, key: Hashable | None) -> bool:
        """Whether the gate's early decision ``d`` was taken under the route the framework resolved
        (``key``; None for none). Nothing more to check then."""
        if d is None:
            return False
        idx = d.route_index
        if idx is None:
            return key is None
        return idx not in self.deferred and self.keys[idx] == key

    def early_index(self, key: Hashable | None) -> int | None:
        """The route the gate checks a resolved request under before the framework runs (``resolve``)."""
        if key is None:
            return None
        found = self.precheck_of.get(key)
        return found if found is not None else self.index_of.get(key)

    def recheck(
        self,
        early: Decision | None,
        key: Hashable | None,
        environ: Mapping[str, Any],
        call: Callable[[CallableKey], Any],
    ) -> Decision:
        """Checks a request under the route the framework resolved (``key``; None or unknown: the
        defaults), when :meth:`confirmed` said no. ``call`` runs a Python key function.

        With no early decision (hook mode) this is the only check. An early decision under another
        route gets its cache ticket cancelled, and this check neither serves from nor stores into
        the cache: the response belongs to another route than the one the cache looked it up
        under. A pre-check of the same route is completed with the cache on."""
        same = early is not None and early.route_index is not None and self.keys[early.route_index] == key
        if early is not None and not same:
            if early.cache_ticket is not None:
                early.cache_ticket.cancel()
            # The native gate adds the early decision's headers on the way out unless told that
            # this check's headers replace them.
            if isinstance(environ, dict):
                environ["ferrogate.headers_replaced"] = True
        idx = self.index_of.get(key) if key is not None else None
        checked: Any = environ
        callables = self.callables.get(key, ()) if key is not None else ()
        if callables:
            checked = dict(environ)
            for ck in callables:
                # Overwrites anything a client sent under the same header name.
                checked[ck.environ_key] = str(call(ck))
        return self.gate.check_route(checked, idx, cache=early is None or same)


def claim_methods(candidates: list[Candidate]) -> None:
    """A path+method belongs to the first route that has both, as in werkzeug and Django."""
    claimed: dict[str, set[str] | None] = {}
    for c in candidates:
        if c.pattern is None:
            continue
        if c.pattern not in claimed:
            claimed[c.pattern] = None if c.methods is None else set(c.methods)
            continue
        taken = claimed[c.pattern]
        if taken is None or c.methods is None:
            # An earlier route takes every method (or this one wants all of them): the framework
            # hands this route only what the earlier one leaves, which we cannot express; the
            # earlier route wins, as it does in the framework for the methods both accept.
            c.methods = [] if taken is None else [m for m in _ALL if m not in taken]
            claimed[c.pattern] = None
            continue
        c.methods = [m for m in c.methods if m not in taken]
        taken.update(c.methods)


_ALL = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT")

#: The methods the gate's router has a table of its own for; a route naming any other method
#: (WebDAV's PROPFIND, a cache's PURGE) cannot be given to the router with its methods.
ROUTER_METHODS = frozenset(_ALL)


def _active(c: Candidate) -> bool:
    return c.pattern is not None and c.methods != []


def resolve_conflicts(candidates: list[Candidate]) -> None:
    """Moves every candidate whose pattern overlaps another's to the fallback path, both sides, so a
    request never gets one route's policy on the fast path and another's in the hook."""
    while True:
        router = Router()
        clash: tuple[Candidate, str] | None = None
        for c in candidates:
            if c.pattern is None or not _active(c):
                continue
            for pattern in patterns_of(c):
                existing = router.conflict(pattern, c.methods)
                if existing is not None:
                    clash = (c, existing)
                    break
                router.insert(pattern, None, c.methods)
            if clash is not None:
                break
        if clash is None:
            return
        c, existing = clash
        reason = f"its pattern overlaps another route's ({c.pattern} vs {existing})"
        for other in candidates:
            if other is c or other.pattern == existing or existing in other.aliases:
                other.pattern, other.reason = None, reason


def _rank(segment: str) -> int:
    """matchit's preference at one segment: static, then a parameter, then a catch-all."""
    if segment.startswith("{*"):
        return 2
    return 1 if segment.startswith("{") else 0


def patterns_overlap(a: str, b: str, *, catch_all_root: bool = True) -> bool:
    """Whether some path matches both matchit patterns (whole-segment parameters, a catch-all
    last; a parameter never matches an empty segment). ``catch_all_root``: a catch-all also
    covers its root (``/docs/`` for ``/docs/{*p}``), as in the gate's router; False for the
    framework's routes, whose ``path`` converters (werkzeug's, Django's) never match an empty value."""
    sa, sb = a.split("/")[1:], b.split("/")[1:]
    for i, (x, y) in enumerate(zip(sa, sb, strict=False)):
        if _rank(x) == 2 or _rank(y) == 2:
            if not catch_all_root:
                rest = sb if _rank(x) == 2 else sa
                if rest[i] == "" and i == len(rest) - 1:
                    return False
            return True
        if _rank(x) == 1 or _rank(y) == 1:
            if x == "" or y == "":
                return False
            continue
        if x != y:
            return False
    return len(sa) == len(sb)


def prefers_second(a: str, b: str) -> bool:
    """Whether matchit picks ``b`` over ``a`` for a path both match: ``b`` is more specific at the
    first segment where their kinds differ."""
    for x, y in zip(a.split("/")[1:], b.split("/")[1:], strict=False):
        if _rank(x) != _rank(y):
            return _rank(y) < _rank(x)
    return False


def patterns_of(c: Candidate) -> tuple[str, ...]:
    """The patterns a candidate is matched by: its own and its aliases (none for dispatch-only)."""
    return () if c.pattern is None else (c.pattern, *c.aliases)


def _methods_meet(a: Candidate, b: Candidate) -> bool:
    return a.methods is None or b.methods is None or bool(set(a.methods) & set(b.methods))


def mark_uncertain(candidates: list[Candidate], shapes: Mapping[int, str | None]) -> None:
    """Flags the fast routes the router may match for a path the framework dispatches elsewhere:
    a route whose converters take fewer paths than its pattern (``<int:id>``), and a route that a
    dispatch-only route may overlap (``shapes``: each candidate's pattern before any was moved to
    dispatch, None for a rule with no pattern at all, which may overlap anything). Refusals under
    such a route wait for the framework's resolver; forwards are confirmed at dispatch anyway."""
    dispatch = [shapes[id(c)] for c in candidates if c.pattern is None]
    unknown = any(shape is None for shape in dispatch)
    for c in candidates:
        c.confirm_refusals = c.pattern is not None and (
            c.narrowed
            or unknown
            or any(
                patterns_overlap(p, d, catch_all_root=False)
                for p in patterns_of(c)
                for d in dispatch
                if d is not None
            )
        )


def release_roots(candidates: list[Candidate], shapes: Mapping[int, str | None]) -> None:
    """The gate's router gives a catch-all's root (``/docs/`` for ``/docs/{*p}``) to the catch-all
    unless a route claims that exact pattern, while the framework never does: its ``path``
    converter takes no empty value, so another route (``/{section}/``, an enclosing catch-all, a
    dispatch-only rule) gets the root, and the catch-all's limits would be counted for it.

    - A dispatch-only route that may take the root: the catch-all goes to dispatch too. No
      early decision under it can then count anything, and the cost (a resolve per request)
      falls only on the subtree of such a catch-all. ``confirm_refusals`` would not do: forwards
      count limits too. The root cannot be claimed for the dispatch-only route, which has no path.
    - Exactly one fast route that takes the root with another pattern: the root becomes its
      alias, so the router claims it for the route the framework picks, on the fast path (a
      route with parameter shapes then sends it to the framework's resolver: the alias has no
      parameter to admit). Several: which one the framework picks is its own order, so the
      catch-all goes to dispatch."""
    # Moves first, to a fixed point (a catch-all sent to dispatch may take another one's root),
    # then aliases: an alias given to a route that later left the router would claim nothing.
    while True:
        moved = False
        for c in candidates:
            taken = _root_taken(c, candidates, shapes)
            if taken is None:
                continue
            root, blocker, takers = taken
            # A root with a parameter in it stays out of other routes' aliases: matchit refuses
            # two names for one parameter position, and the resolver is the safe place for it.
            if blocker is None and len(takers) == 1 and "{" not in root:
                continue
            why = blocker.rule if blocker is not None else ", ".join(o.rule for o in takers)
            c.pattern, c.reason = None, f"its root {root} is another route's in the framework ({why})"
            moved = True
        if not moved:
            break
    for c in candidates:
        taken = _root_taken(c, candidates, shapes)
        if taken is not None:
            taken[2][0].aliases.append(taken[0])


def _root_taken(
    c: Candidate, candidates: list[Candidate], shapes: Mapping[int, str | None]
) -> tuple[str, Candidate | None, list[Candidate]] | None:
    """For a fast catch-all whose root the framework may give another route that the router does
    not: ``(root, a dispatch-only route that may take it, the fast routes that may)``."""
    if c.pattern is None or not c.pattern.endswith("}") or "/{*" not in c.pattern:
        return None
    root = c.pattern[: c.pattern.rindex("{*")]
    fast = [o for o in candidates if o is not c and o.pattern is not None and _methods_meet(o, c)]
    if any(root in patterns_of(o) for o in fast):
        return None  # A route holds the root explicitly, as in the framework.
    blocker = next(
        (
            o
            for o in candidates
            if o.pattern is None
            and _methods_meet(o, c)
            and (shape := shapes.get(id(o))) is not None
            and patterns_overlap(shape, root, catch_all_root=False)
        ),
        None,
    )
    takers = [o for o in fast if any(patterns_overlap(p, root, catch_all_root=False) for p in patterns_of(o))]
    if blocker is None and not takers:
        return None
    return root, blocker, takers


def switched_off(
    base: Mapping[str, Any], candidates: list[Candidate], *, limits: bool, cache: bool
) -> Mapping[str, Any]:
    """``base`` and the candidates' policies with limits and/or the cache turned off."""
    off: dict[str, Any] = {}
    if not limits:
        off["limit"] = False
    if not cache:
        off["cache"] = False
    if not off:
        return base
    for c in candidates:
        c.policy = {**c.policy, **off}
        if not limits:
            # Python-keyed limits are limits too: without them the route needs no hook check.
            c.callables = []
    return {**base, "defaults": {**dict(base.get("defaults") or {}), **off}}


def compile_routes(
    base: Mapping[str, Any],
    candidates: list[Candidate],
    where: str,
    resolve: Callable[[Compiled, Mapping[str, Any]], Hashable | None] | None = None,
    *,
    limits: bool = True,
    cache: bool = True,
) -> Compiled:
    """Builds the gate: one route per candidate, in the same order. ``resolve(compiled, environ)``
    is the framework's own router (its key for the route it would dispatch to, or None), asked
    before the framework runs when the gate's router matches nothing and some routes are
    dispatch-only, and before a refusal under a route :func:`mark_uncertain` flags.

    ``limits=False`` / ``cache=False`` switch every rate limit / the response cache off (the
    test-time switches, as Flask-Limiter's ``RATELIMIT_ENABLED`` and Flask-Caching's
    ``NullCache``); auth and access rules still apply."""
    if not (limits and cache):
        # What production would refuse must fail here too: validate the whole policy first.
        compile_routes(base, copy.deepcopy(candidates), where, resolve)
        base = switched_off(base, candidates, limits=limits, cache=cache)
    shapes = {id(c): c.pattern if c.pattern is not None else c.shape for c in candidates}
    for c in candidates:
        if c.callables and c.pattern is not None:
            c.pattern, c.reason = None, "a rate-limit key is a Python callable, which needs the request"
    claim_methods(candidates)
    resolve_conflicts(candidates)
    routes: list[dict[str, Any]] = []
    labels: list[str] = []
    keys: list[Hashable | None] = []
    index_of: dict[Hashable, int] = {}
    precheck_of: dict[Hashable, int] = {}
    deferred: set[int] = set()
    for c in candidates:
        if c.pattern is not None and not _active(c):
            # Every method it answers is claimed by an earlier route: the framework never runs it
            # for a path the router matches, but may still resolve it (a method it alone answers).
            c.pattern, c.reason = None, "another route takes its methods on the same path"
    release_roots(candidates, shapes)
    mark_uncertain(candidates, shapes)
    for c in candidates:
        index_of.setdefault(c.key, len(routes))
        keys.append(c.key)
        labels.append(c.label)
        route = _route(c)
        routes.append(route)
        if c.callables:
            # Before the framework runs, the gate checks everything but the Python-keyed limits
            # (the request they need does not exist yet); the hook then checks the whole policy,
            # limits included. The pre-check counts no limit, not even the defaults' (the view's
            # own `limit` replaces them, and a count here would be a second one).
            pre = {k: v for k, v in route.items() if k not in ("limit", "cache")}
            pre["limit"] = False
            deferred.add(len(routes))
            precheck_of[c.key] = len(routes)
            keys.append(c.key)
            labels.append(c.label + " (pre-check)")
            routes.append(pre)
    config = {**base, "routes": routes}
    # The adapters confirm at dispatch, so the gate reads `//` as the framework does: as sent.
    config["paths"] = {"empty_segments": "match", **dict(base.get("paths") or {})}
    asks_framework = any(c.pattern is None or c.confirm_refusals or c.params for c in candidates)
    holder: list[Compiled] = []

    def resolve_index(environ: Mapping[str, Any]) -> int | None:
        assert resolve is not None
        return holder[0].early_index(resolve(holder[0], environ))

    gate = _build(config, labels, where, resolve_index if resolve is not None and asks_framework else None)
    reports = [RouteReport(c.rule, c.label, c.methods, c.pattern, c.policy, c.reason) for c in candidates]
    callables = {c.key: c.callables for c in candidates if c.callables}
    compiled = Compiled(gate, index_of, keys, frozenset(deferred), precheck_of, reports, callables)
    holder.append(compiled)
    return compiled


def _route(c: Candidate) -> dict[str, Any]:
    route: dict[str, Any] = {"name": c.label, **c.policy}
    if c.pattern is None:
        # The framework resolved it, methods included.
        route["dispatch"] = True
        return route
    route["path"] = c.pattern
    if c.aliases:
        route["aliases"] = list(c.aliases)
    if c.confirm_refusals:
        route["confirm_refusals"] = True
    if c.params:
        route["params"] = dict(c.params)
    if c.methods is not None:
        route["methods"] = c.methods
    return route


def _build(
    config: dict[str, Any],
    labels: list[str],
    where: str,
    resolve: Callable[[Mapping[str, Any]], int | None] | None,
) -> Gate:
    try:
        return Gate(config, resolve=resolve)
    except ConfigError as e:
        issues = [(_name_route(k, labels), m) for k, m in e.issues]
        lines = "\n  ".join(f"{k}: {m}" for k, m in issues)
        raise ConfigError(f"ferrogate: invalid policy in {where}:\n  {lines}", issues) from None


def _name_route(key: str, labels: list[str]) -> str:
    """``routes[3].limit`` -> ``view 'users.show' (routes[3].limit)``."""
    if key.startswith("routes["):
        idx = key[7 : key.index("]")]
        if idx.isdigit() and int(idx) < len(labels):
            return f"view {labels[int(idx)]!r} ({key})"
    return key


def describe(target: Any) -> str:
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or repr(target)
    module = getattr(target, "__module__", None)
    return f"view {module}.{name}" if module else f"view {name}"


def validate_fragment(
    fragment: Mapping[str, Any], where: str, context: Mapping[str, Any] | None = None
) -> None:
    """Checks policy keys in isolation, so a typo fails where it is written, naming the view.
    ``context`` supplies top-level sections the keys refer to (named limits)."""
    try:
        # The native class: a throwaway gate must not warn about in-memory limits.
        # Other decorators, a blueprint or the defaults may add auth later: in isolation a
        # fragment is checked as if its route verified tokens (the compiled gate checks the
        # whole policy).
        _native.Gate(
            {
                **VALIDATION_CONTEXT,
                **(context or {}),
                "defaults": {"auth": "optional"},
                "routes": [{"path": "/", **fragment}],
            }
        )
    except ConfigError as e:
        issues = [(f"{where}: {k.replace('routes[0].', '')}", m) for k, m in e.issues]
        lines = "\n  ".join(f"{k}: {m}" for k, m in issues)
        raise ConfigError(f"invalid ferrogate policy on {where}:\n  {lines}", issues) from None


def add_policy(target: F, fragment: Mapping[str, Any]) -> F:
    """Merges policy keys into a view's marker attribute."""
    merged = dict(getattr(target, POLICY_ATTR, {}))
    merged.update(fragment)
    setattr(target, POLICY_ATTR, merged)
    return target


def limit_entry(
    quota: str | None,
    *,
    key: str | Sequence[str] | Callable[..., Any] | None,
    cost: int | None,
    shared: str | None,
    dry_run: bool | None,
    exempt_methods: Sequence[str] | None,
    on_error: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any] | None, CallableKey | None]:
    """One ``limit`` entry from decorator arguments: ``(entry, named limit definition, callable)``.

    ``shared="name"`` counts on the named limit (from the config's ``limits`` section, or defined
    right here when a quota is given too); otherwise the limit is this route's own.
    """
    if quota is None and shared is None:
        raise ConfigError("a limit needs a quota string or shared=<name>", [("limit", "no quota")])
    callable_key = None
    key_value: Any = key
    if callable(key):
        callable_key = CallableKey(key, f"x-ferrogate-key-{next(_callable_ids)}")
        key_value = f"header:{callable_key.header}"
    elif isinstance(key, Sequence) and not isinstance(key, str):
        key_value = list(key)
    options: dict[str, Any] = {}
    if cost is not None:
        options["cost"] = cost
    if dry_run is not None:
        options["dry_run"] = dry_run
    if exempt_methods is not None:
        options["exempt_methods"] = list(exempt_methods)
    if on_error is not None:
        options["on_error"] = on_error
    if shared is None:
        entry = {"quota": quota, **({"key": key_value} if key_value is not None else {}), **options}
        return entry, None, callable_key
    definition = None
    if quota is not None:
        definition = {"quota": quota, **({"key": key_value} if key_value is not None else {})}
    elif key_value is not None:
        raise ConfigError(
            f"limit shared={shared!r}: key= belongs to the shared limit's definition (give the quota too)",
            [("limit.key", "not allowed with shared= alone")],
        )
    return {"use": shared, **options}, definition, callable_key


#: Stands in for the real ``[jwt]`` section when a decorator is validated on its own.
VALIDATION_CONTEXT: dict[str, Any] = {
    "jwt": {"algorithms": ["HS256"], "key": "validation-only-secret-never-verifies-anything"}
}


def auth_fragment(
    *,
    scopes: Sequence[str] | None,
    optional: bool,
    locations: Sequence[str] | None,
    claims: Mapping[str, Any] | None,
    exempt_methods: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The ``auth`` policy table for decorator arguments."""
    table: dict[str, Any] = {"mode": "optional" if optional else "required"}
    if exempt_methods is not None:
        table["exempt_methods"] = list(exempt_methods)
    if scopes is not None:
        if isinstance(scopes, str):
            scopes = scopes.split()
        table["scopes"] = list(scopes)
    if locations is not None:
        table["locations"] = list(locations)
    if claims is not None:
        table["claims"] = dict(claims)
    return {"auth": table}


def cache_fragment(
    ttl: int | None, vary: Sequence[str] | None, public: bool | None, statuses: Sequence[int] | None
) -> dict[str, Any]:
    """The ``cache`` policy key for decorator arguments (``True`` when none is given)."""
    table: dict[str, Any] = {}
    if ttl is not None:
        table["ttl"] = ttl
    if vary is not None:
        table["vary"] = list(vary)
    if public is not None:
        table["public"] = public
    if statuses is not None:
        table["statuses"] = list(statuses)
    return {"cache": table or True}


def merge_named_limits(
    config: dict[str, Any], named: Mapping[str, dict[str, Any]], where: str, decorator: str
) -> None:
    """Adds limits defined by ``shared=`` decorators to ``config["limits"]``; a name defined
    differently in both places is an error."""
    if not named:
        return
    limits = dict(config.get("limits") or {})
    for name, definition in named.items():
        if name in limits and limits[name] != definition:
            raise ConfigError(
                f"limit {name!r} is defined both in {where} and by {decorator}(shared=...)",
                [(f"{where}.limits.{name}", "defined twice")],
            )
        limits[name] = definition
    config["limits"] = limits


def add_limit(target: F, entry: Mapping[str, Any], callable_key: CallableKey | None) -> F:
    """Appends a limit to a view's policy (several decorators stack into a list of limits)."""
    policy = dict(getattr(target, POLICY_ATTR, {}))
    existing = policy.get("limit")
    entries = list(existing) if isinstance(existing, list) else ([] if existing is None else [existing])
    policy["limit"] = [*entries, dict(entry)]
    setattr(target, POLICY_ATTR, policy)
    if callable_key is not None:
        setattr(target, CALLABLES_ATTR, [*getattr(target, CALLABLES_ATTR, []), callable_key])
    return target


def callables_of(*sources: Any) -> list[CallableKey]:
    out: list[CallableKey] = []
    for source in sources:
        for candidate in (getattr(source, "view_class", None), getattr(source, "cls", None), source):
            if candidate is not None:
                out.extend(getattr(candidate, CALLABLES_ATTR, []))
    return out


def policy_of(view: Any) -> dict[str, Any]:
    """A view's policy keys: its class's (class-based views), then its own."""
    merged: dict[str, Any] = {}
    for source in (getattr(view, "view_class", None), getattr(view, "cls", None), view):
        if source is not None:
            merged.update(getattr(source, POLICY_ATTR, {}))
    return merged
