"""Django REST framework classes on ferrogate's Rust core.

Switch by changing settings only (DRF's throttle classes have drop-in equivalents of the same
names, so ``rest_framework.throttling.`` becomes ``ferrogate.drf.``)::

    REST_FRAMEWORK = {
        "DEFAULT_AUTHENTICATION_CLASSES": ["ferrogate.drf.JWTAuthentication"],
        "DEFAULT_THROTTLE_CLASSES": ["ferrogate.drf.AnonRateThrottle", "ferrogate.drf.UserRateThrottle"],
        "DEFAULT_THROTTLE_RATES": {"user": "1000/day", "anon": "100/day", "uploads": "10/hour"},
    }
"""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from ferrogate._native import RateLimiter
from ferrogate.django.users import TokenUser, UserRejected, load_user
from ferrogate.exceptions import ConfigError, InvalidTokenError, StoreUnavailableError

__all__ = [
    "AnonRateThrottle",
    "GateThrottle",
    "JWTAuthentication",
    "RevocationUnavailable",
    "ScopedRateThrottle",
    "TokenUser",
    "UserRateThrottle",
    "drf_rate_to_quota",
]


class RevocationUnavailable(exceptions.APIException):
    """503: the token's revocation status cannot be checked (Redis down, ``on_error = "deny"``)."""

    status_code = 503
    default_detail = "the token's revocation status cannot be checked right now"
    default_code = "revocation_unavailable"


class JWTAuthentication(BaseAuthentication):
    """Bearer tokens verified by the gate's own verifier (``settings.FERROGATE["jwt"]``), a drop-in
    for simplejwt's ``JWTAuthentication``: its token views can stay.

    ``request.auth`` is the claims dict, and ``request.jwt_claims`` the same dict. ``request.user``
    comes from ``FERROGATE_USER_LOADER`` or is a :class:`TokenUser`; a token without a user id
    (``FERROGATE_USER_ID_CLAIM``), for a user that does not exist or is inactive, is a 401 with
    simplejwt's codes. Refresh tokens are refused (``token_type``). When ``GateMiddleware`` already
    verified the token, it is not checked again.
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
        django_request = getattr(request, "_request", request)
        # The user GateMiddleware loaded for these very claims, else a load of our own.
        user = (
            getattr(django_request, "_ferrogate_user", None)
            if claims is meta.get("ferrogate.claims")
            else None
        )
        try:
            if user is None:
                user = load_user(claims)
        except UserRejected as e:
            # The body names the reason as simplejwt's does: {"detail": ..., "code": ...}.
            raise exceptions.AuthenticationFailed({"detail": e.detail, "code": e.code}, code=e.code) from None
        # One answer to "whose token is this" on the request, whichever layer verified it.
        django_request.jwt_claims = claims
        return user, claims

    def authenticate_header(self, request: Any) -> str:
        from ferrogate.django import state

        realm = (state.gate_config().get("jwt") or {}).get("realm", "api")
        return f'Bearer realm="{realm}"'


_PERIODS = {"s": "second", "m": "minute", "h": "hour", "d": "day"}
_limiters: dict[tuple[str, str | None, str, str], RateLimiter] = {}
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


def _store() -> tuple[str | None, str, str, dict[str, Any] | None]:
    """``(store, key prefix or host file, on_error, redis)`` from ``settings.FERROGATE``: throttles
    count where the gate's rate limits do, so every worker process shares them. ``store`` is None
    (memory), ``"host"`` (the second item is then the file, ``""`` for the default) or a Redis URL;
    ``redis`` is then the gate's ``[redis]`` table (TLS files, timeouts, breaker), so the throttles
    reach Redis as the gate's limits do."""
    from ferrogate.django import state

    config = state.gate_config()
    rl = config.get("rate_limit") or {}
    redis = config.get("redis") or {}
    storage = rl.get("storage", "memory")
    on_error = str(rl.get("on_error", "local"))
    prefix = str(redis.get("prefix", "ferrogate:"))
    if storage == "memory":
        return None, prefix, on_error, None
    if storage == "host":
        return _HOST, str(rl.get("host_path") or ""), on_error, None
    url = storage if isinstance(storage, str) and "://" in storage else redis.get("url")
    if not url:
        return None, prefix, on_error, None
    return str(url), prefix, on_error, dict(redis)


