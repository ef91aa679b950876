"""``python -m ferrogate demo``: the example Flask API behind the gate, driven by a scripted client.

The app runs on a free 127.0.0.1 port in a background thread; each scripted request prints a row
saying what was asked, what the gate did and why. The exit status is 0 only if every request got
the status the script expects, so the demo doubles as a smoke test of a fresh build.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from ferrogate.gate import Gate

__all__ = ["run_demo"]

_EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
_DEFAULT_APP = _EXAMPLES / "flask_api" / "app.py"
_DJANGO_PROJECT = _EXAMPLES / "django_api"


@dataclass(frozen=True)
class Step:
    method: str
    path: str
    expect: int
    why: str
    body: dict[str, Any] | None = None


STEPS = [
    Step("GET", "/health", 200, "open route"),
    Step("GET", "/articles?page=1&per_page=2", 200, "list, paginated"),
    Step("POST", "/articles", 201, "create", {"title": "Gatekeeping", "body": "in Rust"}),
    Step("GET", "/articles/1", 200, "read one"),
    Step("PATCH", "/articles/1", 405, "route declares GET, PUT, DELETE only"),
    Step("GET", "/admin/stats", 403, "route policy: deny"),
    Step("GET", "//admin//stats", 403, "doubled slashes cannot dodge the deny"),
    Step("GET", "/articles/../admin/stats", 400, "dot segments are refused"),
    Step("GET", "/nothing-here", 404, "unmatched: defaults allow, the app answers 404"),
]

DJANGO_STEPS = [
    Step("GET", "/health/", 200, "@exempt view"),
    Step("GET", "/articles/?page=1&per_page=2", 200, "DRF viewset list (router regex compiled)"),
    Step("POST", "/articles/", 201, "DRF create", {"title": "From Django"}),
    Step("GET", "/articles/2/", 200, "DRF retrieve"),
    Step("GET", "/admin/stats", 403, "@policy(access='deny') view, refused before Django"),
    Step("GET", "/articles/../admin/stats", 400, "dot segments are refused"),
]


def _load_app_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("ferrogate_demo_app", path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _request(port: int, step: Step) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        body = json.dumps(step.body).encode() if step.body is not None else None
        headers = {"content-type": "application/json"} if body is not None else {}
        conn.request(step.method, step.path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def _summary(status: int, headers: dict[str, str], body: bytes) -> str:
    if headers.get("content-type", "").startswith("application/problem+json"):
        detail = json.loads(body).get("detail", "")
        extra = f" (Allow: {headers['allow']})" if "allow" in headers else ""
        return f"gate: {detail}{extra}"
    first_line = body.decode("utf-8", "replace").strip().splitlines()[:1]
    text = first_line[0] if first_line else ""
    return f"app: {text[:60]}"


def _serve_and_drive(title: str, app: Any, steps: list[Step]) -> int:
    """Serves ``app`` on a free loopback port, runs ``steps`` against it and prints the table."""
    from werkzeug.serving import WSGIRequestHandler, make_server

    class QuietHandler(WSGIRequestHandler):
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            pass

    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
    port = server.server_port
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    print(f"\n{title} on http://127.0.0.1:{port}\n")
    rows = []
    failures = 0
    try:
        for step in steps:
            t0 = time.perf_counter()
            status, headers, body = _request(port, step)
            ms = (time.perf_counter() - t0) * 1000
            ok = status == step.expect
            failures += not ok
            mark = "ok" if ok else f"EXPECTED {step.expect}"
            summary = _summary(status, headers, body)
            rows.append((f"{step.method} {step.path}", str(status), mark, f"{ms:.1f}", step.why, summary))
    finally:
        server.shutdown()
        server.server_close()
    head = ("request", "status", "check", "ms", "why", "answered by")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, tuple("-" * w for w in widths), *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    print(f"\n{len(rows) - failures}/{len(rows)} requests behaved as expected")
    return failures


def _django_app() -> Any:
    import os
    import sys

    sys.path.insert(0, str(_DJANGO_PROJECT))
    # The demo owns its process: its project's settings, whatever the environment says.
    os.environ["DJANGO_SETTINGS_MODULE"] = "django_api.settings"
    import django

    django.setup()
    from django_api.wsgi import application  # type: ignore[import-not-found]

    return application


def run_demo(app_path: str | None = None) -> int:
    path = Path(app_path) if app_path else _DEFAULT_APP
    if not path.exists():
        print(f"demo app not found at {path}; pass --app PATH")
        return 2
    module = _load_app_module(path)
    gate = Gate(module.GATE_CONFIG)
    failures = _serve_and_drive(
        "ferrogate demo: examples/flask_api behind the gate", gate.wsgi(module.create_app()), STEPS
    )
    if app_path is None and _DJANGO_PROJECT.exists():
        failures += _serve_and_drive(
            "examples/django_api (DRF) behind ferrogate.django's WSGI fast path", _django_app(), DJANGO_STEPS
        )
    return 1 if failures else 0
