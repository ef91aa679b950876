"""``FerroGate``: the gate as a Flask extension.

The app's own URL map is compiled into the Rust router (werkzeug rules become matchit patterns), so
the WSGI fast path refuses requests before Flask builds a request object. Rules the router cannot
express fall back to a ``before_request`` check with the same policy. See the README's "Flask"
section for the rules and the config keys (all listed in :data:`CONFIG_KEYS`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast

from flask import Blueprint, Flask, Response, current_app, g, request
from werkzeug.local import LocalProxy

from ferrogate._native import Decision, Router
from ferrogate.exceptions import ConfigError, GateRefused
from ferrogate.gate import Gate, load_config_file
from ferrogate.wsgi import forward, respond

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
    from werkzeug.routing import Rule

__all__ = ["CONFIG_KEYS", "FerroGate", "current_claims"]

F = TypeVar("F", bound=Callable[..., Any])

#: Every ``app.config`` key the extension reads, with its default. Constructor options override them
#: (``FerroGate(app, fast_path=False)`` overrides ``FERROGATE_FAST_PATH``).
CONFIG_KEYS: dict[str, Any] = {
    # Turn the gate off entirely (e.g. in some tests): requests reach Flask untouched.
    "FERROGATE_ENABLED": True,
    # Wrap app.wsgi_app so refused requests never reach Flask. False: check from before_request.
    "FERROGATE_FAST_PATH": True,
    # The policy every route starts from (the gate config's `defaults` table).
    "FERROGATE_DEFAULTS": {},
    # A base gate config: a dict, or the path of a TOML/JSON file. Its `routes` are ignored: the
    # extension derives routes from the URL map.
    "FERROGATE_CONFIG": None,
}

#: Gate config sections that may also be given as their own ``FERROGATE_<NAME>`` keys.
SECTION_KEYS: tuple[str, ...] = ()

_POLICY_ATTR = "__ferrogate_policy__"
_FALLBACK_PREFIX = "/_ferrogate_fallback/"
_UNMATCHED_PATH = _FALLBACK_PREFIX + "unmatched"


def _claims() -> Any:
    return g.get("ferrogate_claims")


#: The verified token claims of the current request (None when unauthenticated).
current_claims: Any = LocalProxy(_claims)


@dataclass
class RouteReport:
    """How one werkzeug rule is enforced; listed by ``flask ferrogate routes``."""

    rule: str
    endpoint: str
    methods: list[str]
    pattern: str | None
    policy: dict[str, Any]
    fallback_reason: str | None = None


def werkzeug_to_matchit(rule: Rule) -> tuple[str | None, str | None]:
    """``(pattern, None)`` for a rule matchit can express, else ``(None, reason)``.

    Whole-segment variables become ``{name}``; a trailing ``<path:...>`` becomes ``{*name}``. Typed
    converters (int, float, uuid, any) become plain ``{name}``: the gate then matches a superset of
    the rule's paths, and applies its policy to paths the app would answer 404 anyway. Any rule
    whose shape overlaps another's is caught as a conflict at compile time and falls back.
    """
    if rule.host or rule.subdomain:
        return None, "host or subdomain matching"
    if getattr(rule, "websocket", False):
        return None, "websocket rule"
    trace = list(rule._trace)
    if trace and trace[0] == (False, "|"):
        trace = trace[1:]
    segments: list[list[tuple[bool, str]]] = [[]]
    for is_var, part in trace:
        if is_var:
            segments[-1].append((True, part))
            continue
        pieces = part.split("/")
        for i, piece in enumerate(pieces):
            if i > 0:
                segments.append([])
            if piece:
                segments[-1].append((False, piece))
    out: list[str] = []
    last = len(segments) - 1
    for i, seg in enumerate(segments):
        if i == 0:
            if seg:
                return None, "rule does not start with '/'"
            continue
        if not seg:
            out.append("")
            continue
        if len(seg) > 1:
            return None, "a variable shares its segment with other text"
        is_var, part = seg[0]
        if not is_var:
            if any(c in part for c in "{}*"):
                return None, "literal braces or '*' in the rule"
            out.append(part)
            continue
        converter = type(rule._converters[part]).__name__
        if converter == "PathConverter":
            if i != last:
                return None, "<path:...> is not the last segment"
            out.append("{*" + part + "}")
        else:
            out.append("{" + part + "}")
    return "/" + "/".join(out), None


@dataclass
class _Candidate:
    rule: Rule
    pattern: str | None
    methods: list[str]
    policy: dict[str, Any]
    reason: str | None


@dataclass
class _Compiled:
    gate: Gate
    fallback_gate: Gate | None
    fallback_paths: dict[int, str]
    reports: list[RouteReport] = field(default_factory=list)


class _AppState:
    """Per-app state, kept in ``app.extensions["ferrogate"]``."""

    def __init__(self, ext: FerroGate, app: Flask) -> None:
        self.ext = ext
        self.app = app
        self.lock = threading.Lock()
        self.compiled: _Compiled | None = None
        self.rule_count = -1
        self.defer_refusals = False
        self.serving = False

    def setting(self, key: str) -> Any:
        short = key.removeprefix("FERROGATE_").lower()
        if short in self.ext.options:
            return self.ext.options[short]
        return self.app.config.get(key, CONFIG_KEYS.get(key))

    @property
    def fast_path(self) -> bool:
        return bool(self.setting("FERROGATE_FAST_PATH"))

    @property
    def enabled(self) -> bool:
        return bool(self.setting("FERROGATE_ENABLED"))

    def current(self) -> _Compiled:
        """The compiled gate, recompiled when rules were added since."""
        compiled = self.compiled
        if compiled is None or len(self.app.url_map._rules) != self.rule_count:
            with self.lock:
                if self.compiled is None or len(self.app.url_map._rules) != self.rule_count:
                    self.rule_count = len(self.app.url_map._rules)
                    self.compiled = self._compile()
                compiled = self.compiled
        return compiled

    def for_request(self) -> _Compiled:
        """``current()``, plus the one look at the app's error handlers: Flask allows no set-up after
        the first request, so what is registered then is final."""
        compiled = self.current()
        if not self.serving:
            self.defer_refusals = _has_refusal_handler(self.app)
            self.serving = True
        return compiled

    def base_config(self) -> dict[str, Any]:
        base = self.setting("FERROGATE_CONFIG")
        config: dict[str, Any] = {}
        if isinstance(base, str):
            config = load_config_file(base)
        elif isinstance(base, Mapping):
            config = dict(base)
        elif base is not None:
            raise ConfigError(
                f"FERROGATE_CONFIG must be a dict or a file path, got {type(base).__name__}",
                [("FERROGATE_CONFIG", "expected a dict or a path")],
            )
        config.pop("routes", None)
        for section in SECTION_KEYS:
            value = self.setting("FERROGATE_" + section.upper())
            if value is not None:
                config[section] = value
        defaults = dict(config.get("defaults") or {})
        defaults.update(self.setting("FERROGATE_DEFAULTS") or {})
        config["defaults"] = defaults
        return config

    def _compile(self) -> _Compiled:
        base = self.base_config()
        candidates = self._candidates()
        _resolve_conflicts(candidates)
        compiled = [c for c in candidates if c.pattern is not None and c.methods]
        fallback = [c for c in candidates if c.pattern is None and c.methods]
        routes = [
            {"path": c.pattern, "methods": c.methods, "name": c.rule.endpoint, **c.policy} for c in compiled
        ]
        gate = self._build(
            {**base, "routes": routes, "unmatched": "forward" if fallback else "defaults"},
            [c.rule.endpoint for c in compiled],
        )
        fallback_gate = None
        fallback_paths: dict[int, str] = {}
        if fallback:
            fb_routes: list[dict[str, Any]] = [{"path": _UNMATCHED_PATH}]
            for i, c in enumerate(fallback):
                path = f"{_FALLBACK_PREFIX}{i}"
                fallback_paths[id(c.rule)] = path
                fb_routes.append({"path": path, "methods": c.methods, "name": c.rule.endpoint, **c.policy})
            fallback_gate = self._build(
                {**base, "routes": fb_routes}, ["(unmatched)", *[c.rule.endpoint for c in fallback]]
            )
        reports = [
            RouteReport(c.rule.rule, c.rule.endpoint, c.methods, c.pattern, c.policy, c.reason)
            for c in candidates
        ]
        return _Compiled(gate, fallback_gate, fallback_paths, reports)

    def _build(self, config: dict[str, Any], endpoints: list[str]) -> Gate:
        try:
            return Gate(config)
        except ConfigError as e:
            issues = [(_name_route(k, endpoints), m) for k, m in e.issues]
            lines = "\n  ".join(f"{k}: {m}" for k, m in issues)
            raise ConfigError(f"ferrogate: invalid policy in the Flask app:\n  {lines}", issues) from None

    def _candidates(self) -> list[_Candidate]:
        out: list[_Candidate] = []
        claimed: dict[str, set[str]] = {}
        for rule in self.app.url_map.iter_rules():
            view = self.app.view_functions.get(rule.endpoint)
            policy = self.ext.policy_for(rule.endpoint, view)
            pattern, reason = werkzeug_to_matchit(rule)
            methods = sorted(rule.methods or ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
            if pattern is not None:
                # werkzeug gives a path+method to the first rule that has both; later ones never see it.
                taken = claimed.setdefault(pattern, set())
                methods = [m for m in methods if m not in taken]
                taken.update(methods)
            out.append(_Candidate(rule, pattern, methods, policy, reason))
        return out


def _resolve_conflicts(candidates: list[_Candidate]) -> None:
    """Moves every rule whose pattern conflicts with another's to the fallback path, both sides."""
    while True:
        router = Router()
        clash: tuple[_Candidate, str] | None = None
        for c in candidates:
            if c.pattern is None or not c.methods:
                continue
            existing = router.conflict(c.pattern, c.methods)
            if existing is not None:
                clash = (c, existing)
                break
            router.insert(c.pattern, None, c.methods)
        if clash is None:
            return
        c, existing = clash
        for other in candidates:
            if other is c or other.pattern == existing:
                reason = f"its pattern overlaps another rule's ({c.pattern} vs {existing})"
                other.pattern, other.reason = None, reason


