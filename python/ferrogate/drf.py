"""Django REST framework classes on ferrogate's Rust core.

Switch by changing settings only::

    REST_FRAMEWORK = {
        "DEFAULT_AUTHENTICATION_CLASSES": ["ferrogate.drf.JWTAuthentication"],
        "DEFAULT_THROTTLE_CLASSES": ["ferrogate.drf.GateThrottle"],
        "DEFAULT_THROTTLE_RATES": {"user": "1000/day", "anon": "100/day", "uploads": "10/hour"},
    }
"""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from ferrogate._native import RateLimiter
from ferrogate.django.users import TokenUser, load_user
from ferrogate.exceptions import ConfigError, InvalidTokenError, StoreUnavailableError

__all__ = ["GateThrottle", "JWTAuthentication", "RevocationUnavailable", "TokenUser", "drf_rate_to_quota"]


class RevocationUnavailable(exceptions.APIException):
    """503: the token's revocation status cannot be checked (Redis down, ``on_error = "deny"``)."""

    status_code = 503
    default_detail = "the token's revocation status cannot be checked right now"
    default_code = "revocation_unavailable"


class JWTAuthentication(BaseAuthentication):
    """Bearer tokens verified by the gate's own verifier (``settings.FERROGATE["jwt"]``).

    ``request.auth`` is the claims dict; ``request.user`` comes from ``FERROGATE_USER_LOADER`` or is
    a :class:`TokenUser`. When ``GateMiddleware`` already verified the token, it is not checked again.
    """

    def authenticate(self, request: Any) -> tuple[Any, dict[str, Any]] | None:
        meta = request.META
        claims = meta.get("ferrogate.claims")
        if claims is None:
            header = meta.get("HTTP_AUTHORIZATION", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer":
                return None
            token = token.strip(" ")
            if not token:
                raise exceptions.AuthenticationFailed("empty bearer token", code="invalid_token")
            from ferrogate.django import state

            try:
                claims = state.compiled().gate.verify_token(token)
            except InvalidTokenError as e:
                raise exceptions.AuthenticationFailed(str(e), code="invalid_token") from None
            except StoreUnavailableError as e:
                # [jwt] revocation with on_error = "deny" and Redis unreachable: 503, as the gate.
                raise RevocationUnavailable(str(e)) from None
            except ConfigError as e:
                raise exceptions.AuthenticationFailed(
                    "authentication is not configured", code="invalid_token"
                ) from e
        return load_user(claims), claims

    def authenticate_header(self, request: Any) -> str:
        from ferrogate.django import state

        realm = (state.gate_config().get("jwt") or {}).get("realm", "api")
        return f'Bearer realm="{realm}"'


_PERIODS = {"s": "second", "m": "minute", "h": "hour", "d": "day"}
_limiters: dict[tuple[str, str | None, str], RateLimiter] = {}
#: ``url`` of :func:`_store` for the host-shared file (``storage = "host"``).
_HOST = "host"


def drf_rate_to_quota(rate: str) -> str:
    """DRF's ``"100/day"``, ``"5/min"``, ``"10/s"`` as a ferrogate quota (DRF reads only the
    period's first letter)."""
    try:
        num, period = rate.split("/")
        count = int(num)
        unit = _PERIODS[period.strip()[0].lower()]
    except (ValueError, KeyError, IndexError):
        raise ConfigError(f"invalid DRF throttle rate {rate!r}", [("DEFAULT_THROTTLE_RATES", rate)]) from None
    return f"{count}/{unit}"


def _store() -> tuple[str | None, str, str]:
    """``(store, key prefix or host file, on_error)`` from ``settings.FERROGATE``: throttles count
    where the gate's rate limits do, so every worker process shares them. ``store`` is None (memory),
    ``"host"`` (the second item is then the file, ``""`` for the default) or a Redis URL."""
    from ferrogate.django import state

    config = state.gate_config()
    rl = config.get("rate_limit") or {}
    redis = config.get("redis") or {}
    storage = rl.get("storage", "memory")
    on_error = str(rl.get("on_error", "local"))
    prefix = str(redis.get("prefix", "ferrogate:"))
    if storage == "memory":
        return None, prefix, on_error
    if storage == "host":
        return _HOST, str(rl.get("host_path") or ""), on_error
    url = storage if isinstance(storage, str) and "://" in storage else redis.get("url")
    return (str(url) if url else None), prefix, on_error


def _limiter(rate: str, url: str | None = None, prefix: str = "ferrogate:") -> RateLimiter:
    key = (rate, url, prefix)
    limiter = _limiters.get(key)
    if limiter is None:
        quota = drf_rate_to_quota(rate)
        if url is None:
            made = RateLimiter(quota)
        elif url == _HOST:
            made = RateLimiter(quota, storage="host", name="drf", path=prefix or None)
        else:
            made = RateLimiter(quota, storage=url, name="drf", prefix=prefix)
        limiter = _limiters.setdefault(key, made)
    return limiter


def _local_limiter(rate: str) -> RateLimiter:
    """The stand-in while Redis is away: the rate divided by the worker processes sharing it."""
    from ferrogate.ratelimit import detect_worker_processes

    found = detect_worker_processes()
    workers = found[1] if found else 1
    num, _, period = drf_rate_to_quota(rate).partition("/")
    return _limiter(f"{max(1, int(num) // max(1, workers))}/{period[0]}")


class GateThrottle(BaseThrottle):
    """A DRF throttle on the Rust GCRA limiter.

    The scope is the view's ``throttle_scope`` or the class's ``scope``; without either, ``"user"``
    for authenticated requests and ``"anon"`` otherwise (DRF's User/AnonRateThrottle pair in one).
    The rate comes from ``DEFAULT_THROTTLE_RATES[scope]``; a scope without a rate is not throttled.
    Keys: the user's pk (or token subject) when authenticated, else DRF's ``get_ident`` (which
    honours ``NUM_PROXIES``). When ``FERROGATE["rate_limit"]["storage"]`` is ``"host"`` the counts
    are in the host-shared file (``host_path``, else the app's default file), shared by every worker
    on the host; when it is Redis, in Redis (shared by every host). If the store cannot answer,
    ``on_error`` decides: ``"allow"``, ``"deny"`` (throttled, retry in 1 s) or ``"local"`` (in
    memory, the rate divided by the workers).
    """

    scope: str | None = None

    def __init__(self) -> None:
        self._wait: float | None = None

    def allow_request(self, request: Any, view: Any) -> bool:
        user = getattr(request, "user", None)
        authenticated = bool(user is not None and getattr(user, "is_authenticated", False))
        scope = getattr(view, "throttle_scope", None) or self.scope or ("user" if authenticated else "anon")
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(scope)
        if rate is None:
            return True
        ident = f"user:{user.pk}" if authenticated and user is not None else f"ip:{self.get_ident(request)}"
        url, prefix, on_error = _store()
        key = f"{scope}:{ident}"
        try:
            result = _limiter(rate, url, prefix).hit(key)
        except StoreUnavailableError:
            # The gate's on_error, as DRF can express it: a throttle can only allow or refuse.
            if on_error == "allow":
                return True
            if on_error == "deny":
                self._wait = 1.0
                return False
            result = _local_limiter(rate).hit(key)
        self._wait = None if result.allowed else result.retry_after
        return bool(result.allowed)

    def wait(self) -> float | None:
        return self._wait
