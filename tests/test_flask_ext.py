"""ferrogate.flask.FerroGate with real Flask apps, on the fast path and in hook mode."""

from __future__ import annotations

import collections
import time
from collections.abc import Iterator
from typing import Any

import pytest
from ferrogate import ConfigError, encode
from ferrogate.exceptions import GateRefused, MethodNotAllowed, PermissionDenied
from ferrogate.flask import FerroGate, current_claims, werkzeug_to_matchit
from flask import Blueprint, Flask, Response, jsonify, request, session
from flask.views import MethodView
from werkzeug.routing import Map, Rule


@pytest.mark.parametrize(
    ("rule", "pattern"),
    [
        ("/", "/"),
        ("/users/<int:user_id>", "/users/{user_id}"),
        ("/users/<user_id>/repos/", "/users/{user_id}/repos/"),
        ("/files/<path:rest>", "/files/{*rest}"),
        ("/u/<uuid:u>/x", "/u/{u}/x"),
        ("/k/<any(a,b):kind>", "/k/{kind}"),
    ],
)
def test_rules_that_convert(rule: str, pattern: str) -> None:
    m = Map([Rule(rule, endpoint="e")])
    assert werkzeug_to_matchit(next(iter(m.iter_rules()))) == (pattern, None)


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        ("/x/<name>.<ext>", "shares its segment"),
        ("/<path:p>/edit", "is not last"),
        ("/v<int:n>", "shares its segment"),
    ],
)
def test_rules_that_fall_back(rule: str, reason: str) -> None:
    m = Map([Rule(rule, endpoint="e")])
    pattern, why = werkzeug_to_matchit(next(iter(m.iter_rules())))
    assert pattern is None
    assert why is not None
    assert reason in why


@pytest.mark.parametrize("fast_path", [True, False])
def test_flask_answers_a_cors_preflight_to_a_protected_view(fast_path: bool) -> None:
    """Flask answers OPTIONS itself (the ``Allow`` header) without running the view; a browser's
    preflight carries no token. With ``exempt_methods=["OPTIONS"]`` it gets Flask's answer, other
    methods still need the token, and by default OPTIONS needs it too."""
    app = Flask(__name__)
    app.config["FERROGATE_JWT"] = {"algorithms": ["HS256"], "key": "cors-secret-long-enough-for-hs256!!"}
    gate = FerroGate(app, fast_path=fast_path)

    @app.get("/me")
    @gate.auth(exempt_methods=["OPTIONS"])
    def me() -> Any:
        return {"me": True}

    @app.get("/strict")
    @gate.auth()
    def strict() -> Any:
        return {"strict": True}

    c = app.test_client()
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "GET"}
    r = c.options("/me", headers=preflight)
    assert r.status_code == 200
    assert set(r.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}
    assert c.get("/me").status_code == 401
    assert c.options("/strict", headers=preflight).status_code == 401


@pytest.mark.parametrize("fast_path", [True, False])
def test_a_rule_with_a_method_the_router_has_no_table_for_is_checked_at_dispatch(fast_path: bool) -> None:
    """WebDAV's PROPFIND, a cache's PURGE: werkzeug routes any method token. The gate's router has
    tables for the standard methods only, so such a rule is checked at dispatch under its own
    policy (rule 3), rather than failing the app's start-up with a ConfigError."""
    app = Flask(__name__)
    app.config["FERROGATE_JWT"] = {"algorithms": ["HS256"], "key": "dav-secret-long-enough-for-hs256!!"}
    gate = FerroGate(app, fast_path=fast_path)

    @app.route("/files/<name>", methods=["PROPFIND", "PURGE"])
    @gate.auth(scopes=["dav"])
    def dav(name: str) -> Any:
        return {"dav": name}

    @app.get("/files/<name>")
    def read(name: str) -> Any:
        return {"read": name}

    c = app.test_client()
    token = encode(
        {"sub": "ann", "scope": "dav", "exp": time.time() + 60}, "dav-secret-long-enough-for-hs256!!", "HS256"
    )
    assert c.get("/files/a").json == {"read": "a"}
    assert c.open("/files/a", method="PROPFIND").status_code == 401
    assert c.open("/files/a", method="purge").status_code == 401
    r = c.open("/files/a", method="PROPFIND", headers={"Authorization": f"Bearer {token}"})
    assert r.json == {"dav": "a"}
    assert c.open("/files/a", method="MKCOL").status_code == 405
    report = {r.endpoint: r for r in gate.routes(app)}
    assert report["dav"].pattern is None
    assert "PROPFIND" in str(report["dav"].fallback_reason)


