"""``FerroGate``: the gate as a Flask extension.

The app's own URL map is compiled into the Rust router (werkzeug rules become matchit patterns), so
the WSGI fast path refuses requests before Flask builds a request object. Rules the router cannot
express fall back to a ``before_request`` check with the same policy. See docs/flask.md for the
rules and the config keys (all listed in :data:`CONFIG_KEYS`).
"""

from __future__ import annotations

import re
import threading
import warnings
from collections.abc import Callable, Hashable, Iterable, Mapping
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar, cast

from flask import Blueprint, Flask, Response, after_this_request, current_app, g, request, request_finished
from werkzeug.exceptions import HTTPException
from werkzeug.routing import (
    BaseConverter,
    IntegerConverter,
    PathConverter,
    UnicodeConverter,
    UUIDConverter,
    parse_converter_args,
)

from ferrogate._adapter import (
    ROUTER_METHODS,
    CallableKey,
    Candidate,
    Compiled,
    RouteReport,
    Var,
    add_limit,
    add_policy,
    auth_fragment,
    cache_fragment,
    callables_of,
    check_limit,
    compile_routes,
    describe,
    is_refusal,
    limit_entry,
    matchit_pattern,
    merge_named_limits,
    policy_of,
    refusal_answer,
    store_response,
    validate_fragment,
)
from ferrogate._native import CacheTicket, Decision, ResponseCache, WsgiGate
from ferrogate.exceptions import ConfigError, GateRefused, OpaqueLayerWarning
from ferrogate.flask_identity import (
    create_access_token,
    create_refresh_token,
    current_claims,
    current_user,
    get_claims,
    get_current_user,
    get_identity,
    verify_refresh_token,
)
from ferrogate.flask_mounts import Mounts, mounts_inside
from ferrogate.flask_refusals import has_refusal_handler, refusal
from ferrogate.gate import load_config_file
from ferrogate.tokens import TokenIssuer

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
    from werkzeug.routing import Rule

__all__ = [
    "CONFIG_KEYS",
    "FerroGate",
    "create_access_token",
    "create_refresh_token",
    "current_claims",
    "current_user",
    "get_claims",
    "get_current_user",
    "get_identity",
    "verify_refresh_token",
]

F = TypeVar("F", bound=Callable[..., Any])

#: Every ``app.config`` key the extension reads, with its default. Constructor options override them
#: (``FerroGate(app, fast_path=False)`` overrides ``FERROGATE_FAST_PATH``).
CONFIG_KEYS: dict[str, Any] = {
    # Turn the gate off entirely (e.g. in some tests): requests reach Flask untouched. Like every
    # key here, read when the app serves its first request.
    "FERROGATE_ENABLED": True,
    # Test-time switches (as Flask-Limiter's RATELIMIT_ENABLED and Flask-Caching's NullCache):
    # False turns every rate limit / the response cache off; auth and access rules still apply.
    "FERROGATE_RATELIMIT_ENABLED": True,
    "FERROGATE_CACHE_ENABLED": True,
    # Wrap app.wsgi_app so refused requests never reach Flask. False: check from before_request.
    "FERROGATE_FAST_PATH": True,
    # The policy every route starts from (the gate config's `defaults` table).
    "FERROGATE_DEFAULTS": {},
    # A base gate config: a dict, or the path of a TOML/JSON file. Its `routes` are ignored: the
    # extension derives routes from the URL map.
    "FERROGATE_CONFIG": None,
    # Called as on_refused(decision, environ) for every refusal (logging, metrics); it cannot
    # change the answer, and its errors are logged, never raised.
    "FERROGATE_ON_REFUSED": None,
    # The claim that names the user (current_user, get_identity).
    "FERROGATE_IDENTITY_CLAIM": "sub",
    # Issuing tokens (create_access_token): the private key PEM for RS*/PS*/ES*/EdDSA; for HS*
    # the FERROGATE_JWT key signs. Lifetimes in seconds.
    "FERROGATE_SIGNING_KEY": None,
    "FERROGATE_ACCESS_TOKEN_EXPIRES": 900,
    "FERROGATE_REFRESH_TOKEN_EXPIRES": 30 * 86400,
}

