"""Differential test: for generated route tables and hostile paths, the view that runs is always one
whose own policy allows the request (issue 19). Bounded in `make test`, long in `make fuzz`.

Every route requires its own scope; each request carries a token with a random subset of the
scopes. The framework's own resolution (werkzeug's URL adapter, Django's resolver) says which view
should run; the response says which one did.
"""

from __future__ import annotations

import time
import types
from typing import Any
from urllib.parse import unquote

from django.http import HttpRequest, JsonResponse
from django.test import Client, override_settings
from django.urls import Resolver404, path, re_path, resolve
from ferrogate import encode
from ferrogate.django import auth as django_auth
from ferrogate.flask import FerroGate
from flask import Flask
from hypothesis import given
from hypothesis import strategies as st
from werkzeug.exceptions import HTTPException
from werkzeug.test import EnvironBuilder

SECRET = "differential-secret-long-enough-for-hs256"

STATIC = st.sampled_from(["a", "b", "new", "x"])
FLASK_PARAM = st.sampled_from(["<p{}>", "<int:p{}>", "<path:p{}>"])
METHODS = st.sampled_from([["GET"], ["GET", "POST"], ["POST"], ["DELETE"]])
SEGMENT = st.sampled_from(["a", "b", "new", "x", "1", "", ".", "..", "%2F", "%252F", "A", "\u00e9", "a.b"])


def route_shape(draw: Any, params: st.SearchStrategy[str]) -> str:
    """One to three segments, static or a parameter (a `path` converter only last), and maybe a
    trailing slash; no leading slash."""
    parts = []
    n = draw(st.integers(1, 3))
    for i in range(n):
        if draw(st.booleans()):
            parts.append(draw(STATIC))
            continue
        template = draw(params)
        if "path" in template and i != n - 1:
            template = "<p{}>"
        parts.append(template.format(i))
    return "/".join(parts) + ("/" if draw(st.booleans()) else "")


@st.composite
def flask_rules(draw: Any) -> list[tuple[str, list[str], bool]]:
    return [
        ("/" + route_shape(draw, FLASK_PARAM), draw(METHODS), draw(st.booleans()))
        for _ in range(draw(st.integers(1, 6)))
    ]


@st.composite
def request_paths(draw: Any) -> str:
    segs = draw(st.lists(SEGMENT, min_size=0, max_size=4))
    out = "/" + "/".join(segs)
    if draw(st.booleans()):
        out += "/"
    if draw(st.integers(0, 5)) == 0:
        out = "/" + out
    return out


def token_for(scopes: list[str]) -> str:
    claims = {"sub": "u", "scope": " ".join(scopes), "exp": time.time() + 600}
    return "Bearer " + encode(claims, SECRET, "HS256")


def build_flask(rules: list[tuple[str, list[str], bool]]) -> Flask:
    app = Flask(__name__)
    app.config["FERROGATE_JWT"] = {"algorithms": ["HS256"], "key": SECRET}
    gate = FerroGate()
    for i, (rule, methods, strict) in enumerate(rules):

        def view(i: int = i, **_: Any) -> Any:
            return {"view": i}

        view.__name__ = f"v{i}"
        app.add_url_rule(
            rule,
            endpoint=f"v{i}",
            view_func=gate.auth(scopes=[f"s{i}"])(view),
            methods=methods,
            strict_slashes=strict,
        )
    gate.init_app(app)
    return app


def flask_resolution(app: Flask, environ: dict[str, Any]) -> int | None:
    try:
        adapter = app.create_url_adapter(app.request_class(environ))
        assert adapter is not None
        rule, _ = adapter.match(return_rule=True)
    except HTTPException:
        return None
    return int(rule.endpoint[1:])