class Counter:
    def __init__(self) -> None:
        self.flask_requests = 0
        self.views = 0


def make_app(gate: FerroGate | None = None, **config: Any) -> tuple[Flask, FerroGate, Counter]:
    app = Flask(__name__)
    app.config.update(config)
    gate = gate or FerroGate()
    counter = Counter()

    @app.before_request
    def count() -> None:
        counter.flask_requests += 1

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> Any:
        counter.views += 1
        return {"id": item_id, "claims": current_claims or None}

    @app.get("/admin/<path:rest>")
    @gate.policy(access="deny")
    def admin(rest: str) -> Any:
        counter.views += 1
        return {"secret": rest}

    @app.get("/health")
    @gate.exempt
    def health() -> Any:
        return {"ok": True}

    @app.get("/files/<name>.<ext>")
    @gate.policy(access="deny")
    def odd_file(name: str, ext: str) -> Any:
        counter.views += 1
        return {"file": f"{name}.{ext}"}

    @app.get("/stream")
    def stream() -> Any:
        def gen() -> Iterator[str]:
            yield "a;"
            yield "b"

        return Response(gen(), mimetype="text/plain")

    gate.init_app(app)
    return app, gate, counter


def test_state_lives_in_app_extensions() -> None:
    app, gate, _ = make_app()
    assert FerroGate.state(app).ext is gate
    assert "ferrogate" in app.extensions
    with pytest.raises(RuntimeError, match="already initialised"):
        gate.init_app(app)


def test_denied_on_the_fast_path_before_flask_runs() -> None:
    app, _, counter = make_app()
    client = app.test_client()
    r = client.get("/admin/x")
    assert r.status_code == 403
    assert r.mimetype == "application/problem+json"
    assert counter.flask_requests == 0
    assert client.get("/items/3").json == {"id": 3, "claims": None}
    assert counter.views == 1


def test_after_the_first_request_flask_calls_the_native_gate_directly() -> None:
    from ferrogate._native import WsgiGate

    app, _, counter = make_app()
    client = app.test_client()
    assert client.get("/items/1").status_code == 200
    assert isinstance(app.wsgi_app, WsgiGate)
    assert client.get("/admin/x").status_code == 403
    assert counter.flask_requests == 1


def test_a_wrapper_added_after_init_app_stays_in_front() -> None:
    from werkzeug.middleware.proxy_fix import ProxyFix

    app, _, counter = make_app()
    wrapper = ProxyFix(app.wsgi_app)
    app.wsgi_app = wrapper  # type: ignore[method-assign]
    client = app.test_client()
    for _ in range(2):
        assert client.get("/items/1").status_code == 200
        assert client.get("/admin/x").status_code == 403
    assert app.wsgi_app is wrapper
    assert counter.flask_requests == 2


def test_method_not_allowed_from_the_url_map() -> None:
    app, _, counter = make_app()
    r = app.test_client().post("/items/3")
    assert r.status_code == 405
    assert r.headers["Allow"] == "GET, HEAD, OPTIONS"
    assert counter.flask_requests == 0


def test_fallback_rules_are_checked_in_before_request() -> None:
    app, gate, counter = make_app()
    reports = {r.endpoint: r for r in gate.routes(app)}
    assert reports["odd_file"].pattern is None
    assert "shares its segment" in (reports["odd_file"].fallback_reason or "")
    r = app.test_client().get("/files/report.pdf")
    assert r.status_code == 403
    assert counter.views == 0
    # The gate asked werkzeug which rule the path resolves to, and refused before Flask ran.
    assert counter.flask_requests == 0