#: Gate config sections that may also be given as their own ``FERROGATE_<NAME>`` keys
#: (``FERROGATE_JWT = {...}``), or as constructor options (``FerroGate(app, jwt={...})``).
SECTION_KEYS: tuple[str, ...] = ("jwt", "limits", "rate_limit", "client_ip", "cache", "redis")


def werkzeug_to_matchit(rule: Rule) -> tuple[str | None, str | None]:
    """``(pattern, None)`` for a rule matchit can express, else ``(None, reason)``.

    Whole-segment variables become ``{name}``; a trailing variable whose converter spans ``/``
    (werkzeug's ``part_isolating = False``: ``<path:...>`` and its subclasses) becomes ``{*name}``.
    Typed converters (int, float, uuid, any) become plain ``{name}``: the gate then matches a
    superset of the rule's paths. That is safe because the extension confirms at dispatch that
    werkzeug resolved the route the gate matched, and checks again when it did not.
    """
    if rule.host or rule.subdomain:
        return None, "host or subdomain matching"
    if getattr(rule, "websocket", False):
        return None, "websocket rule"
    other = sorted(m for m in rule.methods or () if m not in ROUTER_METHODS)
    if other:
        return None, f"method {', '.join(other)} has no table in the gate's router"
    segments: list[list[tuple[bool, str]]] = [[]]
    for is_var, part in rule_parts(rule):
        if is_var:
            segments[-1].append((True, part))
            continue
        pieces = part.split("/")
        for i, piece in enumerate(pieces):
            if i > 0:
                segments.append([])
            if piece:
                segments[-1].append((False, piece))
    if segments[0]:
        return None, "rule does not start with '/'"
    converters = rule_converters(rule)
    shaped: list[str | Var | None] = []
    for seg in segments[1:]:
        if len(seg) != 1:
            shaped.append(None if seg else "")
            continue
        is_var, part = seg[0]
        if is_var:
            conv = converters[part]
            shaped.append(Var(part, not getattr(conv, "part_isolating", True), type(conv).__name__))
        else:
            shaped.append(part)
    return matchit_pattern(shaped, noun="rule", variable="variable", inner_empty=False)


#: werkzeug's rule syntax (its documented ``<converter(arguments):name>`` placeholders): a slash,
#: static text, or a variable.
_RULE_PART = re.compile(
    r"(?P<slash>/)|(?P<static>[^</]+)"
    r"|<(?:(?P<converter>[a-zA-Z_][a-zA-Z0-9_]*)(?:\((?P<arguments>.*?)\))?:)?"
    r"(?P<variable>[a-zA-Z_][a-zA-Z0-9_]*)>"
)


def rule_parts(rule: Rule) -> list[tuple[bool, str]]:
    """The rule's path as ``(is_variable, text)`` parts, read from its public ``rule`` string."""
    return [
        (m["variable"] is not None, m["variable"] or m["static"] or "/")
        for m in _RULE_PART.finditer(rule.rule)
    ]


def rule_converters(rule: Rule) -> dict[str, BaseConverter]:
    """The rule's converters by variable, made as the rule makes its own (``Rule.get_converter``
    with the arguments parsed by ``parse_converter_args``): the same classes with the same
    settings, through werkzeug's public API."""
    out: dict[str, BaseConverter] = {}
    for m in _RULE_PART.finditer(rule.rule):
        if m["variable"] is not None:
            args, kwargs = parse_converter_args(m["arguments"] or "")
            out[m["variable"]] = rule.get_converter(m["variable"], m["converter"] or "default", args, kwargs)
    return out


#: Converters whose paths are exactly what the matchit parameter matches: the default string
#: converter (any non-empty segment) and ``path`` (the rest). Any other converter narrows.
_EXACT_REGEXES = {(UnicodeConverter, "[^/]{1,}"), (PathConverter, PathConverter.regex)}


