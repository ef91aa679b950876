"""ferrogate.django: middleware (sync and async), URLconf compilation, fallbacks, checks, fast path."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.core.checks import Error, Warning
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import AsyncClient, Client, override_settings
from django_project.views import CALLS
from ferrogate import ConfigError
from ferrogate.django import checks, policy, state
from ferrogate.django.urls import regex_to_matchit, route_to_matchit
from ferrogate.django.wsgi import get_wsgi_application


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    state.reset()
    CALLS.update(middleware=0, views=0)
    yield
    state.reset()


@pytest.mark.parametrize(
    ("route", "pattern"),
    [
        ("", "/"),
        ("items/<int:pk>/", "/items/{pk}/"),
        ("files/<path:rest>", "/files/{*rest}"),
        ("a/<slug:s>/<uuid:u>", "/a/{s}/{u}"),
        ("api/v1/ping/", "/api/v1/ping/"),
    ],
)
def test_path_routes_compile(route: str, pattern: str) -> None:
    assert route_to_matchit(route) == (pattern, None)


@pytest.mark.parametrize("route", ["files/<path:rest>/edit", "v<int:n>/", "x/<a>.<b>"])
def test_routes_that_fall_back(route: str) -> None:
    pattern, reason = route_to_matchit(route)
    assert pattern is None
    assert reason


def test_allowed_request_reaches_the_view_with_the_route() -> None:
    r = Client().get("/items/7/")
    assert r.status_code == 200
    assert r.json() == {"route": "/items/{pk}/", "claims": None, "pk": 7}


def test_denied_view_never_costs_the_rest_of_the_stack() -> None:
    r = Client().get("/admin/users/1")
    assert r.status_code == 403
    assert r["Content-Type"] == "application/problem+json"
    assert json.loads(r.content)["status"] == 403
    assert CALLS == {"middleware": 0, "views": 0}


def test_include_prefixes_compile() -> None:
    assert Client().get("/api/v1/ping/").json()["route"] == "/api/v1/ping/"
    reports = {r.endpoint: r for r in state.compiled().reports}
    assert reports["api-ping"].pattern == "/api/v1/ping/"


@pytest.mark.parametrize(
    ("regex", "endpoint", "route"),
    [
        ("^articles/$", True, "articles/"),
        ("^articles/(?P<pk>[^/.]+)/$", True, "articles/<pk>/"),
        ("^legacy/(?P<year>[0-9]{4})/$", True, "legacy/<year>/"),
        (r"^(?P<slug>[-\w]+)/\Z", True, "<slug>/"),
        ("^api/", False, "api/"),
        (r"^x\.json$", True, "x.json"),
    ],
)
def test_plain_regexes_compile(regex: str, endpoint: bool, route: str) -> None:
    assert regex_to_matchit(regex, endpoint=endpoint) == (route, None)


@pytest.mark.parametrize(
    ("regex", "why"),
    [
        ("^a/(?P<x>[^.]+)/$", "may match '/'"),
        ("^a/(?P<x>.+)/$", "more than literal"),
        (r"^v(?P<n>\d+)/$", "more than literal"),
        ("^a/(b|c)/$", "more than literal"),
        ("a/$", "not anchored"),
        ("^a/", "not anchored at the end"),
    ],
)
def test_other_regexes_fall_back(regex: str, why: str) -> None:
    pattern, reason = regex_to_matchit(regex, endpoint=True)
    assert pattern is None
    assert why in (reason or "")


def test_re_path_falls_back_to_process_view() -> None:
    reports = {r.endpoint: r for r in state.compiled().reports}
    # Both legacy regexes compile to /legacy/{...}/; they overlap, so both fall back and Django's
    # choice between them decides the policy.
    assert reports["legacy"].pattern is None
    assert reports["legacy-open"].pattern is None
    assert "overlaps" in (reports["legacy"].fallback_reason or "")
    client = Client()
    assert client.get("/legacy/2024/").status_code == 403
    assert CALLS["views"] == 0
    assert client.get("/legacy/news/").json()["slug"] == "news"


def test_class_based_view_with_method_decorator() -> None:
    assert Client().get("/secret/").status_code == 403
    assert Client().get("/open/").status_code == 200


def test_streaming_response_is_untouched() -> None:
    r = Client().get("/stream/")
    assert r.streaming
    assert b"".join(r.streaming_content) == b"a;b"  # type: ignore[arg-type]


JWT = {"jwt": {"algorithms": ["HS256"], "key": "django-test-secret-long-enough-for-hs256"}}


@override_settings(FERROGATE={**JWT, "defaults": {"access": "deny"}})
def test_settings_are_read_lazily() -> None:
    client = Client()
    assert client.get("/items/1/").status_code == 403
    assert client.get("/health/").status_code == 200, "exempt"
    # Unmatched paths get the defaults too (checked by process_view since the URLconf has fallbacks).
    assert client.get("/nowhere/").status_code in (403, 404)


def test_override_settings_rebuilds_the_gate() -> None:
    client = Client()
    assert client.get("/items/1/").status_code == 200
    with override_settings(FERROGATE={**JWT, "defaults": {"access": "deny"}}):
        assert client.get("/items/1/").status_code == 403
    assert client.get("/items/1/").status_code == 200


def test_async_client_and_async_views() -> None:
    async def scenario() -> None:
        client = AsyncClient()
        r = await client.get("/async/items/3/")
        assert r.status_code == 200
        assert r.json()["mode"] == "async"
        r = await client.get("/async/admin/")
        assert r.status_code == 403
        r = await client.get("/admin/x")
        assert r.status_code == 403
        r = await client.get("/legacy/1999/")
        assert r.status_code == 403

    async_to_sync(scenario)()


def test_middleware_declares_both_modes() -> None:
    from asgiref.sync import iscoroutinefunction
    from ferrogate.django import GateMiddleware

    assert GateMiddleware.sync_capable
    assert GateMiddleware.async_capable

    async def get_response(request: Any) -> Any:
        return None

    assert iscoroutinefunction(GateMiddleware(get_response))
    assert not iscoroutinefunction(GateMiddleware(lambda request: None))


def test_malformed_decorator_fails_at_import() -> None:
    with pytest.raises(ConfigError, match="my_view"):

        @policy(access="sometimes")
        def my_view(request: Any) -> None:
            pass


def test_system_checks_pass_on_a_good_project() -> None:
    call_command("check")


@override_settings(FERROGATE={**JWT, "defaults": {"access": "nope"}, "colour": 1})
def test_bad_config_is_e001() -> None:
    errors = checks.check_config()
    assert {e.id for e in errors} == {"ferrogate.E001"}
    assert len(errors) == 2
    assert all(isinstance(e, Error) for e in errors)
    with pytest.raises(SystemCheckError, match=r"ferrogate\.E001"):
        call_command("check")


@override_settings(FERROGATE={"routes": []})
def test_routes_in_settings_are_refused() -> None:
    [error] = checks.check_config()
    assert "routes come from the URLconf" in error.msg


@override_settings(MIDDLEWARE=["django.middleware.common.CommonMiddleware"])
def test_missing_middleware_is_e002() -> None:
    [error] = checks.check_middleware()
    assert error.id == "ferrogate.E002"


@override_settings(
    MIDDLEWARE=[
        "django.contrib.sessions.middleware.SessionMiddleware",
        "ferrogate.django.GateMiddleware",
    ]
)
def test_costly_middleware_first_is_w001() -> None:
    [warning] = checks.check_middleware()
    assert warning.id == "ferrogate.W001"
    assert isinstance(warning, Warning)


def _environ(path: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": io.StringIO(),
        "wsgi.url_scheme": "http",
    }


def _call(app: Any, path: str) -> tuple[str, bytes]:
    seen: dict[str, str] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen["status"] = status
        return lambda data: None

    body = b"".join(app(_environ(path), start_response))
    return seen["status"], body


# Django's WSGI handler closes stale DB connections on each request: a connection another test
# opened counts as database access.
@pytest.mark.django_db
def test_wsgi_fast_path_refuses_before_django() -> None:
    app = get_wsgi_application()
    status, _ = _call(app, "/admin/x")
    assert status == "403 Forbidden"
    assert CALLS == {"middleware": 0, "views": 0}
    status, body = _call(app, "/items/5/")
    assert status == "200 OK"
    assert json.loads(body)["route"] == "/items/{pk}/"
    assert CALLS == {"middleware": 1, "views": 1}


def test_limit_decorators() -> None:
    client = Client()
    assert client.get("/limited/").status_code == 200
    r = client.get("/limited/")
    assert r.status_code == 429
    assert int(r["Retry-After"]) >= 1
    assert json.loads(r.content)["status"] == 429


def test_callable_key_limit_runs_in_process_view() -> None:
    reports = {r.endpoint: r for r in state.compiled().reports}
    assert reports["per-user"].pattern is None
    client = Client()
    assert client.get("/per-user/", HTTP_X_USER="ann").status_code == 200
    assert client.get("/per-user/", HTTP_X_USER="ann").status_code == 429
    assert client.get("/per-user/", HTTP_X_USER="bob").status_code == 200
    assert client.get("/per-user/", HTTP_X_USER="ann", HTTP_X_FERROGATE_KEY_0="x").status_code == 429


# Django's WSGI handler closes stale DB connections on each request: a connection another test
# opened counts as database access.
@pytest.mark.django_db
def test_wsgi_fast_path_adds_gate_headers_once() -> None:
    app = get_wsgi_application()
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen["status"], seen["headers"] = status, headers
        return lambda data: None

    b"".join(app(_environ("/limited/"), start_response))
    assert seen["status"] == "200 OK"
    names = [k.lower() for k, _ in seen["headers"]]
    assert names.count("ratelimit") == 1
    assert names.count("ratelimit-policy") == 1
    b"".join(app(_environ("/limited/"), start_response))
    assert seen["status"].startswith("429")


def test_middleware_adds_gate_headers_without_fast_path() -> None:
    r = Client().get("/limited/")
    assert r.status_code == 200
    assert "ratelimit" in r.headers


def test_cache_decorator_through_the_middleware() -> None:
    c = Client()
    first = c.get("/cached/3/")
    assert first["Cache-Status"] == "ferrogate; fwd=miss; stored"
    second = c.get("/cached/3/")
    assert second["Cache-Status"].startswith("ferrogate; hit")
    assert second.json()["pk"] == 3
    assert CALLS["views"] == 1
    assert c.post("/cached/3/").status_code == 200
    assert c.get("/cached/3/")["Cache-Status"] == "ferrogate; fwd=miss; stored"


# Django's WSGI handler closes stale DB connections on each request: a connection another test
# opened counts as database access.
@pytest.mark.django_db
def test_cache_hits_skip_django_on_the_fast_path() -> None:
    app = get_wsgi_application()
    assert _call(app, "/cached/4/")[0] == "200 OK"
    assert _call(app, "/cached/4/")[0] == "200 OK"
    assert CALLS == {"middleware": 1, "views": 1}


def test_in_memory_limits_under_several_workers_is_a_deploy_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FERROGATE_WORKERS", "4")
    [warning] = checks.check_limiter_workers()
    assert warning.id == "ferrogate.W002"
    assert "4 " in warning.msg
    assert "worker processes" in warning.msg
    monkeypatch.setenv("FERROGATE_WORKERS", "1")
    assert checks.check_limiter_workers() == []


def test_ferrogate_routes_command_lists_every_pattern() -> None:
    import io
    import json as json_module

    from django.core.management import call_command

    out = io.StringIO()
    call_command("ferrogate_routes", stdout=out)
    text = out.getvalue()
    assert text.splitlines()[0].split() == ["methods", "rule", "endpoint", "enforced", "as", "policy"]
    assert "process_view (" in text  # the re_path routes are checked once Django resolved them
    out = io.StringIO()
    call_command("ferrogate_routes", "--json", stdout=out)
    rows = json_module.loads(out.getvalue())
    assert any(r["rule"] == "notes/" and "auth" in r["policy"] for r in rows)


def test_deploy_warning_recommends_the_host_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FERROGATE_WORKERS", "4")
    [warning] = checks.check_limiter_workers()
    assert 'FERROGATE["rate_limit"]["storage"] = "host"' in warning.hint
