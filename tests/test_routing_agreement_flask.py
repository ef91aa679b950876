"""The policy enforced is the policy of the Flask view that runs (issue 19), tried as an attacker.

Each test builds the app a user would write, sends the request that used to reach one view under
another view's policy, and checks what the view saw. All run on the WSGI fast path (the default),
where the gate decides before Flask and the extension confirms at dispatch.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from ferrogate import encode
from ferrogate.exceptions import ConfigError, GateRefused, OpaqueLayerWarning
from ferrogate.flask import FerroGate, werkzeug_to_matchit
from ferrogate.flask_mounts import Mounts
from flask import Flask, jsonify
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.middleware.shared_data import SharedDataMiddleware
from werkzeug.routing import PathConverter
from werkzeug.test import EnvironBuilder, run_wsgi_app

SECRET = "agreement-test-secret-long-enough-for-hs256"
MODES = pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "hook-mode"])
JWT = {"algorithms": ["HS256"], "key": SECRET}


def token(*scopes: str) -> dict[str, str]:
    t = encode({"sub": "ann", "scope": " ".join(scopes), "exp": time.time() + 300}, SECRET, "HS256")
    return {"Authorization": f"Bearer {t}"}


def legacy_app() -> tuple[Any, list[str]]:
    """A WSGI app mounted inside the gate (DispatcherMiddleware), and the paths it served."""
    ran: list[str] = []

    def legacy(environ: Any, start_response: Any) -> list[bytes]:
        ran.append(environ["PATH_INFO"])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"legacy secrets"]

    return legacy, ran


def new_app(
    subdomains: bool = False, fast_path: bool = True, **config: Any
) -> tuple[Flask, FerroGate, list[str]]:
    app = Flask(__name__, subdomain_matching=subdomains)
    app.config["FERROGATE_JWT"] = JWT
    app.config["FERROGATE_FAST_PATH"] = fast_path
    app.config.update(config)
    return app, FerroGate(), []


def spa_app(fast_path: bool) -> tuple[Flask, FerroGate]:
    """Defaults needing a token, and an exempt catch-all (a single-page app's) that matches every
    path a WSGI app mounted beside it serves."""
    app, gate, _ = new_app(fast_path=fast_path, FERROGATE_DEFAULTS={"auth": "required"})

    @app.get("/<path:page>")
    @gate.exempt
    def spa(page: str) -> Any:
        return {"page": page}

    return app, gate


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "hook-mode"])
def test_double_slash_never_reaches_a_protected_view_under_an_open_policy(fast_path: bool) -> None:
    app, gate, ran = new_app(fast_path=fast_path)

    @app.get("/admin/<path:page>")
    @gate.auth(scopes=["admin"])
    def admin(page: str) -> Any:
        ran.append("admin")
        return {"admin": page}

    @app.get("/admin/help/<topic>")
    @gate.cache(ttl=60, public=True)
    def help_page(topic: str) -> Any:
        ran.append("help")
        return {"help": topic}

    gate.init_app(app)
    client = app.test_client()
    r = client.get("/admin/help//x")
    assert r.status_code == 401
    assert ran == []
    # The anonymous probe stored nothing under the open URL's key.
    assert client.get("/admin/help/x").get_json() == {"help": "x"}
    assert client.get("/admin/help//x", headers=token("admin")).get_json() == {"admin": "help//x"}


def test_a_converter_that_spans_slashes_keeps_its_policy() -> None:
    class Everything(PathConverter):
        pass

    app, gate, ran = new_app()
    app.url_map.converters["everything"] = Everything

    @app.get("/docs/<everything:rest>")
    @gate.policy(access="deny")
    def docs_all(rest: str) -> Any:
        ran.append(rest)
        return {"rest": rest}

    @app.get("/docs/<name>")
    def doc(name: str) -> Any:
        return {"name": name}

    gate.init_app(app)
    rule = next(r for r in app.url_map.iter_rules() if r.endpoint == "docs_all")
    assert werkzeug_to_matchit(rule) == ("/docs/{*rest}", None)
    client = app.test_client()
    assert client.get("/docs/a/b").status_code == 403
    assert client.get("/docs/a").get_json() == {"name": "a"}
    assert ran == []


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "hook-mode"])
def test_converter_mismatch_is_rechecked_and_never_cached(fast_path: bool) -> None:
    # The gate's {id} matches "abc"; werkzeug's int converter does not, and dispatches to the
    # staff-only catch-all. A staff member's page must neither be stored under the open route
    # nor served to the next anonymous caller.
    app, gate, ran = new_app(fast_path=fast_path)

    @app.get("/u/<int:uid>")
    @gate.cache(ttl=60, public=True)
    def user(uid: int) -> Any:
        ran.append("user")
        return {"user": uid}

    @app.get("/u/<path:rest>")
    @gate.auth(scopes=["staff"])
    def staff(rest: str) -> Any:
        ran.append("staff")
        return {"staff": rest}

    gate.init_app(app)
    client = app.test_client()
    assert client.get("/u/abc").status_code == 401
    r = client.get("/u/abc", headers=token("staff"))
    assert r.get_json() == {"staff": "abc"}
    assert client.get("/u/abc").status_code == 401
    assert client.get("/u/abc", headers=token("other")).status_code == 403
    assert ran == ["staff"]
    assert client.get("/u/7").get_json() == {"user": 7}
    assert client.get("/u/7").headers["Cache-Status"].startswith("ferrogate; hit")


def test_non_strict_slash_rules_share_one_policy_and_one_bucket() -> None:
    app, gate, _ = new_app()

    @app.get("/items/", strict_slashes=False)
    @gate.limit("1/minute")
    def items() -> Any:
        return {"ok": True}

    gate.init_app(app)
    client = app.test_client()
    assert client.get("/items/").status_code == 200
    assert client.get("/items").status_code == 429
    report = next(r for r in gate.routes(app) if r.endpoint == "items")
    assert report.pattern == "/items/"


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "hook-mode"])
def test_subdomain_rule_sharing_a_path_gets_its_own_policy(fast_path: bool) -> None:
    app, gate, ran = new_app(subdomains=True, fast_path=fast_path, SERVER_NAME="example.test")

    @app.get("/panel", subdomain="admin")
    @gate.policy(access="deny")
    def admin_panel() -> Any:
        ran.append("admin")
        return {"panel": "admin"}

    @app.get("/panel")
    def panel() -> Any:
        return {"panel": "public"}

    gate.init_app(app)
    client = app.test_client()
    assert client.get("http://example.test/panel").get_json() == {"panel": "public"}
    assert client.get("http://admin.example.test/panel").status_code == 403
    assert ran == []


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "hook-mode"])
def test_method_spelling_is_read_as_werkzeug_reads_it(fast_path: bool) -> None:
    app, gate, ran = new_app(fast_path=fast_path)

    @app.get("/articles/<int:aid>")
    def show(aid: int) -> Any:
        return {"id": aid}

    @app.delete("/articles/<int:aid>")
    @gate.auth(scopes=["articles:delete"])
    def delete(aid: int) -> Any:
        ran.append("delete")
        return {"deleted": aid}

    @app.route("/<path:anything>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    def catch_all(anything: str) -> Any:
        return {"anything": anything}

    gate.init_app(app)
    env = EnvironBuilder(path="/articles/1", method="DELETE").get_environ()
    env["REQUEST_METHOD"] = "delete"
    _, status, _ = run_wsgi_app(app, env)
    assert status.startswith("401")
    assert ran == []


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "hook-mode"])
def test_a_fallback_rule_does_not_turn_off_the_defaults_for_mounted_apps(fast_path: bool) -> None:
    app, gate, _ = new_app(fast_path=fast_path, FERROGATE_DEFAULTS={"auth": "required"})
    legacy, legacy_ran = legacy_app()

    @app.get("/files/<name>.<ext>")  # cannot be a matchit pattern: dispatch-only
    @gate.exempt
    def odd_file(name: str, ext: str) -> Any:
        return {"file": f"{name}.{ext}"}

    @app.get("/quota")
    @gate.limit("2/minute")
    def quota() -> Any:
        return {"ok": True}

    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/legacy": legacy})  # type: ignore[method-assign]
    gate.init_app(app)
    client = app.test_client()
    r = client.get("/legacy/report")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert legacy_ran == []
    assert client.get("/files/a.txt").get_json() == {"file": "a.txt"}
    assert client.get("/legacy/report", headers=token()).data == b"legacy secrets"
    # Checked once, not once before the mounted layer and again in Flask's hook.
    assert [client.get("/quota", headers=token()).status_code for _ in range(3)] == [200, 200, 429]


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "hook-mode"])
def test_a_mounted_app_never_runs_under_the_policy_of_a_flask_rule_matching_its_path(fast_path: bool) -> None:
    # A metrics app mounted at /metrics beside a public catch-all: /metrics is served by the
    # mounted app, so it gets the defaults, not the catch-all's exemption.
    app, gate, ran = new_app(fast_path=fast_path, FERROGATE_DEFAULTS={"auth": "required"})
    metrics, metrics_ran = legacy_app()

    @app.get("/<path:page>")
    @gate.exempt
    def spa(page: str) -> Any:
        ran.append(page)
        return {"page": page}

    @app.get("/metricsx")
    @gate.exempt
    def near(page: str = "") -> Any:
        return {"near": True}

    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/metrics": metrics})  # type: ignore[method-assign]
    gate.init_app(app)
    client = app.test_client()
    for path in ("/metrics", "/metrics/", "/metrics/x", "/metrics//x"):
        assert client.get(path).status_code == 401, path
    assert metrics_ran == []
    assert client.get("/metrics", headers=token()).data == b"legacy secrets"
    assert client.get("/about").get_json() == {"page": "about"}
    assert client.get("/metricsx").get_json() == {"near": True}
    reports = {r.endpoint: r for r in gate.state(app).current().reports}
    assert reports["spa"].pattern is None
    assert "/metrics" in (reports["spa"].fallback_reason or "")
    assert reports["near"].pattern == "/metricsx"


def test_shared_data_exports_are_mounts_and_a_missing_file_is_checked_by_flask(tmp_path: Any) -> None:
    (tmp_path / "public.txt").write_text("public file")
    app, gate, ran = new_app(FERROGATE_DEFAULTS={"auth": "required"})

    @app.get("/static-ish/<path:page>")
    @gate.auth(scopes=["admin"])
    def admin(page: str) -> Any:
        ran.append(page)
        return {"admin": page}

    app.wsgi_app = SharedDataMiddleware(app.wsgi_app, {"/static-ish": str(tmp_path)})  # type: ignore[method-assign]
    gate.init_app(app)
    client = app.test_client()
    # Served by the shared-data layer: the defaults (a token), not the admin rule's scope.
    assert client.get("/static-ish/public.txt").status_code == 401
    assert client.get("/static-ish/public.txt", headers=token()).data == b"public file"
    # No such file: Flask's admin view runs, under its own policy.
    assert client.get("/static-ish/other", headers=token()).status_code == 403
    assert client.get("/static-ish/other", headers=token("admin")).get_json() == {"admin": "other"}
    assert ran == ["other"]


def test_mount_points_are_read_as_the_dispatcher_reads_them() -> None:
    mounts = Mounts(dispatch=("/metrics", "/a/b", "/"))

    def serves(path: str) -> bool:
        return mounts.serves({"PATH_INFO": path})

    assert [serves(p) for p in ("/metrics", "/metrics/", "/metrics/x/y", "/a/b/c", "/")] == [True] * 5
    assert [serves(p) for p in ("/metricsx", "/a", "/x")] == [False] * 3
    assert mounts.overlapping("/{*page}") == "/metrics"
    assert Mounts(dispatch=("/a/b",)).overlapping("/a/{x}") == "/a/b"
    assert Mounts(dispatch=("/a/b",)).overlapping("/a/c") is None
    assert Mounts(dispatch=("/metrics",)).overlapping("/metricsx") is None
    assert Mounts(dispatch=("/",)).overlapping("/about") is None
    assert Mounts(dispatch=("weird",)).overlapping("/about") == "weird"


@MODES
def test_shared_data_at_the_root_serves_its_files_under_the_defaults(tmp_path: Any, fast_path: bool) -> None:
    (tmp_path / "payroll.csv").write_text("alice,100000")
    app, gate, _ = new_app(fast_path=fast_path, FERROGATE_DEFAULTS={"auth": "required"})

    @app.get("/<page>")
    @gate.exempt
    def page(page: str) -> Any:
        return {"page": page}

    app.wsgi_app = SharedDataMiddleware(app.wsgi_app, {"/": str(tmp_path)})  # type: ignore[method-assign]
    gate.init_app(app)
    client = app.test_client()
    assert client.get("/payroll.csv").status_code == 401
    assert client.get("/payroll.csv", headers=token()).data == b"alice,100000"
    # No such file: Flask's exempt view, under its own policy.
    assert client.get("/about").get_json() == {"page": "about"}


@MODES
def test_shared_data_exports_are_read_in_the_decoded_path(tmp_path: Any, fast_path: bool) -> None:
    (tmp_path / "x.txt").write_text("secret file")
    app, gate, _ = new_app(fast_path=fast_path, FERROGATE_DEFAULTS={"auth": "required"})

    @app.get("/<section>/<path:rest>")
    @gate.exempt
    def docs(section: str, rest: str) -> Any:
        return {"docs": rest}

    app.wsgi_app = SharedDataMiddleware(app.wsgi_app, {"/données": str(tmp_path)})  # type: ignore[method-assign]
    gate.init_app(app)
    client = app.test_client()
    assert client.get("/données/x.txt").status_code == 401
    assert client.get("/données/other").get_json() == {"docs": "other"}


@MODES
def test_a_dispatcher_mount_in_wsgi_text_is_compared_with_rules_decoded(fast_path: bool) -> None:
    metrics, metrics_ran = legacy_app()
    app, gate, _ = new_app(fast_path=fast_path, FERROGATE_DEFAULTS={"auth": "required"})

    @app.get("/métrics")
    @gate.exempt
    def shadow() -> Any:
        return {"shadow": True}

    wsgi_key = "/métrics".encode().decode("latin-1")
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {wsgi_key: metrics})  # type: ignore[method-assign]
    gate.init_app(app)
    assert app.test_client().get("/m%C3%A9trics").status_code == 401
    assert metrics_ran == []


def test_flask_mounted_under_a_prefix_inside_the_gate_is_a_start_up_error() -> None:
    legacy, _ = legacy_app()
    app, gate, _ = new_app()
    app.wsgi_app = DispatcherMiddleware(legacy, {"/api": app.wsgi_app})  # type: ignore[method-assign]
    with pytest.raises(ConfigError, match="mounted at '/api'"):
        gate.init_app(app)


@MODES
def test_mounts_behind_a_layer_keeping_its_app_in_another_attribute_are_found(fast_path: bool) -> None:
    metrics, metrics_ran = legacy_app()
    app, gate = spa_app(fast_path)

    class RequestId:  # as WhiteNoise keeps it
        def __init__(self, application: Any) -> None:
            self.application = application

        def __call__(self, environ: Any, start_response: Any) -> Any:
            return self.application(environ, start_response)

    app.wsgi_app = RequestId(DispatcherMiddleware(app.wsgi_app, {"/metrics": metrics}))  # type: ignore[method-assign]
    gate.init_app(app)
    assert app.test_client().get("/metrics").status_code == 401
    assert metrics_ran == []


def test_a_layer_the_gate_cannot_see_inside_is_a_warning() -> None:
    metrics, _ = legacy_app()
    app, gate, _ = new_app()
    inner = DispatcherMiddleware(app.wsgi_app, {"/metrics": metrics})

    def request_id(environ: Any, start_response: Any) -> Any:
        return inner(environ, start_response)

    app.wsgi_app = request_id  # type: ignore[method-assign]
    with pytest.warns(OpaqueLayerWarning, match="request_id"):
        gate.init_app(app)


@MODES
def test_a_mount_added_after_init_app_is_read_at_the_first_request(fast_path: bool) -> None:
    metrics, metrics_ran = legacy_app()
    app, gate = spa_app(fast_path)
    dispatcher = DispatcherMiddleware(app.wsgi_app, {})
    app.wsgi_app = dispatcher  # type: ignore[method-assign]
    gate.init_app(app)
    dispatcher.mounts["/metrics"] = metrics
    assert app.test_client().get("/metrics").status_code == 401
    assert metrics_ran == []


def test_a_policy_set_after_init_app_is_enforced_and_after_serving_refused() -> None:
    from flask import Blueprint

    app, gate, _ = new_app()
    admin = Blueprint("admin", __name__, url_prefix="/admin")

    @admin.get("/users")
    def users() -> Any:
        return {"users": ["ann"]}

    app.register_blueprint(admin)
    gate.init_app(app)
    gate.auth(scopes=["admin"])(admin)
    client = app.test_client()
    assert client.get("/admin/users").status_code == 401
    with pytest.raises(RuntimeError, match="first request"):
        gate.exempt(admin)
    assert client.get("/admin/users").status_code == 401


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "hook-mode"])
def test_deferred_refusals_go_to_flask_not_to_a_wrapped_wsgi_layer(fast_path: bool) -> None:
    app, gate, _ = new_app(fast_path=fast_path, FERROGATE_DEFAULTS={"auth": "required"})
    legacy, legacy_ran = legacy_app()

    @app.errorhandler(GateRefused)
    def refused(e: GateRefused) -> Any:
        return jsonify(refused=e.status), e.status

    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/legacy": legacy})  # type: ignore[method-assign]
    gate.init_app(app)
    r = app.test_client().get("/legacy/report")
    assert r.status_code == 401
    assert r.get_json() == {"refused": 401}
    assert legacy_ran == []


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "hook-mode"])
def test_cached_fallback_rules_are_keyed_by_the_path_the_view_sees(fast_path: bool) -> None:
    app, gate, ran = new_app(fast_path=fast_path)

    @app.get("/files/<name>.<ext>")
    @gate.cache(ttl=60, public=True)
    def odd_file(name: str, ext: str) -> Any:
        ran.append(f"{name}.{ext}")
        return {"file": f"{name}.{ext}"}

    gate.init_app(app)
    client = app.test_client()
    assert client.get("/files/report.pdf").get_json() == {"file": "report.pdf"}
    assert client.get("/files/passwords.txt").get_json() == {"file": "passwords.txt"}
    assert client.get("/files/report.pdf").get_json() == {"file": "report.pdf"}
    assert ran == ["report.pdf", "passwords.txt"]


def test_the_fallback_routes_own_path_is_not_a_back_door() -> None:
    # Fallback routes used to live under synthetic paths in the gate's router.
    app, gate, ran = new_app(FERROGATE_DEFAULTS={"access": "deny"})

    @app.get("/files/<name>.<ext>")
    @gate.policy(access="allow")
    def odd_file(name: str, ext: str) -> Any:
        return {"file": name}

    @app.get("/<path:p>")
    def anything(p: str) -> Any:
        ran.append(p)
        return {"p": p}

    gate.init_app(app)
    client = app.test_client()
    for probe in ("/_ferrogate_fallback/0", "/_ferrogate_fallback/unmatched"):
        assert client.get(probe).status_code == 403
    assert ran == []


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "hook-mode"])
def test_a_typed_converter_never_refuses_for_the_route_werkzeug_picks(fast_path: bool) -> None:
    # Both rules are /{a}/{b} to the gate's router; werkzeug's int converter sends /x/y to the open
    # rule. The early check under the int rule must not answer for it.
    app, gate, ran = new_app(fast_path=fast_path)

    @app.get("/<a>/<int:b>")
    @gate.auth(scopes=["numbers"])
    def numbered(a: str, b: int) -> Any:
        ran.append("numbered")
        return {"numbered": b}

    @app.get("/<a>/<b>")
    def named(a: str, b: str) -> Any:
        ran.append("named")
        return {"named": b}

    gate.init_app(app)
    client = app.test_client()
    assert client.get("/x/y").get_json() == {"named": "y"}
    assert client.get("/x/7").status_code == 401
    assert client.get("/x/7", headers=token("numbers")).get_json() == {"numbered": 7}
    assert ran == ["named", "numbered"]


@pytest.mark.parametrize("cached", [False, True], ids=["plain", "cached"])
@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "hook-mode"])
def test_a_recheck_answers_with_one_set_of_ratelimit_headers(fast_path: bool, cached: bool) -> None:
    """The gate matched /items/{id} for /items/abc, werkzeug's int converter did not: the response
    carries the catch-all's RateLimit headers only, never both routes'."""
    app = Flask(__name__)
    app.config["FERROGATE_FAST_PATH"] = fast_path
    gate = FerroGate(app)

    def by_id(id: int) -> Any:
        return {"id": id}

    def catch(anything: str) -> Any:
        return {"p": anything}

    by_id_view = gate.limit("5/minute")(by_id)
    if cached:
        by_id_view = gate.cache(ttl=60)(by_id_view)
    app.add_url_rule("/items/<int:id>", view_func=by_id_view)
    app.add_url_rule("/<path:anything>", view_func=gate.limit("10/minute")(catch))
    c = app.test_client()
    r = c.get("/items/abc")
    assert r.json == {"p": "items/abc"}
    assert r.headers.getlist("RateLimit-Policy") == ['"catch";q=10;w=60']
    assert len(r.headers.getlist("RateLimit")) == 1
    r = c.get("/items/3")
    assert r.headers.getlist("RateLimit-Policy") == ['"by_id";q=5;w=60']


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "hook-mode"])
def test_a_parameter_the_converter_refuses_never_counts_under_its_route(fast_path: bool) -> None:
    """/items/abc does not reach <int:id>: the gate's digits shape sends it to werkzeug's router,
    so by_id's bucket is untouched; a digit werkzeug accepts and the shape does not (U+0663) is
    resolved by werkzeug and counted under by_id, where it runs."""
    app = Flask(__name__)
    app.config["FERROGATE_FAST_PATH"] = fast_path
    gate = FerroGate(app)
    app.add_url_rule("/items/<int:id>", "by_id", gate.limit("3/minute")(lambda id: {"id": id}))
    app.add_url_rule("/<path:anything>", "catch", gate.limit("100/minute")(lambda anything: {"p": anything}))
    c = app.test_client()
    for _ in range(5):
        r = c.get("/items/abc")
        assert r.json == {"p": "items/abc"}
        assert r.headers.getlist("RateLimit-Policy") == ['"catch";q=100;w=60']
    assert c.get("/items/1").headers["RateLimit"].startswith('"by_id";r=2')
    r = c.get("/items/%D9%A3")
    assert r.json == {"id": 3}
    assert r.headers["RateLimit"].startswith('"by_id";r=1')
    report = {x.rule: x for x in gate.routes(app)}
    assert report["/items/<int:id>"].pattern == "/items/{id}"


def test_shapes_are_given_only_for_converters_they_match_exactly_or_more_strictly() -> None:
    from ferrogate.flask import narrowed, param_shapes

    app = Flask(__name__)
    for rule in [
        "/a/<int:x>",
        "/b/<uuid:x>",
        "/c/<int(signed=True):x>",
        "/d/<int(min=1):x>",
        "/e/<any(p,q):x>",
    ]:
        app.add_url_rule(rule, rule, lambda **kw: "")
    rules = {r.rule: r for r in app.url_map.iter_rules()}
    assert param_shapes(rules["/a/<int:x>"]) == {"x": "digits"}
    assert param_shapes(rules["/b/<uuid:x>"]) == {"x": "uuid"}
    assert not narrowed(rules["/a/<int:x>"])
    for other in ["/c/<int(signed=True):x>", "/d/<int(min=1):x>", "/e/<any(p,q):x>"]:
        assert param_shapes(rules[other]) == {}
        assert narrowed(rules[other])


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/items/%31", {"id": 1}),  # a percent-encoded digit is a digit once decoded
        ("/items/+1", {"p": "items/+1"}),
        ("/items/1%20", {"p": "items/1 "}),
        ("/items/-1", {"p": "items/-1"}),
    ],
)
def test_parameter_shapes_read_each_spelling_as_werkzeug_does(path: str, expected: dict[str, Any]) -> None:
    app = Flask(__name__)
    gate = FerroGate(app)
    app.add_url_rule("/items/<int:id>", "by_id", gate.limit("3/minute")(lambda id: {"id": id}))
    app.add_url_rule("/<path:anything>", "catch", gate.limit("100/minute")(lambda anything: {"p": anything}))
    r = app.test_client().get(path)
    assert r.json == expected
    policy = '"by_id";q=3;w=60' if "id" in expected else '"catch";q=100;w=60'
    assert r.headers.getlist("RateLimit-Policy") == [policy]


@pytest.mark.parametrize("rule", ["/\x00/<x>", "/a\x7f/b", "/a/../<x>", "/a/./b"])
def test_a_rule_the_router_cannot_hold_is_checked_at_dispatch(rule: str) -> None:
    # The gate's router refuses control characters and dot segments in a pattern; such a rule
    # must go to the dispatch-time fallback, not fail init_app.
    app = Flask(__name__)
    app.add_url_rule(rule, "odd", lambda **kw: "")
    app.add_url_rule("/ok", "ok", lambda: {"ok": True})
    gate = FerroGate(app)
    report = {r.rule: r for r in gate.routes(app)}
    assert report[rule].pattern is None
    assert report[rule].fallback_reason in (
        "a control character in the rule",
        "a '.' or '..' segment in the rule",
    )
    assert app.test_client().get("/ok").json == {"ok": True}


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "hook-mode"])
def test_a_dispatch_only_root_is_never_counted_under_the_catch_all(fast_path: bool) -> None:
    # werkzeug's `path` converter never matches an empty value: /docs/ is the index's. The index
    # is dispatch-only (a Python-keyed limit), so the router's catch-all would take its root.
    app, gate, _ = new_app(fast_path=fast_path)
    app.add_url_rule("/docs/<path:page>", "docs_page", gate.limit("2/minute")(lambda page: {"v": "page"}))
    index = gate.limit("100/minute", key=lambda: "everyone")(lambda: {"v": "index"})
    app.add_url_rule("/docs/", "docs_index", index)
    gate.init_app(app)
    c = app.test_client()
    for _ in range(3):
        assert c.get("/docs/").json == {"v": "index"}
    assert [c.get("/docs/guide").status_code for _ in range(3)] == [200, 200, 429]
    report = {r.rule: r for r in gate.routes(app)}
    assert report["/docs/<path:page>"].pattern is None
    assert "/docs/" in (report["/docs/<path:page>"].fallback_reason or "")


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "hook-mode"])
def test_a_catch_alls_root_goes_to_the_route_werkzeug_gives_it(fast_path: bool) -> None:
    # /docs/ is `section`'s in werkzeug (docs_page needs a non-empty rest): the router claims it
    # for `section` too, and the catch-all stays on the fast path.
    app, gate, _ = new_app(fast_path=fast_path)
    app.add_url_rule("/docs/<path:page>", "docs_page", gate.limit("2/minute")(lambda page: {"v": "page"}))
    app.add_url_rule("/<section>/", "section", lambda section: {"v": section})
    gate.init_app(app)
    c = app.test_client()
    for _ in range(3):
        assert c.get("/docs/").json == {"v": "docs"}
    assert [c.get("/docs/guide").status_code for _ in range(3)] == [200, 200, 429]
    report = {r.rule: r for r in gate.routes(app)}
    assert report["/docs/<path:page>"].pattern == "/docs/{*page}"


def test_catch_alls_cover_their_root_only_in_the_gates_router() -> None:
    from ferrogate._adapter import patterns_overlap

    assert patterns_overlap("/docs/{*p}", "/docs/")
    assert not patterns_overlap("/docs/{*p}", "/docs/", catch_all_root=False)
    assert not patterns_overlap("/docs/", "/docs/{*p}", catch_all_root=False)
    assert patterns_overlap("/docs/{*p}", "/docs/{x}", catch_all_root=False)
    assert patterns_overlap("/docs/{*p}", "/docs//x", catch_all_root=False)
    assert patterns_overlap("/{*rest}", "/docs/", catch_all_root=False)


def test_a_root_is_never_aliased_to_a_catch_all_that_left_the_router() -> None:
    # /a/b/ is `a_rest`'s in werkzeug; a_rest's own root (/a/) is a dispatch-only rule's, so
    # a_rest goes to dispatch, and /a/b/{*p} must not count /a/b/ on the strength of an alias
    # given to a route the router no longer has.
    app, gate, _ = new_app()
    app.add_url_rule("/a/b/<path:p>", "ab", gate.limit("1/minute")(lambda p: {"v": "ab"}))
    app.add_url_rule("/a/<path:rest>", "a_rest", lambda rest: {"v": "a_rest"})
    app.add_url_rule("/a/", "a_index", gate.limit("9/minute", key=lambda: "all")(lambda: {"v": "a"}))
    gate.init_app(app)
    c = app.test_client()
    assert [c.get("/a/b/").json for _ in range(2)] == [{"v": "a_rest"}] * 2
    assert c.get("/a/b/x").status_code == 200
    report = {r.rule: r for r in gate.routes(app)}
    assert report["/a/<path:rest>"].pattern is None