def _name_route(key: str, endpoints: list[str]) -> str:
    """``routes[3].limit`` -> ``view 'users.show' (routes[3].limit)``."""
    if key.startswith("routes["):
        idx = key[7 : key.index("]")]
        if idx.isdigit() and int(idx) < len(endpoints):
            return f"view {endpoints[int(idx)]!r} ({key})"
    return key


def _has_refusal_handler(app: Flask) -> bool:
    for handlers in app.error_handler_spec.values():
        for by_class in handlers.values():
            if any(isinstance(cls, type) and issubclass(cls, GateRefused) for cls in by_class):
                return True
    return False


def _refusal(d: Decision) -> GateRefused:
    """The exception for a refused decision; its standard headers go on the handler's response."""
    exc = GateRefused.for_status(d.status, d.headers, _problem(d))
    g.ferrogate_headers = exc.standard_headers
    return exc


def _problem(d: Decision) -> dict[str, Any]:
    try:
        loaded = json.loads(d.body) if d.body else {}
    except ValueError:
        loaded = {}
    return loaded if isinstance(loaded, dict) else {}


class _FlaskGateMiddleware:
    """The fast path: the compiled gate in front of ``app.wsgi_app``."""

    def __init__(self, wsgi_app: WSGIApplication, state: _AppState) -> None:
        self.wsgi_app = wsgi_app
        self.state = state

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        state = self.state
        if not state.enabled or not state.fast_path:
            return self.wsgi_app(environ, start_response)
        d = state.for_request().gate.check(environ)
        if d.forward:
            return forward(self.wsgi_app, d, environ, start_response)
        if state.defer_refusals:
            # The app renders refusals itself: let Flask run so its error handler can.
            environ["ferrogate.refused"] = d
            return self.wsgi_app(environ, start_response)
        return respond(d, environ, start_response)