def test_exempt_beats_deny_by_default() -> None:
    app, _, _ = make_app(FERROGATE_DEFAULTS={"access": "deny"})
    client = app.test_client()
    assert client.get("/health").status_code == 200
    assert client.get("/items/1").status_code == 403
    # An unmatched path is denied by the defaults too (checked in before_request: the app has fallbacks).
    assert client.get("/nowhere").status_code == 403


def test_constructor_options_override_app_config() -> None:
    app, _, _ = make_app(FerroGate(defaults={"access": "allow"}), FERROGATE_DEFAULTS={"access": "deny"})
    assert app.test_client().get("/items/1").status_code == 200


def test_unknown_option_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown option"):
        FerroGate(fastpath=True)


def test_disabled_gate_lets_everything_through() -> None:
    app, _, _ = make_app(FERROGATE_ENABLED=False)
    assert app.test_client().get("/admin/x").status_code == 200


def test_hook_mode_gives_the_same_answers() -> None:
    app, _, counter = make_app(FERROGATE_FAST_PATH=False)
    client = app.test_client()
    assert client.get("/admin/x").status_code == 403
    assert counter.flask_requests == 1  # Flask ran, the view did not
    assert counter.views == 0
    assert client.get("/items/2").status_code == 200
    assert client.get("/files/a.b").status_code == 403
    r = client.post("/items/2")
    assert r.status_code == 405


def test_hook_mode_does_not_walk_the_url_map_once_serving(monkeypatch: pytest.MonkeyPatch) -> None:
    import ferrogate.flask as ext

    app, _, _ = make_app(FERROGATE_FAST_PATH=False)
    client = app.test_client()
    assert client.get("/admin/x").status_code == 403
    walks: list[int] = []
    real = ext._rule_count
    monkeypatch.setattr(ext, "_rule_count", lambda a: walks.append(1) or real(a))
    for _ in range(3):
        assert client.get("/admin/x").status_code == 403
        assert client.get("/items/2").status_code == 200
    assert walks == []


def test_rules_added_after_init_are_compiled() -> None:
    app, gate, _ = make_app()
    client = app.test_client()

    @app.get("/late/<x>")
    @gate.policy(access="deny")
    def late(x: str) -> Any:
        return {"x": x}

    assert client.get("/late/1").status_code == 403
    assert any(r.pattern == "/late/{x}" for r in gate.routes(app))


def test_overlapping_rules_fall_back_together() -> None:
    app = Flask(__name__)
    gate = FerroGate()

    @app.get("/u/<int:uid>")
    @gate.policy(access="deny")
    def by_id(uid: int) -> Any:
        return {"id": uid}

    @app.get("/u/<name>")
    def by_name(name: str) -> Any:
        return {"name": name}

    gate.init_app(app)
    reports = {r.endpoint: r for r in gate.routes(app)}
    assert reports["by_id"].pattern is None
    assert reports["by_name"].pattern is None
    client = app.test_client()
    # werkzeug sends digits to by_id (denied) and names to by_name (allowed): the gate agrees.
    assert client.get("/u/12").status_code == 403
    assert client.get("/u/bob").json == {"name": "bob"}


def test_blueprint_policies_nest_and_views_override() -> None:
    app = Flask(__name__)
    gate = FerroGate()
    api = Blueprint("api", __name__, url_prefix="/api")
    internal = Blueprint("internal", __name__, url_prefix="/internal")

    @internal.get("/stats")
    def stats() -> Any:
        return {"n": 1}

    @internal.get("/ping")
    @gate.policy(access="allow")
    def ping() -> Any:
        return {"pong": True}

    @api.get("/public")
    def public() -> Any:
        return {"p": 1}

    gate.policy(access="deny")(internal)
    api.register_blueprint(internal)
    app.register_blueprint(api)
    gate.init_app(app)
    client = app.test_client()
    assert client.get("/api/public").status_code == 200
    assert client.get("/api/internal/stats").status_code == 403
    assert client.get("/api/internal/ping").status_code == 200


