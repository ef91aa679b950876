"""WSGI apps for the load test: the example Flask API bare and behind the gate.

Each variant is a module attribute gunicorn can serve (``apps:bare``, ``apps:gated``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

from ferrogate import Gate

_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flask_api" / "app.py"
# Never refuses during a run: the load test measures cost, not refusals.
BIG_QUOTA = "1000000000/hour"


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("flask_api_example", _EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_module = _example()


def _gate_config(**route_policy: Any) -> dict[str, Any]:
    config: dict[str, Any] = dict(_module.GATE_CONFIG)
    config["routes"] = [{**r, **route_policy} if r.get("name") == "article" else r for r in config["routes"]]
    return config


bare = _module.create_app()
gated = Gate(_gate_config()).wsgi(_module.create_app())
gated_limited = Gate(_gate_config(limit=BIG_QUOTA)).wsgi(_module.create_app())