@given(
    rules=flask_rules(),
    path=request_paths(),
    method=st.sampled_from(["GET", "POST", "DELETE", "get", "delete", "HEAD"]),
    granted=st.sets(st.integers(0, 5)),
)
def test_flask_runs_only_views_whose_policy_allows(
    rules: list[tuple[str, list[str], bool]], path: str, method: str, granted: set[int]
) -> None:
    try:
        app = build_flask(rules)
    except AssertionError:
        return  # werkzeug refused the table (duplicate endpoints or rule shapes)
    scopes = [f"s{i}" for i in sorted(granted)]
    builder = EnvironBuilder(path="/", method="GET", headers={"Authorization": token_for(scopes)})
    environ = builder.get_environ()
    environ["PATH_INFO"] = path.encode("utf-8").decode("latin-1")
    environ["REQUEST_METHOD"] = method
    expected = flask_resolution(app, dict(environ, REQUEST_METHOD=method.upper()))
    response = app.test_client().open(environ_overrides=environ, method=method)
    ran = response.get_json(silent=True) if response.status_code == 200 else None
    ran_view = ran.get("view") if isinstance(ran, dict) else None
    if ran_view is not None:
        assert ran_view == expected, (rules, path, method)
        assert ran_view in granted, (rules, path, method, granted)
    elif expected is not None and expected in granted and method.upper() != "HEAD":
        # The view may be refused only for a spelling the gate will not read (400).
        assert response.status_code in (400, 200), (rules, path, method, response.status_code)


DJANGO_PARAM = st.sampled_from(["<str:p{}>", "<int:p{}>", "<slug:p{}>", "<path:p{}>"])


@st.composite
def django_routes(draw: Any) -> list[tuple[str, bool]]:
    return [
        (route_shape(draw, DJANGO_PARAM), draw(st.integers(0, 4)) == 0)
        for _ in range(draw(st.integers(1, 6)))
    ]


def _django_view(i: int) -> Any:
    def view(request: HttpRequest, **_: Any) -> JsonResponse:
        return JsonResponse({"view": i})

    view.__name__ = view.__qualname__ = f"v{i}"
    return django_auth(scopes=[f"s{i}"])(view)


@given(
    routes=django_routes(),
    req_path=request_paths(),
    method=st.sampled_from(["GET", "POST", "delete"]),
    granted=st.sets(st.integers(0, 5)),
)
def test_django_runs_only_views_whose_policy_allows(
    routes: list[tuple[str, bool]], req_path: str, method: str, granted: set[int]
) -> None:
    patterns = []
    for i, (route, as_regex) in enumerate(routes):
        view = _django_view(i)
        if as_regex and "<" not in route:
            patterns.append(re_path("^" + route.replace(".", r"\.") + "$", view))
        else:
            patterns.append(path(route, view))
    urlconf = types.ModuleType("differential_urls")
    urlconf.urlpatterns = patterns  # type: ignore[attr-defined]
    settings_patch = {
        "ROOT_URLCONF": urlconf,
        "MIDDLEWARE": ["ferrogate.django.GateMiddleware"],
        "FERROGATE": {"jwt": {"algorithms": ["HS256"], "key": SECRET}},
    }
    # The test client would read "//host/..." as a network location.
    req_path = "/" + req_path.lstrip("/") if req_path.startswith("//") else req_path
    with override_settings(**settings_patch):
        try:
            # What Django's handler resolves: the test client percent-decodes the path once.
            match = resolve(unquote(req_path))
            expected: int | None = int(match.func.__name__[1:])
        except Resolver404:
            expected = None
        scopes = [f"s{i}" for i in sorted(granted)]
        response = Client().generic(method, req_path, HTTP_AUTHORIZATION=token_for(scopes))
    ran = None
    if response.status_code == 200 and response.get("Content-Type") == "application/json":
        ran = response.json().get("view")
    if ran is not None:
        assert ran == expected, (routes, req_path, method)
        assert ran in granted, (routes, req_path, method, granted)
    elif expected is not None and expected in granted:
        assert response.status_code == 400, (routes, req_path, method, response.status_code)
