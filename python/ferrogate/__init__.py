"""ferrogate: a fast in-process API gateway for Flask, Django and any WSGI app.

Route policies, bearer-token authentication, rate limits and response caching, decided in one
Rust call per request.
"""

from __future__ import annotations

from ferrogate._native import Decision, RateLimiter, RateLimitResult, Router
from ferrogate._native import __version__ as __version__
from ferrogate.exceptions import ConfigError, FerroGateError, InMemoryRateLimitWarning, InvalidPathError
from ferrogate.gate import Gate

__all__ = [
    "ConfigError",
    "Decision",
    "FerroGateError",
    "Gate",
    "InMemoryRateLimitWarning",
    "InvalidPathError",
    "RateLimitResult",
    "RateLimiter",
    "Router",
    "__version__",
]
