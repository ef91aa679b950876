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

__all__ = ["run_demo"]

# The example apps ship inside the package, so the demo runs the same from a wheel as from a checkout.
_EXAMPLES = Path(__file__).resolve().parent / "examples"
_DEFAULT_APP = _EXAMPLES / "flask_api" / "app.py"
_DJANGO_PROJECT = _EXAMPLES / "django_api"


@dataclass(frozen=True)
class Step:
    method: str
    path: str
    expect: int
    why: str
    body: dict[str, Any] | None = None
    token: str | None = None
    repeat: int = 1


def _tokens(secret: str) -> dict[str, str]:
    import time

    from ferrogate._native import encode

    now = int(time.time())
    return {
        "reader": encode(
            {"sub": "ann", "scope": "articles:read", "iat": now, "exp": now + 600}, secret, "HS256"
        ),
        "writer": encode(
            {"sub": "bob", "scope": "articles:read articles:write", "iat": now, "exp": now + 600},
            secret,
            "HS256",
        ),
        "expired": encode(
            {"sub": "bob", "scope": "articles:write", "iat": now - 900, "exp": now - 300}, secret, "HS256"
        ),
    }


STEPS = [
    Step("GET", "/health", 200, "@gate.exempt"),
    Step("GET", "/articles?page=1&per_page=2", 200, "public list, cached: miss, stored"),
    Step("GET", "/articles?page=1&per_page=2", 200, "the same: answered from Rust, Flask not called"),
    Step("POST", "/articles", 401, "writing needs a token", {"title": "Gatekeeping"}),
    Step(
        "POST", "/articles", 403, "a token without articles:write", {"title": "Gatekeeping"}, token="reader"
    ),
    Step("POST", "/articles", 201, "a writer's token", {"title": "Gatekeeping"}, token="writer"),
    Step("GET", "/articles?page=1&per_page=2", 200, "the POST invalidated /articles: miss again"),
    Step("GET", "/me", 200, "claims reach the view (current_claims)", token="reader"),
    Step("GET", "/me", 401, "an expired token", token="expired"),
    Step(
        "POST",
        "/articles",
        429,
        "5/minute per writer: the 5th more is refused",
        {"title": "More"},
        token="writer",
        repeat=5,
    ),
    Step("PATCH", "/articles/1", 405, "no PATCH route: Allow lists the methods"),
    Step("GET", "/admin/stats", 403, "blueprint policy: deny"),
    Step("GET", "//admin//stats", 308, "doubled slashes: Flask redirects to /admin/stats"),
    Step("GET", "/articles/../admin/stats", 400, "dot segments are refused"),
    Step("GET", "/nothing-here", 404, "no route: the app answers 404"),
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


def _request(port: int, step: Step, tokens: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        body = json.dumps(step.body).encode() if step.body is not None else None
        headers = {"content-type": "application/json"} if body is not None else {}
        if step.token is not None:
            headers["authorization"] = f"Bearer {tokens[step.token]}"
        conn.request(step.method, step.path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def _summary(status: int, headers: dict[str, str], body: bytes) -> str:
    if headers.get("content-type", "").startswith("application/problem+json"):
        detail = json.loads(body).get("detail", "")
        extra = ""
        if "allow" in headers:
            extra = f" (Allow: {headers['allow']})"
        elif "www-authenticate" in headers:
            error = headers["www-authenticate"].partition("error=")[2].split(",")[0]
            extra = f" ({error.strip(chr(34)) or 'no token'})"
        elif "retry-after" in headers:
            extra = f" (Retry-After: {headers['retry-after']})"
        return f"gate: {detail}{extra}"
    cache = headers.get("cache-status", "")
    if "hit" in cache:
        return f"gate cache: {cache.removeprefix('ferrogate; ')}"
    first_line = body.decode("utf-8", "replace").strip().splitlines()[:1]
    text = first_line[0] if first_line else ""
    return f"app: {text[:60]}"


def _serve_and_drive(title: str, app: Any, steps: list[Step], tokens: dict[str, str] | None = None) -> int:
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
            for _ in range(step.repeat):
                status, headers, body = _request(port, step, tokens or {})
            ms = (time.perf_counter() - t0) * 1000 / step.repeat
            ok = status == step.expect
            failures += not ok
            mark = "ok" if ok else f"EXPECTED {step.expect}"
            summary = _summary(status, headers, body)
            label = f"{step.method} {step.path}" + (f" ({step.token})" if step.token else "")
            label += f" x{step.repeat}" if step.repeat > 1 else ""
            rows.append((label, str(status), mark, f"{ms:.1f}", step.why, summary))
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
    failures = _serve_and_drive(
        "ferrogate demo: examples/flask_api with the FerroGate extension (auth, limits, cache)",
        module.create_app(),
        STEPS,
        _tokens(module.DEMO_SECRET),
    )
    if app_path is None and _DJANGO_PROJECT.exists():
        failures += _serve_and_drive(
            "examples/django_api (DRF) behind ferrogate.django's WSGI fast path", _django_app(), DJANGO_STEPS
        )
    return 1 if failures else 0