def _limiter(
    rate: str, url: str | None = None, prefix: str = "ferrogate:", redis: dict[str, Any] | None = None
) -> RateLimiter:
    key = (rate, url, prefix, "" if redis is None else json.dumps(redis, sort_keys=True, default=str))
    limiter = _limiters.get(key)
    if limiter is None:
        quota = drf_rate_to_quota(rate)
        if url is None:
            made = RateLimiter(quota)
        elif url == _HOST:
            made = RateLimiter(quota, storage="host", name="drf", path=prefix or None)
        else:
            made = RateLimiter(quota, storage=url, name="drf", prefix=prefix, redis=redis)
        limiter = _limiters.setdefault(key, made)
    return limiter


def _local_limiter(rate: str) -> RateLimiter:
    """The stand-in while Redis is away: the rate divided by the worker processes sharing it."""
    from ferrogate.ratelimit import detect_worker_processes

    found = detect_worker_processes()
    workers = found[1] if found else 1
    num, _, period = drf_rate_to_quota(rate).partition("/")
    return _limiter(f"{max(1, int(num) // max(1, workers))}/{period[0]}")


class _RateThrottle(BaseThrottle):
    """A DRF rate throttle on the Rust GCRA limiter, with DRF's semantics: ``scope`` names the rate
    in ``DEFAULT_THROTTLE_RATES`` (a scope without a rate is ``ImproperlyConfigured``, as in DRF),
    subclasses set their own ``scope`` (burst / sustained), and :meth:`get_cache_key` returns None
    for requests the throttle does not apply to.

    Keys: the user's pk when authenticated, else the client's address as the gate's limits read
    it (:meth:`get_ident`: ``REMOTE_ADDR`` unless ``FERROGATE["client_ip"]`` trusts a proxy, or
    DRF's reading when ``NUM_PROXIES`` is set). When ``FERROGATE["rate_limit"]["storage"]`` is
    ``"host"`` the counts are in the host-shared file (``host_path``, else the app's default
    file), shared by every worker on the host; when it is Redis, in Redis (shared by every host).
    If the store cannot answer, ``on_error`` decides: ``"allow"``, ``"deny"`` (throttled, retry
    in 1 s) or ``"local"`` (in memory, the rate divided by the workers).
    ``settings.FERROGATE_RATELIMIT_ENABLED = False`` turns every throttle off (tests).
    """

    scope: str | None = None
    #: A rate of the class's own (``"5/min"``), as DRF's ``rate`` attribute: it wins over the
    #: scope's entry in ``DEFAULT_THROTTLE_RATES``.
    rate: str | None = None

    def __init__(self) -> None:
        self._wait: float | None = None
        if not self.rate:
            if not self.scope:
                raise ImproperlyConfigured(
                    f"You must set either `.scope` or `.rate` for '{type(self).__name__}' throttle"
                )
            self.rate = self.get_rate(self.scope)

    @staticmethod
    def get_rate(scope: str) -> str | None:
        """The scope's rate; None (a rate set to None) throttles nothing, as in DRF."""
        try:
            rate = api_settings.DEFAULT_THROTTLE_RATES[scope]
        except KeyError:
            raise ImproperlyConfigured(f"No default throttle rate set for '{scope}' scope") from None
        return None if rate is None else str(rate)

    def get_ident(self, request: Any) -> str:
        """The client's address, as the gate's own limits key it: ``REMOTE_ADDR`` unless
        ``FERROGATE["client_ip"]`` trusts the proxy that sent the request, IPv6 by its /64.
        DRF's own ``get_ident`` reads ``X-Forwarded-For`` whenever ``NUM_PROXIES`` is unset, so
        a client sending a new address per request would get a new bucket each time; an explicit
        ``NUM_PROXIES`` is still DRF's to apply."""
        if api_settings.NUM_PROXIES is not None:
            return str(super().get_ident(request))
        from ferrogate.django import state

        ident = state.compiled().gate.client_ip(request.META)
        return ident if ident is not None else ""

    def ident_of(self, request: Any) -> str:
        user = getattr(request, "user", None)
        if user is not None and getattr(user, "is_authenticated", False):
            return f"user:{user.pk}"
        return f"ip:{self.get_ident(request)}"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        raise NotImplementedError

    def allow_request(self, request: Any, view: Any) -> bool:
        from ferrogate.django import state

        if not state.switch("FERROGATE_RATELIMIT_ENABLED"):
            return True
        rate = self.rate
        if rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        url, prefix, on_error, redis = _store()
        try:
            result = _limiter(rate, url, prefix, redis).hit(key)
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