def test_class_based_views() -> None:
    app = Flask(__name__)
    gate = FerroGate()

    @gate.policy(access="deny")
    class Secret(MethodView):
        def get(self) -> Any:
            return {"s": 1}

    app.add_url_rule("/secret", view_func=Secret.as_view("secret"))
    gate.init_app(app)
    assert app.test_client().get("/secret").status_code == 403


def test_malformed_decorator_fails_at_import_naming_the_view() -> None:
    gate = FerroGate()
    with pytest.raises(ConfigError) as exc:

        @gate.policy(access="maybe")
        def my_view() -> None:
            pass

    assert "my_view" in str(exc.value)
    assert "access" in str(exc.value)


def test_two_apps_on_one_extension() -> None:
    gate = FerroGate()
    app1, _, _ = make_app(gate)
    app2 = Flask("second")

    @app2.get("/admin/<path:rest>")
    def other_admin(rest: str) -> Any:
        return {"open": True}

    gate.init_app(app2)
    assert app1.test_client().get("/admin/x").status_code == 403
    assert app2.test_client().get("/admin/x").status_code == 200
    assert FerroGate.state(app1) is not FerroGate.state(app2)


def test_error_handler_renders_refusals_with_standard_headers() -> None:
    app, _, counter = make_app()

    @app.errorhandler(GateRefused)
    def refused(exc: GateRefused) -> Any:
        return jsonify(error=type(exc).__name__, status=exc.status), exc.status

    client = app.test_client()
    r = client.get("/admin/x")
    assert r.status_code == 403
    assert r.json == {"error": "PermissionDenied", "status": 403}
    assert counter.views == 0
    r = client.post("/items/1")
    assert r.status_code == 405
    assert r.json == {"error": "MethodNotAllowed", "status": 405}
    assert r.headers["Allow"] == "GET, HEAD, OPTIONS"
    assert issubclass(MethodNotAllowed, GateRefused)
    assert issubclass(PermissionDenied, GateRefused)


def test_streaming_response_through_the_extension() -> None:
    app, _, _ = make_app()
    r = app.test_client().get("/stream")
    assert r.get_data() == b"a;b"


def test_cli_lists_routes() -> None:
    app, _, _ = make_app()
    result = app.test_cli_runner().invoke(args=["ferrogate", "routes"])
    assert result.exit_code == 0, result.output
    assert "/admin/{*rest}" in result.output
    assert 'access="deny"' in result.output
    assert "before_request (a variable shares its segment with other text)" in result.output
    result = app.test_cli_runner().invoke(args=["ferrogate", "routes", "--json"])
    assert '"endpoint": "health"' in result.output


def limited_app(**config: Any) -> tuple[Flask, FerroGate]:
    app = Flask(__name__)
    app.config.update(config)
    gate = FerroGate()
    api = Blueprint("api", __name__, url_prefix="/api")

    @app.get("/one")
    @gate.limit("2/minute")
    def one() -> Any:
        return {"one": True}

    @app.get("/stacked")
    @gate.limit("3/minute")
    @gate.limit("1/second")
    def stacked() -> Any:
        return {"stacked": True}

    @app.get("/a")
    @gate.limit("3/minute", shared="pair")
    def a() -> Any:
        return {"a": True}

    @app.get("/b")
    @gate.limit(shared="pair", cost=2)
    def b() -> Any:
        return {"b": True}

    @app.get("/per-user")
    @gate.limit("1/minute", key=lambda: request.headers.get("X-User", "anon"))
    def per_user() -> Any:
        return {"user": request.headers.get("X-User")}

    @api.get("/x")
    def x() -> Any:
        return {"x": True}

    gate.limit("1/minute")(api)
    app.register_blueprint(api)
    gate.init_app(app)
    return app, gate


def test_limit_decorator_429_with_standard_headers() -> None:
    app, _ = limited_app()
    client = app.test_client()
    r = client.get("/one")
    assert r.status_code == 200
    # Inline limits are named after the route (the endpoint).
    assert r.headers["RateLimit-Policy"] == '"one";q=2;w=60'
    assert r.headers["RateLimit"] == '"one";r=1;t=30'

    assert client.get("/one").status_code == 200
    r = client.get("/one")
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) >= 1
    assert r.mimetype == "application/problem+json"


