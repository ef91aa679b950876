"""The compiled gate for the current settings and URLconf, built lazily and rebuilt when
``FERROGATE`` or ``ROOT_URLCONF`` change (``override_settings`` in tests)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.urls import clear_url_caches, get_resolver
from django.utils.module_loading import import_string

from ferrogate._adapter import Compiled, compile_routes, merge_named_limits
from ferrogate._native import Decision
from ferrogate.exceptions import ConfigError
from ferrogate.tokens import TokenIssuer

__all__ = [
    "check",
    "compiled",
    "connect_signals",
    "count_resets",
    "gate_config",
    "issuer",
    "on_refused",
    "reset",
    "switch",
    "user_loader_set",
]

_lock = threading.Lock()
_compiled: Compiled | None = None
_issuer: TokenIssuer | None = None
_on_refused: tuple[Callable[[Decision, Any], object] | None] | None = None

#: What :func:`ferrogate.django.reset` also forgets: the DRF throttles add their in-memory counts
#: when imported, so this package never imports ``ferrogate.drf`` (which imports it).
count_resets: list[Callable[[], None]] = []

#: Settings whose change rebuilds the gate (override_settings in tests).
_REBUILD = ("FERROGATE", "ROOT_URLCONF", "FERROGATE_RATELIMIT_ENABLED", "FERROGATE_CACHE_ENABLED")


def switch(name: str) -> bool:
    """A test-time switch: ``FERROGATE_RATELIMIT_ENABLED`` / ``FERROGATE_CACHE_ENABLED`` (default
    True), as Flask-Limiter's ``RATELIMIT_ENABLED`` and a ``DummyCache``."""
    return bool(getattr(settings, name, True))


def on_refused() -> Callable[[Decision, Any], object] | None:
    """``settings.FERROGATE_ON_REFUSED``: a callable or its dotted path, called as
    ``hook(decision, environ)`` for every refusal."""
    global _on_refused
    found = _on_refused
    if found is None:
        hook = getattr(settings, "FERROGATE_ON_REFUSED", None)
        if isinstance(hook, str):
            hook = import_string(hook)
        if hook is not None and not callable(hook):
            raise ConfigError(
                f"settings.FERROGATE_ON_REFUSED must be a callable or its dotted path, got {type(hook).__name__}",
                [("FERROGATE_ON_REFUSED", "expected a callable(decision, environ)")],
            )
        found = _on_refused = (hook,)
    return found[0]


def issuer() -> TokenIssuer:
    """The token issuer for ``FERROGATE["jwt"]``, signing with ``FERROGATE_SIGNING_KEY`` (for HS*,
    the config's key), lifetimes ``FERROGATE_ACCESS_TOKEN_EXPIRES`` / ``_REFRESH_`` (seconds)."""
    global _issuer
    found = _issuer
    if found is None:
        with _lock:
            if _issuer is None:
                _issuer = TokenIssuer(
                    gate_config().get("jwt") or {},
                    signing_key=getattr(settings, "FERROGATE_SIGNING_KEY", None),
                    access_ttl=getattr(settings, "FERROGATE_ACCESS_TOKEN_EXPIRES", 900),
                    refresh_ttl=getattr(settings, "FERROGATE_REFRESH_TOKEN_EXPIRES", 30 * 86400),
                    identity_claim=str(getattr(settings, "FERROGATE_USER_ID_CLAIM", "sub")),
                )
            found = _issuer
    return found


def gate_config() -> dict[str, Any]:
    """``settings.FERROGATE`` as a gate config without routes."""
    raw = getattr(settings, "FERROGATE", None) or {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"settings.FERROGATE must be a dict, got {type(raw).__name__}",
            [("FERROGATE", "expected a dict")],
        )
    if "routes" in raw:
        raise ConfigError(
            "settings.FERROGATE has no 'routes': routes come from the URLconf; set policies with the "
            "ferrogate.django decorators",
            [("FERROGATE.routes", "not allowed: routes come from the URLconf; set policies with decorators")],
        )
    config = dict(raw)
    from ferrogate.django.decorators import NAMED_LIMITS

    merge_named_limits(config, NAMED_LIMITS, "FERROGATE", "@limit")
    return config


def compiled() -> Compiled:
    global _compiled
    current = _compiled
    if current is None:
        with _lock:
            if _compiled is None:
                _compiled = compile_routes(
                    gate_config(),
                    _candidates(),
                    "the Django URLconf",
                    _resolve,
                    limits=switch("FERROGATE_RATELIMIT_ENABLED"),
                    cache=switch("FERROGATE_CACHE_ENABLED"),
                )
            current = _compiled
    return current


def _candidates() -> list[Any]:
    from ferrogate.django.urls import candidates

    return candidates(get_resolver().url_patterns)


def check(environ: dict[str, Any]) -> Decision:
    """The gate's early decision for a request. A path with a segment too long for Django's
    ``int`` converter is placed by Django's resolver first: the gate's ``digits`` shape has no
    length bound, so its router would count the request under an ``int`` route Django skips."""
    from ferrogate.django.urls import outruns_int

    gate = compiled()
    if outruns_int(environ.get("PATH_INFO", "")):
        return gate.gate.check_route(environ, gate.early_index(_resolve(gate, environ)))
    return gate.gate.check(environ)


def _resolve(_: Compiled, environ: Mapping[str, Any]) -> Hashable | None:
    """The route Django's resolver gives ``environ``'s path (its key), before Django runs."""
    from django.core.handlers.wsgi import get_path_info
    from django.urls import Resolver404, resolve

    from ferrogate.django.urls import fallback_key

    try:
        match = resolve(get_path_info(environ) or "/")
    except Resolver404:
        return None
    return fallback_key(match.route, match.func)


_user_loader: bool | None = None


def user_loader_set() -> bool:
    """Whether ``settings.FERROGATE_USER_LOADER`` is set (read once per settings change: a lazy
    settings lookup on every request costs more than the rest of the middleware's Python)."""
    global _user_loader
    found = _user_loader
    if found is None:
        found = _user_loader = bool(getattr(settings, "FERROGATE_USER_LOADER", None))
    return found


def reset(**_: Any) -> None:
    global _compiled, _user_loader, _issuer, _on_refused
    with _lock:
        _compiled = None
        _user_loader = None
        _issuer = None
        _on_refused = None


def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    global _user_loader, _issuer, _on_refused
    if setting in _REBUILD:
        clear_url_caches()
        reset()
    elif setting.startswith("FERROGATE_"):
        # The user loader, the hook, the issuer's key and lifetimes: read again on next use.
        _user_loader = None
        _issuer = None
        _on_refused = None


def connect_signals() -> None:
    setting_changed.connect(_on_setting_changed, dispatch_uid="ferrogate-setting-changed")
