"""Refusals handled the Flask way: handlers by ferrogate class, by status code, by werkzeug class, or
none at all — never a 500 — in both modes; and the on_refused hook."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from ferrogate import encode
from ferrogate.exceptions import AuthenticationRequired, GateRefused, RateLimited
from ferrogate.flask import FerroGate
from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException, TooManyRequests, Unauthorized

SECRET = "flask-errors-secret-long-enough-for-hs256"

MODES = [pytest.param(True, id="fast-path"), pytest.param(False, id="hook-mode")]


def make_app(fast_path: bool, **options: Any) -> tuple[Flask, FerroGate]:
    app = Flask(__name__)
    app.config["FERROGATE_JWT"] = {"algorithms": ["HS256"], "key": SECRET}
    gate = FerroGate(app, fast_path=fast_path, **options)

    @app.get("/me")
    @gate.auth()
    def me() -> Any:
        return {"me": True}

    @app.post("/login")
    @gate.limit("2/minute")
    def login() -> Any:
        return {"ok": True}

    @app.get("/admin")
    @gate.policy(access="deny")
    def admin() -> Any:
        return {"admin": True}

    return app, gate


def exhaust(client: Any) -> Any:
    for _ in range(2):
        assert client.post("/login").status_code == 200
    return client.post("/login")


@pytest.mark.parametrize("fast_path", MODES)
def test_a_handler_for_one_refusal_class_leaves_the_others_as_the_gate_answers(fast_path: bool) -> None:
    """The Flask-Limiter habit: one handler for 429. A missing token or a wrong method must stay
    a 401 / 405, never become a 500."""
    app, _ = make_app(fast_path)

    @app.errorhandler(RateLimited)
    def slow_down(e: RateLimited) -> Any:
        return jsonify(error="slow down", status=e.status), 429

    c = app.test_client()
    r = c.get("/me")
    assert r.status_code == 401
    assert r.mimetype == "application/problem+json"
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="api"'
    assert r.headers.getlist("WWW-Authenticate") == ['Bearer realm="api"']
    r = c.delete("/me")
    assert r.status_code == 405
    assert "GET" in r.headers["Allow"]
    assert c.get("/admin").status_code == 403
    r = exhaust(c)
    assert r.status_code == 429
    assert r.json == {"error": "slow down", "status": 429}
    assert int(r.headers["Retry-After"]) > 0
    assert "RateLimit" in r.headers or "RateLimit-Policy" in r.headers


@pytest.mark.parametrize("fast_path", MODES)
@pytest.mark.parametrize("key", [429, TooManyRequests, HTTPException])
def test_handlers_by_status_code_and_werkzeug_class(fast_path: bool, key: Any) -> None:
    app, _ = make_app(fast_path)
    seen: list[Any] = []

    @app.errorhandler(key)
    def handler(e: HTTPException) -> Any:
        seen.append(e)
        return {"code": e.code, "handled": True}, e.code or 500

    c = app.test_client()
    r = exhaust(c)
    assert r.status_code == 429
    assert r.json == {"code": 429, "handled": True}
    assert "Retry-After" in r.headers
    assert isinstance(seen[-1], RateLimited)
    assert isinstance(seen[-1], GateRefused)
    if key is not HTTPException:
        # A 429 handler does not see 401s: Flask renders the gate's own answer.
        r = c.get("/me")
        assert r.status_code == 401
        assert r.mimetype == "application/problem+json"


@pytest.mark.parametrize("fast_path", MODES)
def test_a_401_handler_and_the_challenge(fast_path: bool) -> None:
    app, _ = make_app(fast_path)

    @app.errorhandler(401)
    def unauthorized(e: HTTPException) -> Any:
        assert isinstance(e, AuthenticationRequired)
        assert isinstance(e, Unauthorized)
        return {"login": "/login"}, 401

    r = app.test_client().get("/me", headers={"Authorization": "Bearer not-a-token"})
    assert r.status_code == 401
    assert r.json == {"login": "/login"}
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]


@pytest.mark.parametrize("fast_path", MODES)
def test_no_handler_at_all_is_the_gates_answer_and_head_has_no_body(fast_path: bool) -> None:
    app, _ = make_app(fast_path)
    c = app.test_client()
    r = c.head("/me")
    assert r.status_code == 401
    assert r.data == b""
    r = c.get("/me")
    assert r.json["status"] == 401
    ok = encode({"sub": "ann", "exp": time.time() + 60}, SECRET, "HS256")
    assert c.get("/me", headers={"Authorization": f"Bearer {ok}"}).json == {"me": True}


@pytest.mark.parametrize("fast_path", MODES)
def test_a_handler_that_sets_its_own_retry_after_keeps_it(fast_path: bool) -> None:
    app, _ = make_app(fast_path)

    @app.errorhandler(429)
    def handler(e: HTTPException) -> Any:
        return {"x": 1}, 429, {"Retry-After": "999"}

    r = exhaust(app.test_client())
    assert r.headers.getlist("Retry-After") == ["999"]


@pytest.mark.parametrize("fast_path", MODES)
def test_on_refused_sees_every_refusal_once_and_cannot_break_it(
    fast_path: bool, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[tuple[int, str]] = []

    def hook(decision: Any, environ: dict[str, Any]) -> None:
        seen.append((decision.status, environ["PATH_INFO"]))
        if environ["PATH_INFO"] == "/admin":
            raise RuntimeError("metrics backend down")

    app, _ = make_app(fast_path, on_refused=hook)
    c = app.test_client()
    assert c.get("/me").status_code == 401
    with caplog.at_level(logging.ERROR, logger="ferrogate"):
        assert c.get("/admin").status_code == 403
    assert "on_refused hook failed" in caplog.text
    exhaust(c)
    ok = encode({"sub": "ann", "exp": time.time() + 60}, SECRET, "HS256")
    c.get("/me", headers={"Authorization": f"Bearer {ok}"})
    assert seen == [(401, "/me"), (403, "/admin"), (429, "/login")]


def test_on_refused_must_be_callable() -> None:
    from ferrogate import ConfigError

    with pytest.raises(ConfigError, match="FERROGATE_ON_REFUSED"):
        make_app(True, on_refused="log")


@pytest.mark.parametrize("fast_path", MODES)
def test_a_cache_hit_is_not_a_refusal_for_error_handlers_or_on_refused(fast_path: bool) -> None:
    """The gate answers a cache hit (200, or 304 to a conditional request) before Flask runs, as it
    answers a refusal. A hit is no error: an app's ``HTTPException`` handler (the JSON-errors
    habit) must not replace the stored body with its error document, and ``on_refused`` (refusal
    metrics) must not count it."""
    seen: list[int] = []
    app, gate = make_app(fast_path, on_refused=lambda d, environ: seen.append(d.status))
    calls: list[int] = []

    @app.get("/items")
    @gate.cache(ttl=60, public=True)
    def items() -> Any:
        calls.append(1)
        return {"items": [1, 2, 3]}

    @app.errorhandler(HTTPException)
    def as_json(e: HTTPException) -> Any:
        return jsonify(error=e.name, code=e.code), e.code or 500

    c = app.test_client()
    first = c.get("/items")
    assert first.json == {"items": [1, 2, 3]}
    hit = c.get("/items")
    assert hit.status_code == 200
    assert "hit" in hit.headers["Cache-Status"]
    assert hit.json == {"items": [1, 2, 3]}
    assert c.head("/items").data == b""
    not_modified = c.get("/items", headers={"If-None-Match": hit.headers["ETag"]})
    assert not_modified.status_code == 304
    assert calls == [1]
    assert seen == []
    # Refusals still go to the handler and the hook.
    assert c.get("/me").json == {"error": "Unauthorized", "code": 401}
    assert seen == [401]