def param_shapes(rule: Rule) -> dict[str, str]:
    """The parameters whose converter the gate can check exactly or more strictly: werkzeug's
    default ``int`` (``\\d+``; the gate admits ASCII digits, a subset) and ``uuid``. A value the
    gate's shape refuses goes to werkzeug's own router, so the subset is safe."""
    shapes: dict[str, str] = {}
    for name, conv in rule_converters(rule).items():
        if type(conv) is IntegerConverter and conv.regex == r"\d+" and _default_number(conv):
            shapes[name] = "digits"
        elif type(conv) is UUIDConverter:
            shapes[name] = "uuid"
    return shapes


def _default_number(conv: IntegerConverter) -> bool:
    return not conv.fixed_digits and conv.min is None and conv.max is None and not conv.signed


def narrowed(rule: Rule) -> bool:
    """Whether the rule matches fewer paths than its matchit pattern and its parameter shapes
    (``<any(...)>``, a length-limited string, an ``int`` with bounds)."""
    shaped = param_shapes(rule)
    return any(
        (type(conv), conv.regex) not in _EXACT_REGEXES and name not in shaped
        for name, conv in rule_converters(rule).items()
    )


def slash_aliases(rule: Rule, pattern: str) -> list[str]:
    """The other spelling a non-strict-slash rule answers (``/a`` for ``/a/``, and back), so
    both reach the same gate route, one policy and one set of limit buckets."""
    if rule.strict_slashes is not False or pattern == "/" or "{*" in pattern:
        return []
    return [pattern[:-1]] if pattern.endswith("/") else [pattern + "/"]


