"""WSGI apps for the load test: the example Flask API without and with the FerroGate extension.

Each variant is a module attribute gunicorn can serve (``apps:bare``, ``apps:gated``).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from ferrogate import InMemoryRateLimitWarning, encode

_EXAMPLE = Path(__file__).resolve().parents[2] / "python" / "ferrogate" / "examples" / "flask_api" / "app.py"


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("flask_api_example", _EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Two workers counting in memory is what the in-memory variants measure: no warning per worker.
warnings.filterwarnings("ignore", category=InMemoryRateLimitWarning)
logging.getLogger("ferrogate").setLevel(logging.ERROR)

_module = _example()
# The example's limits are per minute; the load test measures cost, not refusals.
_module.CONFIG["FERROGATE_DEFAULTS"] = {"limit": "1000000000/hour"}
# Set by run.py for the Redis variants: the limits count in Redis (optionally batched).
if os.environ.get("FG_LOAD_REDIS"):
    _module.CONFIG["FERROGATE_REDIS"] = {"url": os.environ["FG_LOAD_REDIS"]}
    _module.CONFIG["FERROGATE_RATE_LIMIT"] = {
        "storage": "redis",
        "batch": int(os.environ.get("FG_LOAD_BATCH", "0")),
    }

# Set by run.py for the host variants: the limits count in one file shared by the workers.
if os.environ.get("FG_LOAD_HOST"):
    _module.CONFIG["FERROGATE_RATE_LIMIT"] = {"storage": "host", "host_path": os.environ["FG_LOAD_HOST"]}

bare = _module.create_app(protected=False)
gated = _module.create_app()

TOKEN = encode(
    {"sub": "load", "scope": "articles:read", "exp": time.time() + 86400}, _module.DEMO_SECRET, "HS256"
)


def ceiling(environ: dict[str, object], start_response: Callable[..., object]) -> list[bytes]:
    """The fastest app gunicorn can serve: two constant bytes. Its req/s is the server's own
    ceiling on this machine, which no app (cached or not) behind it can pass."""
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "2")])
    return [b"{}"]