class UserRateThrottle(_RateThrottle):
    """DRF's ``UserRateThrottle``: scope ``"user"``, keyed by the user, or the address when
    anonymous."""

    scope = "user"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        return f"{self.scope}:{self.ident_of(request)}"


class AnonRateThrottle(_RateThrottle):
    """DRF's ``AnonRateThrottle``: scope ``"anon"``, unauthenticated requests only, by address."""

    scope = "anon"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        user = getattr(request, "user", None)
        if user is not None and getattr(user, "is_authenticated", False):
            return None
        return f"{self.scope}:ip:{self.get_ident(request)}"


class ScopedRateThrottle(_RateThrottle):
    """DRF's ``ScopedRateThrottle``: the view's ``throttle_scope`` names the rate; a view without
    one is not throttled; a scope without a rate is ``ImproperlyConfigured``."""

    scope_attr = "throttle_scope"

    def __init__(self) -> None:
        # The scope comes from the view, in allow_request (as in DRF).
        self._wait = None

    def allow_request(self, request: Any, view: Any) -> bool:
        scope = getattr(view, self.scope_attr, None)
        if not scope:
            return True
        self.scope = scope
        self.rate = self.get_rate(scope)
        return super().allow_request(request, view)

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        return f"{self.scope}:{self.ident_of(request)}"


class GateThrottle(_RateThrottle):
    """User, anonymous and scoped throttling in one class: the view's ``throttle_scope`` (which
    must have a rate), else the class's ``scope``, else ``"user"`` for authenticated requests and
    ``"anon"`` otherwise — those two only when ``DEFAULT_THROTTLE_RATES`` has them."""

    def __init__(self) -> None:
        # The scope depends on the view and the user: chosen in allow_request.
        self._wait = None
        scope = type(self).scope
        if scope is not None and not type(self).rate:
            self.rate = self.get_rate(scope)

    def allow_request(self, request: Any, view: Any) -> bool:
        scope = getattr(view, "throttle_scope", None) or type(self).scope
        if scope is None:
            user = getattr(request, "user", None)
            fallback = "user" if user is not None and getattr(user, "is_authenticated", False) else "anon"
            if fallback not in api_settings.DEFAULT_THROTTLE_RATES:
                return True
            scope = fallback
        self.scope = scope
        self.rate = type(self).rate or self.get_rate(scope)
        return super().allow_request(request, view)

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        return f"{self.scope}:{self.ident_of(request)}"


def reset() -> None:
    """Forgets every in-memory throttle count (tests): the limiters are made afresh. Counts in
    Redis are shared with other processes and stay."""
    _limiters.clear()


def _forget_with_django_reset() -> None:
    from ferrogate.django import state

    state.count_resets.append(reset)


_forget_with_django_reset()
