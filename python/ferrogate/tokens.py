"""Issuing tokens for the gate's own verifier: access and refresh tokens for a login endpoint.

ferrogate is not an identity provider. This is the small part an API that signs its users in
itself needs (what ``create_access_token`` is in Flask-JWT-Extended): tokens the gate's ``[jwt]``
config accepts, with a ``token_type`` claim the verifier enforces, so a refresh token is never
accepted as an access token.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ferrogate._native import JWTVerifier, encode
from ferrogate.exceptions import ConfigError

__all__ = ["RESERVED_CLAIMS", "TokenIssuer", "mint"]

#: Claims the issuer sets itself, or that the gate reads as grants; ``claims=`` may not set them
#: (``scp`` would grant scopes beside ``scope``; ``type`` is Flask-JWT-Extended's token type).
RESERVED_CLAIMS = frozenset({"sub", "iat", "nbf", "exp", "jti", "iss", "aud", "scope", "scp", "type"})

#: `[jwt]` keys the refresh-token verifier takes over from the gate's config.
_VERIFIER_KEYS = ("key", "keys", "jwks", "issuer", "audience", "leeway", "token_type_claim")


class TokenIssuer:
    """Signs access and refresh tokens that a verifier with ``jwt`` (a gate ``[jwt]`` table)
    accepts.

    ``signing_key`` is the HMAC secret (by default the config's ``key``) or, for RS*/PS*/ES*/
    EdDSA, the private key PEM. Tokens get ``sub``, ``iat``, ``exp``, a random ``jti`` (so one
    token can be revoked), ``iss``/``aud`` when the config names exactly one, and
    ``token_type`` (``"access"`` or ``"refresh"``).
    """

    def __init__(
        self,
        jwt: Mapping[str, Any],
        *,
        signing_key: str | bytes | None = None,
        access_ttl: float = 900.0,
        refresh_ttl: float = 30 * 86400.0,
        identity_claim: str = "sub",
        clock: Callable[[], float] = time.time,
    ) -> None:
        algorithms = jwt.get("algorithms")
        if (
            not isinstance(algorithms, list)
            or not algorithms
            or not all(isinstance(a, str) for a in algorithms)
        ):
            raise ConfigError("issuing tokens needs [jwt] algorithms", [("jwt.algorithms", "missing")])
        self.algorithm: str = algorithms[0]
        if signing_key is None:
            key = jwt.get("key")
            if not self.algorithm.startswith("HS") or not isinstance(key, str):
                raise ConfigError(
                    f"issuing {self.algorithm} tokens needs the private key: pass signing_key "
                    "(FERROGATE_SIGNING_KEY / settings.FERROGATE_SIGNING_KEY)",
                    [("signing_key", "missing")],
                )
            signing_key = key
        for name, ttl in (("access_ttl", access_ttl), ("refresh_ttl", refresh_ttl)):
            if not (isinstance(ttl, int | float) and 0 < ttl < float("inf")):
                raise ConfigError(f"{name} must be a positive number of seconds", [(name, repr(ttl))])
        self._key = signing_key
        self.access_ttl = float(access_ttl)
        self.refresh_ttl = float(refresh_ttl)
        self._clock = clock
        self._claim = str(jwt.get("token_type_claim") or "token_type")
        # The kind the gate accepts as an access token; with the check off (`token_type = false`)
        # a refresh token would pass as an access token, so none are issued.
        kind = jwt.get("token_type", "access")
        self._access_type: str | None = kind if isinstance(kind, str) and kind else None
        if kind is not False and self._access_type is None:
            raise ConfigError("[jwt] token_type must be a string or false", [("jwt.token_type", repr(kind))])
        #: The claim the app reads the user from (simplejwt's `user_id`): set beside `sub`.
        self._identity_claim = identity_claim
        self._issuer = _one(jwt.get("issuer"))
        self._audience = _one(jwt.get("audience"))
        options = {k: jwt[k] for k in _VERIFIER_KEYS if k in jwt}
        # Refresh tokens are checked by a verifier of their own: the gate's refuses them.
        self._refresh_verifier = JWTVerifier(
            list(algorithms),
            require_exp=True,
            token_type="refresh",
            token_type_required=True,
            cache_size=0,
            **options,
        )
        # Fail now, not at the first login, if the key cannot sign for this algorithm.
        encode({"probe": True}, signing_key, self.algorithm)

    def access_token(
        self,
        identity: str | int,
        *,
        scopes: Iterable[str] | str | None = None,
        claims: Mapping[str, Any] | None = None,
        expires_in: float | None = None,
    ) -> str:
        """An access token for ``identity`` (the ``sub``), with ``scopes`` (the ``scope`` claim)
        and extra ``claims``."""
        kind = self._access_type or "access"
        body = self._body(identity, claims, self.access_ttl if expires_in is None else expires_in, kind)
        if scopes is not None:
            listed = scopes.split() if isinstance(scopes, str) else list(scopes)
            if any(not isinstance(s, str) or not s or " " in s for s in listed):
                raise ValueError(f"scopes are non-empty strings without spaces, got {listed!r}")
            body["scope"] = " ".join(listed)
        return encode(body, self._key, self.algorithm)

    def refresh_token(
        self, identity: str | int, *, claims: Mapping[str, Any] | None = None, expires_in: float | None = None
    ) -> str:
        """A refresh token for ``identity``: accepted only by :meth:`verify_refresh_token`."""
        if self._access_type is None:
            raise ConfigError(
                "no refresh tokens while [jwt] token_type = false: the gate would accept them as access tokens",
                [("jwt.token_type", "false")],
            )
        body = self._body(identity, claims, self.refresh_ttl if expires_in is None else expires_in, "refresh")
        return encode(body, self._key, self.algorithm)

    def verify_refresh_token(self, token: str) -> dict[str, Any]:
        """The claims of a valid refresh token; raises an ``InvalidTokenError`` subclass otherwise
        (an access token is refused here as a refresh token is refused by the gate)."""
        return self._refresh_verifier.verify(token, now=self._clock())

    def _body(
        self, identity: str | int, claims: Mapping[str, Any] | None, ttl: float, kind: str
    ) -> dict[str, Any]:
        if isinstance(identity, bool) or not isinstance(identity, str | int) or identity == "":
            raise ValueError(f"identity must be a non-empty string or an int, got {identity!r}")
        if not (isinstance(ttl, int | float) and 0 < ttl < float("inf")):
            raise ValueError(f"expires_in must be a positive number of seconds, got {ttl!r}")
        extra = dict(claims or {})
        clash = sorted((RESERVED_CLAIMS | {self._claim, self._identity_claim}) & extra.keys())
        if clash:
            raise ValueError(f"claims may not set {', '.join(clash)}: the issuer sets them")
        now = int(self._clock())
        body: dict[str, Any] = {
            **extra,
            "sub": str(identity),
            "iat": now,
            "exp": now + max(1, round(ttl)),
            "jti": uuid.uuid4().hex,
            self._claim: kind,
        }
        if self._identity_claim != "sub":
            body[self._identity_claim] = identity
        if self._issuer is not None:
            body["iss"] = self._issuer
        if self._audience is not None:
            body["aud"] = self._audience
        return body


def _one(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and isinstance(value[0], str):
        return value[0]
    return None


def mint(
    key: str | bytes,
    algorithm: str,
    *,
    sub: str,
    scopes: list[str],
    ttl: float,
    claims: list[str],
    issuer: str | None = None,
    audience: str | None = None,
) -> str:
    """A development token: ``sub``, ``iat``, ``exp = now + ttl``, optional scope/iss/aud and
    ``name=value`` claims (values parsed as JSON when they parse, else kept as strings)."""
    now = int(time.time())
    body: dict[str, object] = {"sub": sub, "iat": now, "exp": now + int(ttl)}
    if scopes:
        body["scope"] = " ".join(scopes)
    if issuer:
        body["iss"] = issuer
    if audience:
        body["aud"] = audience
    for item in claims:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise ValueError(f"claims are name=value, got {item!r}")
        try:
            body[name] = json.loads(raw)
        except ValueError:
            body[name] = raw
    return encode(body, key, algorithm)