def test_stacked_limits_and_shared_limits() -> None:
    app, _ = limited_app()
    client = app.test_client()
    assert client.get("/stacked").status_code == 200
    assert client.get("/stacked").status_code == 429  # 1/second binds first
    # /a and /b share one 3/minute counter; /b costs 2.
    assert client.get("/b").status_code == 200
    assert client.get("/a").status_code == 200
    assert client.get("/a").status_code == 429


def test_callable_key_runs_in_before_request() -> None:
    app, gate = limited_app()
    reports = {r.endpoint: r for r in gate.routes(app)}
    assert reports["per_user"].pattern is None
    assert "Python callable" in (reports["per_user"].fallback_reason or "")
    client = app.test_client()
    assert client.get("/per-user", headers={"X-User": "ann"}).status_code == 200
    assert client.get("/per-user", headers={"X-User": "ann"}).status_code == 429
    assert client.get("/per-user", headers={"X-User": "bob"}).status_code == 200
    # A client cannot pick the gate's internal key header to dodge the limit.
    r = client.get("/per-user", headers={"X-User": "ann", "X-Ferrogate-Key-0": "fresh"})
    assert r.status_code == 429


def test_blueprint_limit_applies_to_its_views() -> None:
    app, _ = limited_app()
    client = app.test_client()
    assert client.get("/api/x").status_code == 200
    assert client.get("/api/x").status_code == 429


def test_malformed_limit_fails_at_import() -> None:
    gate = FerroGate()
    with pytest.raises(ConfigError) as exc:

        @gate.limit("10/fortnight")
        def bad_view() -> None:
            pass

    assert "bad_view" in str(exc.value)
    assert "10/fortnight" in str(exc.value)
    with pytest.raises(ConfigError, match="quota"):
        gate.limit()


def test_rate_limited_handler_keeps_retry_after() -> None:
    app, _ = limited_app()

    @app.errorhandler(GateRefused)
    def refused(exc: GateRefused) -> Any:
        return {"mine": True, "status": exc.status}, exc.status

    client = app.test_client()
    client.get("/one")
    client.get("/one")
    r = client.get("/one")
    assert r.status_code == 429
    assert r.json == {"mine": True, "status": 429}
    assert "Retry-After" in r.headers
    assert "RateLimit" in r.headers


JWT_SECRET = "flask-test-secret-long-enough-for-hs256"


def auth_app() -> tuple[Flask, FerroGate]:
    app = Flask(__name__)
    app.config["FERROGATE_JWT"] = {"algorithms": ["HS256"], "key": JWT_SECRET, "issuer": "flask-tests"}
    gate = FerroGate()

    @app.get("/notes")
    @gate.auth(scopes=["notes:read"])
    def notes() -> Any:
        from flask import g

        return {"sub": current_claims["sub"], "g": g.ferrogate_claims["sub"]}

    @app.get("/maybe")
    @gate.auth(optional=True)
    def maybe() -> Any:
        return {"sub": current_claims["sub"] if current_claims else None}

    gate.init_app(app)
    return app, gate


def test_auth_decorator_and_current_claims() -> None:
    import time

    from ferrogate import encode

    app, _ = auth_app()
    client = app.test_client()
    r = client.get("/notes")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="api"'
    good = encode(
        {"sub": "ann", "iss": "flask-tests", "scope": "notes:read", "exp": time.time() + 60},
        JWT_SECRET,
        "HS256",
    )
    r = client.get("/notes", headers={"Authorization": f"Bearer {good}"})
    assert r.json == {"sub": "ann", "g": "ann"}
    weak = encode({"sub": "ann", "iss": "flask-tests", "exp": time.time() + 60}, JWT_SECRET, "HS256")
    assert client.get("/notes", headers={"Authorization": f"Bearer {weak}"}).status_code == 403
    assert client.get("/maybe").json == {"sub": None}
    assert client.get("/maybe", headers={"Authorization": f"Bearer {good}"}).json == {"sub": "ann"}


