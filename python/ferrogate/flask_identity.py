"""Who is calling, in a Flask view: the verified claims, the identity, the app's user object, and
issuing tokens for a login endpoint.

Names follow Flask-JWT-Extended and Flask-Login where the meaning is the same (``current_user``,
``create_access_token``, ``get_jwt_identity`` as :func:`get_identity`), so code ports by changing
imports. Everything reads the app's ``FerroGate`` state from ``current_app``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, Protocol, cast

from flask import current_app, has_request_context, request
from werkzeug.local import LocalProxy

from ferrogate.flask_refusals import invalid_token
from ferrogate.tokens import TokenIssuer

__all__ = [
    "create_access_token",
    "create_refresh_token",
    "current_claims",
    "current_user",
    "get_claims",
    "get_current_user",
    "get_identity",
    "verify_refresh_token",
]

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_UNSET = object()


class _IdentityState(Protocol):
    """What this module needs of the extension's per-app state."""

    identity_claim: str
    realm: str

    def load_user(self, identity: str, claims: Mapping[str, Any]) -> Any: ...

    def issuer(self) -> TokenIssuer: ...


def _state() -> _IdentityState:
    try:
        return cast(_IdentityState, current_app.extensions["ferrogate"])
    except KeyError:
        raise RuntimeError("ferrogate is not initialised on this app: call FerroGate(app)") from None


def get_claims() -> Mapping[str, Any] | None:
    """The verified claims of the current request's token; None without one (or outside a
    request)."""
    if not has_request_context():
        return None
    claims = request.environ.get("ferrogate.claims")
    return cast(Mapping[str, Any] | None, claims)


def get_identity() -> str | None:
    """The token's identity claim (``sub`` unless ``FERROGATE_IDENTITY_CLAIM`` says otherwise);
    None without a token or when the token has no such claim."""
    claims = get_claims()
    if claims is None:
        return None
    value = claims.get(_state().identity_claim)
    return None if value is None else str(value)


def get_current_user() -> Any:
    """The app's user for the current token, from the ``@gate.user_loader`` callback, loaded once
    per request; None without a token. A token whose user the loader cannot find (deleted,
    disabled) is refused with 401 ``invalid_token``: a view never runs for a user who is gone."""
    if not has_request_context():
        return None
    environ = request.environ
    cached = environ.get("ferrogate.user", _UNSET)
    if cached is not _UNSET:
        return cached
    claims = get_claims()
    user = None
    if claims is not None:
        state = _state()
        identity = claims.get(state.identity_claim)
        if identity is not None:
            user = state.load_user(str(identity), claims)
        if user is None:
            raise invalid_token(state.realm, "the token's user does not exist or is disabled")
    environ["ferrogate.user"] = user
    return user


#: The verified claims of the current request: a read-only mapping, empty without a token, so
#: ``current_claims.get("sub")`` is None-safe. Use :func:`get_claims` to tell "no token" apart.
current_claims: Mapping[str, Any] = cast(Mapping[str, Any], LocalProxy(lambda: get_claims() or _EMPTY))

#: The app's user for the current token (see :func:`get_current_user`); falsy without a token.
current_user: Any = LocalProxy(get_current_user)


def create_access_token(
    identity: str | int,
    *,
    scopes: Iterable[str] | str | None = None,
    claims: Mapping[str, Any] | None = None,
    expires_in: float | None = None,
) -> str:
    """An access token the app's gate accepts (see :meth:`ferrogate.tokens.TokenIssuer.access_token`).
    Signed with ``FERROGATE_SIGNING_KEY``, or the HMAC ``key`` of ``FERROGATE_JWT``; lifetime
    ``FERROGATE_ACCESS_TOKEN_EXPIRES`` seconds unless ``expires_in`` is given."""
    return _state().issuer().access_token(identity, scopes=scopes, claims=claims, expires_in=expires_in)


def create_refresh_token(
    identity: str | int, *, claims: Mapping[str, Any] | None = None, expires_in: float | None = None
) -> str:
    """A refresh token (``token_type = "refresh"``): the gate refuses it as an access token; a
    refresh endpoint checks it with :func:`verify_refresh_token`."""
    return _state().issuer().refresh_token(identity, claims=claims, expires_in=expires_in)


def verify_refresh_token(token: str) -> dict[str, Any]:
    """The claims of a valid refresh token; raises an ``InvalidTokenError`` subclass otherwise."""
    return _state().issuer().verify_refresh_token(token)
