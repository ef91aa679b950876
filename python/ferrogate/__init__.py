"""ferrogate: a fast in-process API gateway for Flask, Django and any WSGI app.

Route policies, bearer-token authentication, rate limits and response caching, decided in one
Rust call per request.
"""

from __future__ import annotations

from ferrogate._native import (
    Decision,
    JWTVerifier,
    RateLimiter,
    RateLimitResult,
    ResponseCache,
    Router,
    encode,
)
from ferrogate._native import __version__ as __version__
from ferrogate.exceptions import (
    ConfigError,
    DecodeError,
    ExpiredSignatureError,
    FerroGateError,
    ImmatureSignatureError,
    InMemoryRateLimitWarning,
    InvalidAlgorithmError,
    InvalidAudienceError,
    InvalidIssuerError,
    InvalidKeyError,
    InvalidPathError,
    InvalidSignatureError,
    InvalidTokenError,
    MissingRequiredClaimError,
    OpaqueLayerWarning,
    RevokedTokenError,
    StoreUnavailableError,
)
from ferrogate.gate import Gate
from ferrogate.memo import cached

__all__ = [
    "ConfigError",
    "Decision",
    "DecodeError",
    "ExpiredSignatureError",
    "FerroGateError",
    "Gate",
    "ImmatureSignatureError",
    "InMemoryRateLimitWarning",
    "InvalidAlgorithmError",
    "InvalidAudienceError",
    "InvalidIssuerError",
    "InvalidKeyError",
    "InvalidPathError",
    "InvalidSignatureError",
    "InvalidTokenError",
    "JWTVerifier",
    "MissingRequiredClaimError",
    "OpaqueLayerWarning",
    "RateLimitResult",
    "RateLimiter",
    "ResponseCache",
    "RevokedTokenError",
    "Router",
    "StoreUnavailableError",
    "__version__",
    "cached",
    "encode",
]