def test_auth_decorator_validates_at_import() -> None:
    gate = FerroGate()
    with pytest.raises(ConfigError, match="locations"):

        @gate.auth(locations=["body"])
        def view() -> None:
            pass


def test_flask_token_command_mints_a_working_token() -> None:
    app, _ = auth_app()
    result = app.test_cli_runner().invoke(
        args=["ferrogate", "token", "--sub", "zed", "--scope", "notes:read"]
    )
    assert result.exit_code == 0, result.output
    t = result.output.strip()
    r = app.test_client().get("/notes", headers={"Authorization": f"Bearer {t}"})
    assert r.json == {"sub": "zed", "g": "zed"}


@pytest.mark.parametrize("fast_path", [True, False])
def test_cache_decorator(fast_path: bool) -> None:
    app = Flask(__name__)
    app.config["FERROGATE_FAST_PATH"] = fast_path
    app.testing = True
    gate = FerroGate()
    calls: collections.Counter[str] = collections.Counter()

    @app.get("/cached/<int:n>")
    @gate.cache(ttl=60)
    def cached_view(n: int) -> Any:
        calls["cached"] += 1
        return {"n": n}

    @app.post("/cached/<int:n>")
    def update(n: int) -> Any:
        return {"updated": n}

    gate.init_app(app)
    client = app.test_client()
    first = client.get("/cached/1")
    assert first.status_code == 200, first.get_data()
    assert first.headers["Cache-Status"] == "ferrogate; fwd=miss; stored"
    second = client.get("/cached/1")
    assert second.headers["Cache-Status"].startswith("ferrogate; hit")
    assert second.json == {"n": 1}
    assert calls["cached"] == 1
    assert client.post("/cached/1").status_code == 200
    assert client.get("/cached/1").headers["Cache-Status"] == "ferrogate; fwd=miss; stored"
    cache = gate.response_cache(app)
    assert cache is not None
    assert cache.purge_prefix("/cached/") == 1


@pytest.mark.parametrize("fast_path", [True, False])
def test_the_cache_sees_the_response_flask_sends(fast_path: bool) -> None:
    """What the cache stores is the response after Flask has finished it: after_request hooks and
    the session's cookie included. A page that starts a session (a CSRF token bound to it, say)
    carries Set-Cookie and is never stored, so one anonymous visitor never gets another's token.
    The checks in Flask's hook (hook mode; in both modes a route with a Python rate-limit key)
    once stored the view's response before the hooks ran and the session was saved."""
    app = Flask(__name__)
    app.secret_key = "test-secret-key-long-enough-for-sessions"
    gate = FerroGate(fast_path=fast_path)
    calls: collections.Counter[str] = collections.Counter()

    @app.get("/form")
    @gate.cache(ttl=60)
    def form() -> Any:
        calls["form"] += 1
        return {"csrf": session.setdefault("csrf", f"token-{calls['form']}")}

    @app.get("/keyed")
    @gate.cache(ttl=60)
    @gate.limit("100/minute", key=lambda: "everyone")
    def keyed() -> Any:
        calls["keyed"] += 1
        return {"csrf": session.setdefault("csrf", f"token-{calls['keyed']}")}

    @app.get("/hooked")
    @gate.cache(ttl=60)
    def hooked() -> Any:
        calls["hooked"] += 1
        return {"n": calls["hooked"]}

    @app.get("/plain")
    @gate.cache(ttl=60)
    @gate.limit("100/minute", key=lambda: "everyone")
    def plain() -> Any:
        calls["plain"] += 1
        return {"n": calls["plain"]}

    @app.after_request
    def hooks(response: Response) -> Response:
        response.headers.add("Access-Control-Allow-Origin", "*")
        if request.path == "/hooked":
            response.headers["Cache-Control"] = "no-store"
        return response

    gate.init_app(app)
    for path in ("/form", "/keyed"):
        first = app.test_client().get(path)
        assert "session=" in first.headers["Set-Cookie"]
        assert "stored" not in first.headers["Cache-Status"]
        second = app.test_client().get(path)
        assert second.json == {"csrf": "token-2"}, path
        assert "session=" in second.headers["Set-Cookie"]
    app.test_client().get("/hooked")
    assert app.test_client().get("/hooked").json == {"n": 2}
    # A hit answered from Flask's hook passes through the after_request hooks again: what they add
    # is not in the stored response, or a hit would carry it twice.
    app.test_client().get("/plain")
    hit = app.test_client().get("/plain")
    assert "hit" in hit.headers["Cache-Status"]
    assert hit.json == {"n": 1}
    assert hit.headers.getlist("Access-Control-Allow-Origin") == ["*"]