class _AppState:
    """Per-app state, kept in ``app.extensions["ferrogate"]``."""

    def __init__(self, ext: FerroGate, app: Flask) -> None:
        self.ext = ext
        self.app = app
        self.lock = threading.Lock()
        self.compiled: Compiled | None = None
        self.rule_count = -1
        self.generation = -1
        self.defer_refusals = False
        self.serving = False
        #: What the gate wraps (``app.wsgi_app`` at ``init_app``), and the mount points of the
        #: dispatchers in it, which take paths away from Flask.
        self.inner: Any = None
        self.mounts = Mounts()
        self._issuer: TokenIssuer | None = None
        self._watching_finished = False

    def watch_finished(self) -> None:
        """Connects ``request_finished`` to the store of a held response (:func:`_store_pending`)
        when the first one is held. The fast path never holds one, and a receiver would cost every
        request of the app a call."""
        if not self._watching_finished:
            with self.lock:
                if not self._watching_finished:
                    request_finished.connect(_store_pending, self.app, weak=False)
                    self._watching_finished = True

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

    @property
    def on_refused(self) -> Callable[[Decision, Any], object] | None:
        hook = self.setting("FERROGATE_ON_REFUSED")
        if hook is not None and not callable(hook):
            raise ConfigError(
                f"FERROGATE_ON_REFUSED must be a callable, got {type(hook).__name__}",
                [("FERROGATE_ON_REFUSED", "expected a callable(decision, environ)")],
            )
        return cast(Callable[[Decision, Any], object] | None, hook)

    @property
    def identity_claim(self) -> str:
        return str(self.setting("FERROGATE_IDENTITY_CLAIM"))

    @property
    def realm(self) -> str:
        jwt = self.base_config().get("jwt") or {}
        return str(jwt.get("realm", "api"))

    def load_user(self, identity: str, claims: Mapping[str, Any]) -> Any:
        loader = self.ext.user_loader_callback
        if loader is None:
            raise RuntimeError("current_user needs a user loader: decorate one with @gate.user_loader")
        return loader(identity, claims)

    def issuer(self) -> TokenIssuer:
        """The app's token issuer, built on first use from FERROGATE_JWT and the signing key."""
        issuer = self._issuer
        if issuer is None:
            with self.lock:
                if self._issuer is None:
                    self._issuer = TokenIssuer(
                        self.base_config().get("jwt") or {},
                        signing_key=self.setting("FERROGATE_SIGNING_KEY"),
                        access_ttl=self.setting("FERROGATE_ACCESS_TOKEN_EXPIRES"),
                        refresh_ttl=self.setting("FERROGATE_REFRESH_TOKEN_EXPIRES"),
                        identity_claim=self.identity_claim,
                    )
                issuer = self._issuer
        return issuer

    def current(self) -> Compiled:
        """The compiled gate, recompiled when rules were added or policies set since. Once the app
        serves, its set-up is final (Flask refuses new rules, the extension new policies), so
        hook mode's per-request call does not walk the URL map."""
        compiled = self.compiled
        if compiled is not None and self.serving:
            return compiled
        if compiled is None or self._stale():
            with self.lock:
                if self.compiled is None or self._stale():
                    self.rule_count = _rule_count(self.app)
                    self.generation = self.ext.generation
                    self.compiled = self._compile()
                compiled = self.compiled
        return compiled

    def _stale(self) -> bool:
        return self.ext.generation != self.generation or _rule_count(self.app) != self.rule_count

    def for_request(self) -> Compiled:
        """``current()``, plus the one look at the app's error handlers and the WSGI layers inside
        the gate: Flask allows no set-up after the first request, so what is there then is final."""
        if not self.serving:
            with self.lock:
                if mounts_inside(self.inner, self.app).signature != self.mounts.signature:
                    self.compiled = None  # a mount added since init_app
        compiled = self.current()
        if not self.serving:
            self.defer_refusals = has_refusal_handler(self.app)
            self.serving = True
        return compiled

    def resolve(self, compiled: Compiled, environ: Mapping[str, Any]) -> Hashable | None:
        """The rule werkzeug would dispatch ``environ`` to (its key), before Flask runs: asked by the
        gate for a path its router does not match while some rules are dispatch-only."""
        if self.mounts and self.mounts.serves(environ):
            return None  # a WSGI layer beside Flask answers it: the defaults apply
        app = self.app
        try:
            adapter = app.create_url_adapter(app.request_class(cast(Any, environ)))
            if adapter is None:
                return None
            rule, _ = adapter.match(return_rule=True)
        except HTTPException:
            # 404, 405 or a redirect: Flask runs no view; the defaults apply.
            return None
        return id(rule)

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
        # After the sections: FERROGATE_LIMITS must not drop limits the decorators defined.
        merge_named_limits(config, self.ext.named_limits, "FERROGATE_LIMITS", "@gate.limit")
        defaults = dict(config.get("defaults") or {})
        defaults.update(self.setting("FERROGATE_DEFAULTS") or {})
        config["defaults"] = defaults
        return config

    def _compile(self) -> Compiled:
        self.mounts = mounts_inside(self.inner, self.app)
        if self.mounts.opaque:
            warnings.warn(
                f"ferrogate cannot see inside the WSGI layer {self.mounts.opaque[0]} wrapped around "
                f"app.wsgi_app before init_app (it keeps the app it wraps in none of .app, .wsgi_app, "
                ".application, .wsgi): paths it answers itself get the policy of the Flask rule that "
                "matches them. Wrap it after init_app, or keep the wrapped app in .app",
                OpaqueLayerWarning,
                stacklevel=2,
            )
        return compile_routes(
            self.base_config(),
            self._candidates(),
            f"the Flask app {self.app.name!r}",
            self.resolve,
            limits=bool(self.setting("FERROGATE_RATELIMIT_ENABLED")),
            cache=bool(self.setting("FERROGATE_CACHE_ENABLED")),
        )

    def _candidates(self) -> list[Candidate]:
        out: list[Candidate] = []
        for rule in self.app.url_map.iter_rules():
            view = self.app.view_functions.get(rule.endpoint)
            pattern, reason = werkzeug_to_matchit(rule)
            aliases = slash_aliases(rule, pattern) if pattern is not None else []
            if pattern is not None and self.mounts:
                mount = next(
                    (m for p in (pattern, *aliases) if (m := self.mounts.overlapping(p)) is not None),
                    None,
                )
                if mount is not None:
                    pattern, aliases = None, []
                    reason = f"a WSGI app mounted at {mount!r} inside the gate may take its paths"
            methods = sorted(rule.methods or ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
            policy = self.ext.policy_for(rule.endpoint, view)
            callables = self.ext.callables_for(rule.endpoint, view)
            out.append(
                Candidate(
                    id(rule),
                    rule.endpoint,
                    rule.rule,
                    pattern,
                    methods,
                    policy,
                    reason,
                    callables,
                    aliases,
                    narrowed(rule),
                    params=param_shapes(rule) if pattern is not None else {},
                )
            )
        return out


def _refusal(d: Decision) -> GateRefused:
    """The exception for a refused decision; the gate's headers go on whatever response a handler
    makes of it, unless the handler set them itself."""
    exc = refusal(d)
    standard = exc.standard_headers

    def add_headers(response: Response) -> Response:
        present = {k.lower() for k in response.headers.keys()}  # noqa: SIM118 - werkzeug Headers
        for k, v in standard:
            if k.lower() not in present:
                response.headers.add(k, v)
        return response

    after_this_request(add_headers)
    return exc


class _FlaskGateMiddleware:
    """The fast path: the compiled gate in front of ``app.wsgi_app``."""

    def __init__(self, wsgi_app: WSGIApplication, state: _AppState) -> None:
        self.wsgi_app = wsgi_app
        self.state = state
        self._native: WsgiGate | None = None

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        native = self._native
        if native is None:
            native = self._prepare()
            if native is None:
                return self.wsgi_app(environ, start_response)
        return native(environ, start_response)

    def _prepare(self) -> WsgiGate | None:
        """The first request settles everything (Flask allows no set-up after it): the compiled
        gate, whether refusals are app-rendered, which hooks stay. From then on a request is one
        native call. Disabled or hook mode: None, and Flask's hooks do the checking."""
        state = self.state
        compiled = state.for_request()
        if not state.enabled:
            return None
        own = type(state.app).wsgi_app.__get__(state.app)
        if not state.fast_path and self.wsgi_app == own:
            return None
        # Hook mode with a WSGI layer inside the gate (a DispatcherMiddleware mounted before
        # init_app) checks here too: that layer may answer requests Flask never sees, so no
        # before_request hook would. Flask still renders the refusals, as in hook mode.
        defer = state.defer_refusals or not state.fast_path
        # Deferred refusals go to Flask's own entry point, never to a WSGI layer wrapped inside
        # the gate that could serve the request itself.
        native = self._native = WsgiGate(
            self.wsgi_app, compiled.gate, defer, refusal_app=own, on_refused=state.on_refused
        )
        # From now on Flask may call the native gate itself, a Python frame less per request. Only
        # while app.wsgi_app is still this middleware: a wrapper added after init_app (ProxyFix,
        # say) holds this object and keeps calling it, which still works.
        if state.app.__dict__.get("wsgi_app") is self:
            state.app.wsgi_app = native  # type: ignore[method-assign]
        return native


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
        self._blueprint_callables: dict[str, list[CallableKey]] = {}
        #: Named limits defined by ``@gate.limit(quota, shared=name)``.
        self.named_limits: dict[str, dict[str, Any]] = {}
        #: Bumped by every policy decorator, so an app compiled before one recompiles.
        self.generation = 0
        self._states: list[_AppState] = []
        #: The ``@gate.user_loader`` callback.
        self.user_loader_callback: Callable[[str, Mapping[str, Any]], Any] | None = None
        if app is not None:
            self.init_app(app)

    # -- set-up ---------------------------------------------------------------------------------

    def init_app(self, app: Flask) -> None:
        if "ferrogate" in app.extensions:
            raise RuntimeError("ferrogate is already initialised on this app")
        state = _AppState(self, app)
        app.extensions["ferrogate"] = state
        state.inner = app.wsgi_app
        self._states.append(state)
        app.wsgi_app = _FlaskGateMiddleware(app.wsgi_app, state)  # type: ignore[method-assign]
        app.before_request(self._confirmer(state))
        from ferrogate.flask_cli import ferrogate_cli

        app.cli.add_command(ferrogate_cli)
        # Compile now so a bad policy fails at start-up; rules added later recompile on first use.
        state.current()
        state.on_refused  # noqa: B018 - validated at start-up too

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

    def user_loader(
        self, fn: Callable[[str, Mapping[str, Any]], Any]
    ) -> Callable[[str, Mapping[str, Any]], Any]:
        """Registers ``fn(identity, claims) -> user | None``, which :data:`current_user` calls once
        per request (as Flask-Login's ``user_loader`` and Flask-JWT-Extended's
        ``user_lookup_loader``). ``None`` (a deleted or disabled user) answers 401."""
        self.user_loader_callback = fn
        return fn

    # -- policies -------------------------------------------------------------------------------

    def policy(self, **fragment: Any) -> Callable[[F], F]:
        """Sets gate policy keys on a view or a blueprint: ``@gate.policy(access="deny")``.

        The keys are validated now, so a malformed argument fails at import naming the view.
        """

        def decorate(target: F) -> F:
            validate_fragment(fragment, _describe(target))
            self._policies_changed(target)
            if isinstance(target, Blueprint):
                self._blueprint_policies.setdefault(target.name, {}).update(fragment)
                return target
            return add_policy(target, fragment)

        return decorate

    def exempt(self, target: F) -> F:
        """No gate checks at all for this view (or blueprint)."""
        return self.policy(exempt=True)(target)

    def auth(
        self,
        scopes: list[str] | str | None = None,
        *,
        optional: bool = False,
        locations: list[str] | None = None,
        claims: dict[str, Any] | None = None,
        exempt_methods: list[str] | None = None,
    ) -> Callable[[F], F]:
        """Bearer-token auth on a view or blueprint: ``@gate.auth(scopes=["articles:write"])``.

        ``optional=True`` lets requests without a token through (a token that is sent must be
        valid). ``locations``: ``"header"`` (default), ``"cookie:<name>"``, ``"query:<name>"``.
        ``claims``: ``{"email_verified": True, "roles": {"contains": ["admin"]}}``.
        ``exempt_methods``: methods on which the token is optional (``["OPTIONS"]``: CORS
        preflights, which never carry one, get Flask's own answer; none by default, see
        docs/authentication.md). The verified claims are in :data:`current_claims`.
        """
        return self.policy(
            **auth_fragment(
                scopes=scopes,
                optional=optional,
                locations=locations,
                claims=claims,
                exempt_methods=exempt_methods,
            )
        )

    def cache(
        self,
        ttl: int | None = None,
        *,
        vary: list[str] | None = None,
        public: bool | None = None,
        statuses: list[int] | None = None,
    ) -> Callable[[F], F]:
        """Caches a GET view's responses in the gate: ``@gate.cache(ttl=60)``. Hits are served
        from Rust before Flask runs. ``public=True`` shares one entry between all callers (no
        principal in the key); ``vary`` adds request headers responses may vary on."""
        return self.policy(**cache_fragment(ttl, vary, public, statuses))

    def response_cache(self, app: Flask | None = None) -> ResponseCache | None:
        """The app's gate response cache, for purges (``purge_path``, ``purge_prefix``,
        ``purge_tag``, ``clear``) and ``stats()``; None when nothing is cached."""
        return self.state(app).current().gate.cache

    def reset(self, app: Flask | None = None) -> None:
        """Starts the app's gate over, for tests: in-memory rate-limit counts forgotten, the
        response cache emptied (see :meth:`ferrogate.Gate.reset`)."""
        self.state(app).current().gate.reset()

    def revoke_token(
        self, token_or_jti: str, *, exp: float | datetime | None = None, app: Flask | None = None
    ) -> str:
        """Revokes a token (or a bare ``jti``) in every process sharing the app's Redis; see
        :meth:`ferrogate.Gate.revoke_token`. Needs ``FERROGATE_JWT["revocation"]``."""
        return self.state(app).current().gate.revoke_token(token_or_jti, exp=exp)

    def revoke_subject(
        self,
        sub: str,
        *,
        before: float | datetime | None = None,
        issuer: str | None = None,
        app: Flask | None = None,
    ) -> float:
        """Revokes every token of ``sub`` (from ``issuer``) issued before ``before`` (default now);
        see :meth:`ferrogate.Gate.revoke_subject`."""
        return self.state(app).current().gate.revoke_subject(sub, before=before, issuer=issuer)

    def limit(
        self,
        quota: str | None = None,
        *,
        key: str | list[str] | Callable[[], Any] | None = None,
        cost: int | None = None,
        shared: str | None = None,
        dry_run: bool | None = None,
        exempt_methods: list[str] | None = None,
        on_error: str | None = None,
    ) -> Callable[[F], F]:
        """A rate limit on a view or blueprint: ``@gate.limit("10/second")``.

        ``key``: ``"ip"`` (default), ``"sub"``, ``"claim:<name>"``, ``"header:<name>"``, a list of
        those (compound), or a function of no arguments that reads ``flask.request`` (the slow path:
        such views are checked in ``before_request``). ``shared="name"`` counts on a named limit,
        defined in the config's ``limits`` or here when a quota is given too. Stacked decorators add
        limits; a view's limits replace its blueprint's. ``on_error``: ``"allow"``, ``"deny"`` (503)
        or ``"local"``, what the limit does when its Redis store cannot answer.
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

        def decorate(target: F) -> F:
            check_limit(entry, definition, shared, _describe(target), self.named_limits, "@gate.limit")
            self._policies_changed(target)
            if isinstance(target, Blueprint):
                holder = self._blueprint_policies.setdefault(target.name, {})
                holder["limit"] = [*holder.get("limit", []), entry]
                if callable_key is not None:
                    self._blueprint_callables.setdefault(target.name, []).append(callable_key)
                return target
            return add_limit(target, entry, callable_key)

        return decorate

    def _policies_changed(self, target: Any) -> None:
        """A policy set after ``init_app`` recompiles the app's table on its next use; after the
        first request (the native gate is built by then) it is refused rather than ignored."""
        serving = [s.app.name for s in self._states if s.serving and _registered(s.app, target)]
        if serving:
            raise RuntimeError(
                f"{_describe(target)}: ferrogate policies cannot change once the app "
                f"({', '.join(map(repr, serving))}) has handled its first request"
            )
        self.generation += 1

    def callables_for(self, endpoint: str, view: Callable[..., Any] | None) -> list[CallableKey]:
        """The Python key functions of the limits in force for an endpoint."""
        if view is not None and "limit" in policy_of(view):
            return callables_of(view)
        out: list[CallableKey] = []
        for name in self._blueprint_names(endpoint):
            if "limit" in self._blueprint_policies.get(name, {}):
                out = list(self._blueprint_callables.get(name, []))
        return out

    @staticmethod
    def _blueprint_names(endpoint: str) -> list[str]:
        """Blueprint names an endpoint belongs to, outermost first. A nested blueprint's endpoints
        carry its dotted path ("api.internal"); its policy is stored under its own name."""
        parts = endpoint.split(".")[:-1]
        names: list[str] = []
        for i in range(1, len(parts) + 1):
            names.extend(dict.fromkeys((parts[i - 1], ".".join(parts[:i]))))
        return names

    def policy_for(self, endpoint: str, view: Callable[..., Any] | None) -> dict[str, Any]:
        """The policy keys for an endpoint: outer blueprints, inner blueprints, then the view."""
        merged: dict[str, Any] = {}
        for name in self._blueprint_names(endpoint):
            merged.update(self._blueprint_policies.get(name, {}))
        if view is not None:
            merged.update(policy_of(view))
        return merged

    # -- hooks ----------------------------------------------------------------------------------

    def _confirmer(self, state: _AppState) -> Callable[[], Response | None]:
        """The app's ``before_request`` hook: the common case (the native gate checked the rule
        Flask resolved) is one identity check, with no further lookups."""

        def confirm() -> Response | None:
            # One proxy lookup: each attribute read through the `request` proxy costs about as much
            # as the whole identity check.
            req = request._get_current_object()  # type: ignore[attr-defined]
            environ = req.environ
            # `g` is the app context's documented place for per-request values; a re-check below
            # updates it.
            g._get_current_object().ferrogate_claims = environ.get("ferrogate.claims")
            early = environ.get("ferrogate.decision")
            compiled = state.compiled
            if early is not None and compiled is not None:
                rule = req.url_rule
                if compiled.confirmed(early, id(rule) if rule is not None else None):
                    return None
            return self._before_request()

        return confirm

    def _before_request(self) -> Response | None:
        """Confirms at dispatch that Flask resolved the rule the gate enforced (one identity check),
        and otherwise checks the request again under the resolved rule's policy."""
        state = self.state()
        if not state.enabled:
            return None
        environ = request.environ
        refused = environ.pop("ferrogate.refused", None)
        if refused is not None:
            raise _refusal(refused)
        compiled = state.for_request()
        rule = request.url_rule
        key = id(rule) if rule is not None else None
        early = environ.get("ferrogate.decision")
        if compiled.confirmed(early, key):
            return None
        return self._apply(state, compiled.recheck(early, key, environ, lambda ck: ck.fn()))

    def _apply(self, state: _AppState, d: Decision) -> Response | None:
        environ = request.environ
        if d.forward:
            d.forward_into(environ)
            g.ferrogate_claims = d.claims
            if d.cache_ticket is not None or d.headers:
                after_this_request(partial(_finish, d))
            return None
        status, headers, body = refusal_answer(d, request.method, environ, state.on_refused)
        if state.defer_refusals and is_refusal(d):
            # The app's handler for its class or status renders it.
            raise _refusal(d)
        # As on the fast path: the gate's own answer (an Exception catch-all never sees it).
        return Response(body, status=status, headers=list(headers))


