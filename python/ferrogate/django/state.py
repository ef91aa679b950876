"""The compiled gate for the current settings and URLconf, built lazily and rebuilt when
``FERROGATE`` or ``ROOT_URLCONF`` change (``override_settings`` in tests)."""

from __future__ import annotations

import threading
from collections.abc import Hashable, Mapping
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.urls import clear_url_caches, get_resolver

from ferrogate._adapter import Compiled, compile_routes, merge_named_limits
from ferrogate.exceptions import ConfigError

__all__ = ["compiled", "connect_signals", "gate_config", "reset", "user_loader_set"]

_lock = threading.Lock()
_compiled: Compiled | None = None


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
                _compiled = compile_routes(gate_config(), _candidates(), "the Django URLconf", _resolve)
            current = _compiled
    return current


def _candidates() -> list[Any]:
    from ferrogate.django.urls import candidates

    return candidates(get_resolver().url_patterns)


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
    global _compiled, _user_loader
    with _lock:
        _compiled = None
        _user_loader = None


def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in ("FERROGATE", "ROOT_URLCONF"):
        clear_url_caches()
        reset()
    elif setting == "FERROGATE_USER_LOADER":
        global _user_loader
        _user_loader = None


def connect_signals() -> None:
    setting_changed.connect(_on_setting_changed, dispatch_uid="ferrogate-setting-changed")
