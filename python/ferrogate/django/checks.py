"""System checks (``manage.py check``), ids ``ferrogate.E001`` ..."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

from ferrogate.exceptions import ConfigError

__all__ = ["check_config", "check_middleware", "register"]

_MIDDLEWARE = "ferrogate.django.GateMiddleware"
_MIDDLEWARE_ALIASES = (_MIDDLEWARE, "ferrogate.django.middleware.GateMiddleware")
# Middleware that does per-request work (sessions, database, CSRF, messages) the gate can spare a
# refused request when it runs first.
_COSTLY = (
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
)


def check_config(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """E001: ``settings.FERROGATE`` (with the URLconf's routes) builds a valid gate."""
    from ferrogate.django import state

    state.reset()
    try:
        state.compiled()
    except ConfigError as e:
        return [
            checks.Error(
                f"invalid ferrogate config: {key or '<root>'}: {message}",
                hint="Fix settings.FERROGATE or the view decorator named here.",
                obj="settings.FERROGATE",
                id="ferrogate.E001",
            )
            for key, message in (e.issues or [("", str(e))])
        ]
    return []


def check_middleware(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """E002: the middleware is installed. W001: it runs after middleware that costs per request."""
    middleware = list(getattr(settings, "MIDDLEWARE", None) or [])
    positions = [i for i, m in enumerate(middleware) if m in _MIDDLEWARE_ALIASES]
    if not positions:
        return [
            checks.Error(
                f"{_MIDDLEWARE} is not in MIDDLEWARE, so no request is checked",
                hint=f"Add '{_MIDDLEWARE}' near the top of MIDDLEWARE, after SecurityMiddleware.",
                id="ferrogate.E002",
            )
        ]
    before = [m for m in middleware[: positions[0]] if m in _COSTLY]
    if before:
        return [
            checks.Warning(
                f"{_MIDDLEWARE} runs after {', '.join(before)}: refused requests still pay for them",
                hint=f"Move '{_MIDDLEWARE}' above them.",
                id="ferrogate.W001",
            )
        ]
    return []


def check_limiter_workers(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """W002 (deploy): in-memory rate limits under several worker processes count per worker."""
    from ferrogate.django import state
    from ferrogate.ratelimit import detect_worker_processes

    try:
        limiters = state.compiled().gate.memory_rate_limiters
    except ConfigError:
        return []  # E001 reports it
    detected = detect_worker_processes()
    if limiters and detected is not None and detected[1] > 1:
        server, workers = detected
        return [
            checks.Warning(
                f"{limiters} rate limit(s) count in process memory under {workers} {server} worker processes: "
                f"each worker counts alone, so clients get up to {workers}x the quota",
                hint='Set FERROGATE["rate_limit"]["storage"] = "host" (one count for this host\'s workers, '
                "no server), a Redis URL when several hosts serve the app, or run one worker process.",
                id="ferrogate.W002",
            )
        ]
    return []


def check_redis(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """W003 (deploy): the configured Redis does not answer a PING. A warning, not an error: the
    gate runs through an outage with each limit's ``on_error``, and Redis may start later."""
    from ferrogate.django import state
    from ferrogate.exceptions import StoreUnavailableError

    try:
        gate = state.compiled().gate
    except ConfigError:
        return []  # E001 reports it
    stats = gate.redis_stats()
    if stats is None:
        return []
    try:
        gate.ping_redis()
    except StoreUnavailableError as e:
        return [
            checks.Warning(
                f"Redis at {stats['url']} does not answer: {e}",
                hint="Requests will get each limit's on_error mode until it does.",
                id="ferrogate.W003",
            )
        ]
    return []


def register() -> None:
    checks.register(check_config, "ferrogate")
    checks.register(check_middleware, "ferrogate")
    checks.register(check_limiter_workers, "ferrogate", deploy=True)
    checks.register(check_redis, "ferrogate", deploy=True)