def test_shared_limits_from_decorators_and_config_merge() -> None:
    app = Flask(__name__)
    app.config["FERROGATE_LIMITS"] = {"api": {"quota": "5/minute"}}
    gate = FerroGate()

    @app.get("/x")
    @gate.limit("1/minute", shared="mine")
    def x() -> Any:
        return {"x": 1}

    @app.get("/y")
    @gate.limit(shared="api")
    def y() -> Any:
        return {"y": 1}

    gate.init_app(app)
    client = app.test_client()
    assert client.get("/x").status_code == 200
    assert client.get("/x").status_code == 429
    assert client.get("/y").status_code == 200

    clash = Flask("clash")
    clash.config["FERROGATE_LIMITS"] = {"mine": {"quota": "9/minute"}}

    @clash.get("/z")
    @gate.limit(shared="mine")
    def z() -> Any:
        return {}

    with pytest.raises(ConfigError, match="defined both"):
        gate.init_app(clash)


def test_the_fast_path_leaves_request_finished_without_a_receiver() -> None:
    """Hook mode holds a view's response until ``request_finished`` (the app's after_request
    hooks and the session can still make it unstorable). The fast path stores in the WSGI layer,
    so no receiver is connected for it: one would be called on every request of the app."""
    from flask import request_finished

    app = Flask(__name__)
    gate = FerroGate(app)

    @app.get("/a")
    @gate.cache(ttl=60)
    def a() -> Any:
        return {"a": 1}

    c = app.test_client()
    assert c.get("/a").status_code == 200
    assert c.get("/a").headers["Cache-Status"].startswith("ferrogate; hit")
    assert not request_finished.has_receivers_for(app)

    hooked = Flask(__name__)
    hook_gate = FerroGate(hooked, fast_path=False)

    @hooked.get("/a")
    @hook_gate.cache(ttl=60)
    def b() -> Any:
        return {"b": 1}

    h = hooked.test_client()
    assert h.get("/a").status_code == 200
    assert request_finished.has_receivers_for(hooked)
    assert h.get("/a").headers["Cache-Status"].startswith("ferrogate; hit")


@pytest.mark.xfail(
    strict=True,
    reason="the confirmation at dispatch compares the route, not the method: a layer inside the "
    "gate that rewrites OPTIONS to GET runs the view under the OPTIONS exemption",
)
def test_a_method_rewritten_inside_the_gate_does_not_inherit_an_exemption() -> None:
    """A method override wrapped around ``app.wsgi_app`` before ``init_app`` turns ``OPTIONS`` with
    ``X-HTTP-Method-Override: GET`` into a GET after the gate decided on OPTIONS."""
    app = Flask(__name__)
    app.config["FERROGATE_JWT"] = {"algorithms": ["HS256"], "key": "override-secret-long-enough-for-hs256"}
    inner = app.wsgi_app

    def override(environ: dict[str, Any], start_response: Any) -> Any:
        method = environ.get("HTTP_X_HTTP_METHOD_OVERRIDE")
        if method:
            environ["REQUEST_METHOD"] = method.upper()
        return inner(environ, start_response)

    app.wsgi_app = override  # type: ignore[method-assign]
    gate = FerroGate(app)

    @app.get("/secret")
    @gate.auth(exempt_methods=["OPTIONS"])
    def secret() -> Any:
        return {"secret": True}

    r = app.test_client().options("/secret", headers={"X-HTTP-Method-Override": "GET"})
    assert r.status_code == 401
