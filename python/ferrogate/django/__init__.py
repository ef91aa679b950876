"""ferrogate for Django: ``GateMiddleware``, view decorators and system checks.

Add ``"ferrogate.django"`` to ``INSTALLED_APPS`` (for the system checks) and
``"ferrogate.django.GateMiddleware"`` near the top of ``MIDDLEWARE``; configure with the
``FERROGATE`` setting, a dict with the same schema as :class:`ferrogate.Gate` (without ``routes``:
routes come from the URLconf).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ferrogate.django.decorators import auth, cache, exempt, limit, policy

if TYPE_CHECKING:
    from ferrogate.django.middleware import GateMiddleware as GateMiddleware

__all__ = [
    "GateMiddleware",
    "auth",
    "cache",
    "create_access_token",
    "create_refresh_token",
    "exempt",
    "limit",
    "policy",
    "reset",
    "revoke_subject",
    "revoke_token",
    "verify_refresh_token",
]


def revoke_token(token_or_jti: str, *, exp: float | datetime | None = None) -> str:
    """Revokes a token (or a bare ``jti``) in every process sharing ``FERROGATE["redis"]``; see
    :meth:`ferrogate.Gate.revoke_token`. Needs ``FERROGATE["jwt"]["revocation"]``."""
    from ferrogate.django import state

    return state.compiled().gate.revoke_token(token_or_jti, exp=exp)


def revoke_subject(sub: str, *, before: float | datetime | None = None, issuer: str | None = None) -> float:
    """Revokes every token of ``sub`` (from ``issuer``) issued before ``before`` (default now); see
    :meth:`ferrogate.Gate.revoke_subject`."""
    from ferrogate.django import state

    return state.compiled().gate.revoke_subject(sub, before=before, issuer=issuer)


def create_access_token(
    identity: str | int,
    *,
    scopes: Iterable[str] | str | None = None,
    claims: Mapping[str, Any] | None = None,
    expires_in: float | None = None,
) -> str:
    """An access token the gate accepts, signed with ``FERROGATE_SIGNING_KEY`` (for HS*, the
    ``FERROGATE["jwt"]`` key); see :class:`ferrogate.tokens.TokenIssuer`."""
    from ferrogate.django import state

    return state.issuer().access_token(identity, scopes=scopes, claims=claims, expires_in=expires_in)


def create_refresh_token(
    identity: str | int, *, claims: Mapping[str, Any] | None = None, expires_in: float | None = None
) -> str:
    """A refresh token (``token_type = "refresh"``), refused by the gate as an access token."""
    from ferrogate.django import state

    return state.issuer().refresh_token(identity, claims=claims, expires_in=expires_in)


def verify_refresh_token(token: str) -> dict[str, Any]:
    """The claims of a valid refresh token; raises an ``InvalidTokenError`` subclass otherwise."""
    from ferrogate.django import state

    return state.issuer().verify_refresh_token(token)


def reset() -> None:
    """Starts over, for tests: the gate's in-memory limit counts and response cache, and the DRF
    throttles' in-memory counts (see :meth:`ferrogate.Gate.reset`)."""
    from ferrogate.django import state

    state.compiled().gate.reset()
    for forget in state.count_resets:
        forget()


def __getattr__(name: str) -> Any:
    # The middleware imports Django's request machinery; import it only when asked for, so that
    # `import ferrogate.django` in settings.py does not configure Django prematurely.
    if name == "GateMiddleware":
        from ferrogate.django.middleware import GateMiddleware

        return GateMiddleware
    raise AttributeError(name)
