"""ferrogate's exceptions.

Names follow PyJWT where the meaning is the same, so ``except jwt.InvalidTokenError`` code ports by
changing the import. Every error ferrogate raises on purpose derives from :class:`FerroGateError`.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AuthenticationRequired",
    "BadRequest",
    "ConfigError",
    "DecodeError",
    "ExpiredSignatureError",
    "FerroGateError",
    "GateRefused",
    "ImmatureSignatureError",
    "InMemoryRateLimitWarning",
    "InvalidAlgorithmError",
    "InvalidAudienceError",
    "InvalidIssuerError",
    "InvalidKeyError",
    "InvalidPathError",
    "InvalidSignatureError",
    "InvalidTokenError",
    "MethodNotAllowed",
    "MissingRequiredClaimError",
    "PermissionDenied",
    "RateLimited",
    "RevokedTokenError",
    "ServiceUnavailable",
    "StoreUnavailableError",
]


class FerroGateError(Exception):
    """Base class of every ferrogate error."""


class ConfigError(FerroGateError, ValueError):
    """A config, quota, route or decorator argument is invalid.

    ``issues`` holds every problem found, as ``(key_path, message)`` pairs such as
    ``("routes[2].access", 'expected one of allow | deny, got "denny"')``.
    """

    def __init__(self, message: str, issues: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.issues: list[tuple[str, str]] = list(issues)

    def __reduce__(self) -> tuple[type[ConfigError], tuple[str, list[tuple[str, str]]]]:
        return (type(self), (str(self), self.issues))


class InvalidPathError(FerroGateError, ValueError):
    """A request path that cannot be matched safely (dot segments, control characters, bad escapes)."""


class GateRefused(FerroGateError):  # noqa: N818 - the name is public API, as werkzeug's NotFound
    """The gate refused a request. Inside a Flask app the raised refusal is also werkzeug's
    ``HTTPException`` for its status (see :mod:`ferrogate.flask_refusals`), so handlers registered by
    this class, by status code or by ``HTTPException`` render it, and without a handler Flask sends
    the gate's own answer. The standard headers (``WWW-Authenticate``, ``Retry-After``,
    ``RateLimit``, ``Allow``) are added to whatever a handler returns, unless it set them.

    ``status``, ``headers`` (the gate's response headers) and ``problem`` (the RFC 9457 document as
    a dict) describe the refusal.
    """

    status: int = 0

    def __init__(self, status: int, headers: Sequence[tuple[str, str]], problem: dict[str, object]) -> None:
        super().__init__(str(problem.get("detail") or problem.get("title") or f"refused with {status}"))
        self.status = status
        self.headers: list[tuple[str, str]] = list(headers)
        self.problem = problem

    @property
    def standard_headers(self) -> list[tuple[str, str]]:
        """The gate's headers minus the body's own (content-type, content-length)."""
        return [(k, v) for k, v in self.headers if k.lower() not in ("content-type", "content-length")]

    @staticmethod
    def class_for(status: int) -> type[GateRefused]:
        """The most specific subclass for a status."""
        return _REFUSALS.get(status, GateRefused)

    @staticmethod
    def for_status(
        status: int, headers: Sequence[tuple[str, str]], problem: dict[str, object]
    ) -> GateRefused:
        """An instance of the most specific subclass for a status."""
        return GateRefused.class_for(status)(status, headers, problem)


class BadRequest(GateRefused):
    """400: the request cannot be matched safely (dot segments, bad encoding)."""


class AuthenticationRequired(GateRefused):
    """401: no valid bearer token."""


class PermissionDenied(GateRefused):
    """403: the route is denied, or the token lacks a required scope or claim."""


class MethodNotAllowed(GateRefused):
    """405: the route does not accept this method."""


class RateLimited(GateRefused):
    """429: over quota."""


class ServiceUnavailable(GateRefused):
    """503: a limit set to fail closed (``on_error = "deny"``) could not reach its Redis store."""


_REFUSALS: dict[int, type[GateRefused]] = {
    400: BadRequest,
    401: AuthenticationRequired,
    403: PermissionDenied,
    405: MethodNotAllowed,
    429: RateLimited,
    503: ServiceUnavailable,
}


class StoreUnavailableError(FerroGateError, ConnectionError):
    """The shared store could not answer: Redis down, timing out, or its circuit breaker open; the
    host file (``storage="host"``) failing, e.g. on a full file system.

    Raised only by direct calls: ``RateLimiter.hit`` on Redis or host storage, and ``revoke_token`` /
    ``revoke_subject`` (a revocation Redis did not record still applies in the process that made
    it). Requests through a gate never see it: each stage applies its configured failure mode.
    """


class OpaqueLayerWarning(RuntimeWarning):
    """A WSGI layer wrapped around ``app.wsgi_app`` before ``init_app`` that ferrogate cannot see
    inside: paths it answers itself get the policy of the Flask rule that matches them."""


class InMemoryRateLimitWarning(RuntimeWarning):
    """In-memory rate limits under a server with several worker processes: each counts alone.
    ``storage = "host"`` shares one count between the host's workers."""


# -- tokens (names as in PyJWT) -------------------------------------------------------------------


class InvalidTokenError(FerroGateError):
    """A token was refused. Every error ``JWTVerifier.verify`` raises is one of these."""


class DecodeError(InvalidTokenError):
    """The token is not a well-formed JWS/JWT: segments, base64url, JSON, header or claim types."""


class InvalidSignatureError(DecodeError):
    """The signature does not verify (or no key could check it, e.g. an unknown ``kid``)."""


class ExpiredSignatureError(InvalidTokenError):
    """``exp`` has passed (the token is invalid at exactly ``exp``, plus any leeway)."""


class ImmatureSignatureError(InvalidTokenError):
    """``nbf`` is in the future, or ``iat`` is."""


class InvalidAudienceError(InvalidTokenError):
    """``aud`` does not name this service, has the wrong type, or is present when none is expected."""


class InvalidIssuerError(InvalidTokenError):
    """``iss`` is not an accepted issuer, or not a string."""


class MissingRequiredClaimError(InvalidTokenError):
    """A required claim is missing; ``claim`` names it."""

    def __init__(self, message: str, claim: str = "") -> None:
        super().__init__(message)
        self.claim = claim

    def __reduce__(self) -> tuple[type[MissingRequiredClaimError], tuple[str, str]]:
        return (type(self), (str(self), self.claim))


class RevokedTokenError(InvalidTokenError):
    """The token was revoked: its ``jti`` is on the revocation list, or every token of its ``sub``
    issued before some instant was revoked (``Gate.revoke_token`` / ``Gate.revoke_subject``)."""


class InvalidAlgorithmError(InvalidTokenError):
    """The token's ``alg`` is not allowed (``none`` never is) or does not fit the key."""


class InvalidKeyError(FerroGateError, ValueError):
    """A key given to ``JWTVerifier`` or ``encode`` is unusable (wrong type for the algorithm,
    malformed PEM/JWK, a public key used as an HMAC secret...)."""