class FerroGate:
    """The Flask extension. ``FerroGate(app)`` or ``gate = FerroGate(); gate.init_app(app)``.

    One instance may serve several apps; each app's state lives in ``app.extensions["ferrogate"]``.
    """

    def __init__(self, app: Flask | None = None, **options: Any) -> None:
        unknown = sorted(
            k for k in options if "FERROGATE_" + k.upper() not in CONFIG_KEYS and k not in SECTION_KEYS
        )
        if unknown:
            raise ConfigError(
                f"FerroGate: unknown option(s) {', '.join(unknown)}",
                [(k, "unknown option") for k in unknown],
            )
        self.options = options
        self._blueprint_policies: dict[str, dict[str, Any]] = {}
        if app is not None:
            self.init_app(app)

    # -- set-up ---------------------------------------------------------------------------------

    def init_app(self, app: Flask) -> None:
        if "ferrogate" in app.extensions:
            raise RuntimeError("ferrogate is already initialised on this app")
        state = _AppState(self, app)
        app.extensions["ferrogate"] = state
        app.wsgi_app = _FlaskGateMiddleware(app.wsgi_app, state)  # type: ignore[method-assign]
        app.before_request(self._before_request)
        app.after_request(self._after_request)
        from ferrogate.flask_cli import ferrogate_cli

        app.cli.add_command(ferrogate_cli)
        # Compile now so a bad policy fails at start-up; rules added later recompile on first use.
        state.current()

    @staticmethod
    def state(app: Flask | None = None) -> _AppState:
        target = app if app is not None else current_app._get_current_object()  # type: ignore[attr-defined]
        try:
            return cast(_AppState, target.extensions["ferrogate"])
        except KeyError:
            raise RuntimeError("ferrogate is not initialised on this app: call FerroGate(app)") from None

    def routes(self, app: Flask | None = None) -> list[RouteReport]:
        """How every rule of the app is enforced (compiled pattern or fallback, and its policy)."""
        return self.state(app).current().reports

    # -- policies -------------------------------------------------------------------------------

    def policy(self, **fragment: Any) -> Callable[[F], F]:
        """Sets gate policy keys on a view or a blueprint: ``@gate.policy(access="deny")``.

        The keys are validated now, so a malformed argument fails at import naming the view.
        """

        def decorate(target: F) -> F:
            where = _describe(target)
            _validate_fragment(fragment, where)
            if isinstance(target, Blueprint):
                self._blueprint_policies.setdefault(target.name, {}).update(fragment)
                return target
            existing = dict(getattr(target, _POLICY_ATTR, {}))
            existing.update(fragment)
            setattr(target, _POLICY_ATTR, existing)
            return target

        return decorate

    def exempt(self, target: F) -> F:
        """No gate checks at all for this view (or blueprint)."""
        return self.policy(exempt=True)(target)

    def policy_for(self, endpoint: str, view: Callable[..., Any] | None) -> dict[str, Any]:
        """The policy keys for an endpoint: outer blueprints, inner blueprints, then the view."""
        merged: dict[str, Any] = {}
        parts = endpoint.split(".")[:-1]
        for i in range(1, len(parts) + 1):
            # A nested blueprint's endpoints carry its dotted path ("api.internal"); its policy is
            # stored under its own name ("internal").
            for name in dict.fromkeys((parts[i - 1], ".".join(parts[:i]))):
                merged.update(self._blueprint_policies.get(name, {}))
        if view is not None:
            view_class = getattr(view, "view_class", None)
            if view_class is not None:
                merged.update(getattr(view_class, _POLICY_ATTR, {}))
            merged.update(getattr(view, _POLICY_ATTR, {}))
        return merged

    # -- hooks ----------------------------------------------------------------------------------

    def _before_request(self) -> Response | None:
        state = self.state()
        if not state.enabled:
            return None
        environ = request.environ
        refused = environ.pop("ferrogate.refused", None)
        if refused is not None:
            raise _refusal(refused)
        compiled = state.for_request()
        if not state.fast_path:
            d = compiled.gate.check(environ)
            result = self._apply(state, d)
            if result is not None:
                return result
        if compiled.fallback_gate is not None and environ.get("ferrogate.route") is None:
            rule = request.url_rule
            path = (
                compiled.fallback_paths.get(id(rule), _UNMATCHED_PATH)
                if rule is not None
                else _UNMATCHED_PATH
            )
            synthetic = dict(environ)
            synthetic["PATH_INFO"] = path
            result = self._apply(state, compiled.fallback_gate.check(synthetic))
            if result is not None:
                return result
        g.ferrogate_claims = environ.get("ferrogate.claims")
        return None

    def _apply(self, state: _AppState, d: Decision) -> Response | None:
        environ = request.environ
        if d.forward:
            environ.setdefault("ferrogate.route", d.route)
            environ.setdefault("ferrogate.route_name", d.route_name)
            environ.setdefault("ferrogate.params", d.params)
            if d.headers:
                g.ferrogate_headers = [*g.get("ferrogate_headers", ()), *d.headers]
            return None
        if state.defer_refusals:
            raise _refusal(d)
        body = b"" if request.method == "HEAD" else d.body
        return Response(body, status=d.status, headers=list(d.headers))

    @staticmethod
    def _after_request(response: Response) -> Response:
        for k, v in g.get("ferrogate_headers", ()):
            response.headers.add(k, v)
        return response


def _describe(target: Any) -> str:
    if isinstance(target, Blueprint):
        return f"blueprint {target.name!r}"
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or repr(target)
    module = getattr(target, "__module__", None)
    return f"view {module}.{name}" if module else f"view {name}"


def _validate_fragment(fragment: Mapping[str, Any], where: str) -> None:
    """Checks policy keys in isolation, so a typo fails where it is written."""
    try:
        Gate({"routes": [{"path": "/", **fragment}]})
    except ConfigError as e:
        issues = [(f"{where}: {k.replace('routes[0].', '')}", m) for k, m in e.issues]
        lines = "\n  ".join(f"{k}: {m}" for k, m in issues)
        raise ConfigError(f"invalid ferrogate policy on {where}:\n  {lines}", issues) from None
