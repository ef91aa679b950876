"""ferrogate for Django: ``GateMiddleware``, view decorators and system checks.

Add ``"ferrogate.django"`` to ``INSTALLED_APPS`` (for the system checks) and
``"ferrogate.django.GateMiddleware"`` near the top of ``MIDDLEWARE``; configure with the
``FERROGATE`` setting, a dict with the same schema as :class:`ferrogate.Gate` (without ``routes``:
routes come from the URLconf).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from ferrogate.django.decorators import auth, cache, exempt, limit, policy

if TYPE_CHECKING:
    from ferrogate.django.middleware import GateMiddleware as GateMiddleware

__all__ = ["GateMiddleware", "auth", "cache", "exempt", "limit", "policy", "revoke_subject", "revoke_token"]


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


def __getattr__(name: str) -> Any:
    # The middleware imports Django's request machinery; import it only when asked for, so that
    # `import ferrogate.django` in settings.py does not configure Django prematurely.
    if name == "GateMiddleware":
        from ferrogate.django.middleware import GateMiddleware

        return GateMiddleware
    raise AttributeError(name)