#: The environ key of a view's response waiting for Flask to finish it before it is stored.
_PENDING = "ferrogate.pending_store"


def _finish(d: Decision, response: Response) -> Response:
    """After a check in the hook (the first of the ``after_request`` callbacks): the view's response
    is held for the cache ticket, then the gate's headers are added."""
    if d.cache_ticket is not None:
        _hold_flask_response(d.cache_ticket, response)
    for k, v in d.headers:
        response.headers.add(k, v)
    return response


def _hold_flask_response(ticket: CacheTicket, response: Response) -> None:
    """The view's response, as the cache stores it (a hit answered from the hook passes through the
    app's ``after_request`` hooks again, so what they add is not stored); streamed ones are not.
    It is stored only once Flask has finished the response (:func:`_store_pending`)."""
    streamed = response.is_streamed or response.direct_passthrough
    if not ticket.is_store or streamed:
        store_response(ticket, response.status_code, streamed, lambda: ([], b""))
        return
    FerroGate.state().watch_finished()
    request.environ[_PENDING] = (
        ticket,
        response.status_code,
        list(response.headers.items()),
        response.get_data(),
    )


def _store_pending(sender: Flask, response: Response, **_: Any) -> None:
    """``request_finished``: every ``after_request`` hook has run and the session is saved. When
    they made the response one the cache must not keep (a session's ``Set-Cookie``, a hook's
    ``Cache-Control: no-store``), nothing is stored; otherwise the view's response is."""
    pending = request.environ.pop(_PENDING, None)
    if pending is None:
        return
    ticket, status, headers, body = pending
    final = list(response.headers.items())
    if ticket.wants(response.status_code, final):
        add, remove = ticket.store_changes(status, headers, body)
    else:
        add, remove = ticket.store_changes(response.status_code, final, b"")
    for name in remove:
        del response.headers[name]
    for k, v in add:
        response.headers.add(k, v)


def _registered(app: Flask, target: Any) -> bool:
    """Whether a view or blueprint is part of ``app`` already."""
    if isinstance(target, Blueprint):
        return app.blueprints.get(target.name) is target
    return any(view is target for view in app.view_functions.values())


def _rule_count(app: Flask) -> int:
    # As cheap as werkzeug's own `Map._rules`, which builds the same list.
    return sum(1 for _ in app.url_map.iter_rules())


def _describe(target: Any) -> str:
    return f"blueprint {target.name!r}" if isinstance(target, Blueprint) else describe(target)
