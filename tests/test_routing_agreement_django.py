"""The policy enforced is the policy of the Django view that runs (issue 19), tried as an attacker.

The URLconf (tests/agreement_urls.py) holds each shape where the gate's router and Django's
resolver used to disagree; each test sends the request that used to reach a view under another
view's policy.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from agreement_urls import RAN
from django.conf import settings
from django.test import Client, override_settings
from ferrogate import encode
from ferrogate.django import state

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "agreement_urls.TenantMiddleware",
    "ferrogate.django.GateMiddleware",
]


@pytest.fixture(autouse=True)
def agreement_urls() -> Iterator[None]:
    with override_settings(ROOT_URLCONF="agreement_urls", MIDDLEWARE=MIDDLEWARE):
        RAN.clear()
        yield


def bearer(*scopes: str) -> str:
    t = encode(
        {"sub": "ann", "scope": " ".join(scopes), "exp": time.time() + 300}, settings.JWT_SECRET, "HS256"
    )
    return f"Bearer {t}"


def test_double_slash_reaches_the_view_django_resolves_under_its_policy() -> None:
    client = Client()
    assert client.get("/docs/help//x").status_code == 401
    assert RAN == []
    assert client.get("/docs/help//x", HTTP_AUTHORIZATION=bearer("staff")).json()["view"] == "docs_all"
    # Nothing the protected view answered was stored under the open view's key.
    assert client.get("/docs/help/x").json() == {"view": "docs_help", "topic": "x"}


def test_a_custom_converter_that_matches_slashes_keeps_its_policy() -> None:
    client = Client()
    assert client.get("/files/a/b").status_code == 403
    assert client.get("/raw/a/b").status_code == 403
    assert RAN == []


def test_urlconf_order_decides_as_in_django() -> None:
    reports = {r.endpoint: r for r in state.compiled().reports}
    assert reports["article_new"].pattern is None
    assert "earlier route" in (reports["article_new"].fallback_reason or "")
    assert Client().get("/articles/new/").status_code == 403
    assert RAN == []


def test_an_order_conflict_keeps_the_earlier_route_on_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # Only the later route leaves the router: the router then picks the earlier one for every
    # path both match, as Django does, and an allowed request never pays for a resolve().
    import django.urls

    with override_settings(ROOT_URLCONF="order_urls", MIDDLEWARE=["ferrogate.django.GateMiddleware"]):
        state.reset()
        reports = {r.endpoint: r for r in state.compiled().reports}
        assert reports["article"].pattern == "/articles/{slug}/"
        assert reports["article-new"].pattern is None
        assert "earlier route" in (reports["article-new"].fallback_reason or "")
        assert reports["article-feed"].pattern == "/articles/{slug}/feed/"
        asked: list[str] = []
        real = django.urls.resolve
        monkeypatch.setattr(django.urls, "resolve", lambda p, *a: asked.append(p) or real(p, *a))
        client = Client()
        # Django runs `article` (it comes first), whose policy needs a token.
        assert client.get("/articles/new/").status_code == 401
        asked.clear()
        r = client.get("/articles/new/", HTTP_AUTHORIZATION=bearer())
        assert r.json() == {"view": "article", "slug": "new"}
        assert client.get("/articles/x/", HTTP_AUTHORIZATION=bearer()).json()["view"] == "article"
        assert [client.get("/articles/new/feed/").status_code for _ in range(3)] == [200, 200, 429]
        assert asked == []
    state.reset()


def test_per_request_urlconf_views_get_their_policy_or_fail_closed() -> None:
    client = Client()
    assert client.get("/shared/").json()["view"] == "shared_main"
    r = client.get("/shared/", HTTP_X_TENANT="t1")
    assert r.status_code == 403
    assert RAN == ["shared_main"]
    # A view without a policy there gets the defaults.
    assert client.get("/plain/", HTTP_X_TENANT="t1").json()["view"] == "tenant_plain"


def test_cache_on_a_fallback_route_is_keyed_by_the_real_path() -> None:
    client = Client()
    assert client.get("/blob/report.pdf").json()["name"] == "report"
    assert client.get("/blob/passwords.txt").json()["name"] == "passwords"
    r = client.get("/blob/report.pdf")
    assert r.json()["name"] == "report"
    assert r.headers["Cache-Status"].startswith("ferrogate; hit")
    assert RAN == ["blob", "blob"]


def test_method_case_is_read_as_django_reads_it() -> None:
    with override_settings(FERROGATE={**settings.FERROGATE, "defaults": {"access": "allow"}}):
        client = Client()
        r = client.generic("delete", "/files/a/b")
        assert r.status_code == 403
    assert RAN == []


# Django's WSGI handler closes stale DB connections on each request: one another test opened
# counts as database access.
@pytest.mark.django_db
@pytest.mark.parametrize("fast_path", [False, True], ids=["middleware", "wsgi-fast-path"])
def test_a_parameter_the_converter_refuses_never_counts_under_its_route(fast_path: bool) -> None:
    with override_settings(ROOT_URLCONF="shape_urls", MIDDLEWARE=["ferrogate.django.GateMiddleware"]):
        state.reset()
        if fast_path:
            from ferrogate.django.wsgi import get_wsgi_application
            from werkzeug.test import Client as WsgiClient

            client: object = WsgiClient(get_wsgi_application())
        else:
            client = Client()

        def get(p: str) -> tuple[int, dict[str, object], str]:
            r = client.get(p)  # type: ignore[attr-defined]
            body = r.json() if callable(getattr(r, "json", None)) else r.json
            return r.status_code, body, r.headers["RateLimit"]

        for _ in range(5):
            status, body, rl = get("/items/abc/")
            assert (status, body) == (200, {"rest": "items/abc/"})
            assert rl.startswith('"catch"')
        status, body, rl = get("/items/7/")
        assert body == {"pk": 7}
        assert rl.startswith('"by-pk";r=2')


@pytest.mark.parametrize("route", ["\x00/<x>", "a/../<x>", "a/./b"])
def test_a_route_the_router_cannot_hold_is_checked_at_dispatch(route: str) -> None:
    from ferrogate.django.urls import route_to_matchit

    pattern, reason = route_to_matchit(route)
    assert pattern is None
    assert reason in ("a control character in the route", "a '.' or '..' segment in the route")


def test_a_converter_whose_regex_spans_a_slash_is_never_one_segment() -> None:
    # "[0-9]{4}/[0-9]{2}" matches "2024/05": compiled as one segment, the gate's router would give
    # /archive/2024/05/ to `post` and refuse Django's open `month` view under post's limit.
    import span_urls

    with override_settings(ROOT_URLCONF="span_urls", MIDDLEWARE=["ferrogate.django.GateMiddleware"]):
        state.reset()
        span_urls.RAN.clear()
        reports = {r.endpoint: r for r in state.compiled().reports}
        assert reports["month"].pattern is None
        client = Client()
        assert [client.get("/archive/2024/05/").status_code for _ in range(3)] == [200, 200, 200]
        assert span_urls.RAN == ["month"] * 3
    state.reset()


@pytest.mark.parametrize(
    ("regex", "spans"),
    [
        ("[^/]+", False),
        ("[0-9]+", False),
        ("[-a-zA-Z0-9_]+", False),
        (r"[^/\d]+", False),
        ("[0-9]{4}/[0-9]{2}", True),
        (".+", True),
        (r"[\S]+", True),
        (r"\W+", True),
        ("[^a]+", True),
        ("[!-0]+", True),
        ("a|/", True),
        ("(", True),  # unreadable: treated as spanning
    ],
)
def test_whether_a_converter_spans_a_slash_is_read_from_its_regex(regex: str, spans: bool) -> None:
    from ferrogate.django.urls import regex_may_match_slash

    assert regex_may_match_slash(regex) is spans


def test_a_catch_all_before_its_root_never_counts_the_root() -> None:
    # `docs/<path:page>` never matches "/docs/" in Django: `docs/` is no order conflict and
    # stays on the router, where its exact pattern takes the root from the catch-all.
    with override_settings(ROOT_URLCONF="catchall_root_urls", MIDDLEWARE=["ferrogate.django.GateMiddleware"]):
        state.reset()
        reports = {r.endpoint: r for r in state.compiled().reports}
        assert reports["docs-index"].pattern == "/docs/"
        client = Client()
        for _ in range(3):
            assert client.get("/docs/").json() == {"view": "docs_index"}
        assert [client.get("/docs/guide").status_code for _ in range(3)] == [200, 200, 429]
    state.reset()


@pytest.mark.django_db
@pytest.mark.parametrize("fast_path", [False, True], ids=["middleware", "wsgi-fast-path"])
def test_an_int_too_long_for_python_never_counts_under_the_int_route(fast_path: bool) -> None:
    # Django's int converter is int(value), which raises past sys.get_int_max_str_digits():
    # Django runs `pair`, and `item`'s limit must neither refuse it nor be spent by it.
    import long_int_urls

    with override_settings(ROOT_URLCONF="long_int_urls", MIDDLEWARE=["ferrogate.django.GateMiddleware"]):
        state.reset()
        long_int_urls.RAN.clear()
        if fast_path:
            from ferrogate.django.wsgi import get_wsgi_application
            from werkzeug.test import Client as WsgiClient

            client: object = WsgiClient(get_wsgi_application())
        else:
            client = Client()
        long_id = "1" * 5000
        codes = [client.get(f"/items/{long_id}/").status_code for _ in range(3)]  # type: ignore[attr-defined]
        assert codes == [200, 200, 200]
        assert long_int_urls.RAN == ["pair"] * 3
        assert client.get("/items/5/").status_code == 200  # type: ignore[attr-defined]
        assert long_int_urls.RAN[-1] == "item"
    state.reset()
