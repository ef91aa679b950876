"""Auth in Django: the @auth decorator, request.jwt_claims, async views, the user loader, and the
DRF classes (JWTAuthentication, GateThrottle) with DRF's APIClient."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.test import AsyncClient, Client, override_settings
from ferrogate import encode
from ferrogate.django import state
from ferrogate.drf import GateThrottle, _limiters, drf_rate_to_quota
from rest_framework.test import APIClient


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    state.reset()
    _limiters.clear()
    yield
    state.reset()


def token(**claims: Any) -> str:
    claims.setdefault("sub", "ann")
    claims.setdefault("exp", time.time() + 300)
    return encode(claims, settings.JWT_SECRET, "HS256")


def test_auth_decorator_401_403_200() -> None:
    c = Client()
    r = c.get("/notes/")
    assert r.status_code == 401
    assert r["WWW-Authenticate"] == 'Bearer realm="django-tests"'
    r = c.get("/notes/", HTTP_AUTHORIZATION=f"Bearer {token(scope='other')}")
    assert r.status_code == 403
    assert 'error="insufficient_scope"' in r["WWW-Authenticate"]
    r = c.get("/notes/", HTTP_AUTHORIZATION=f"Bearer {token(scope='notes:read')}")
    assert r.status_code == 200
    assert r.json()["claims"]["sub"] == "ann"


def test_options_needs_the_token_unless_exempted() -> None:
    """``@auth`` without ``exempt_methods``: OPTIONS needs the token like GET (a preflight is
    answered by django-cors-headers placed before the gate, or with ``exempt_methods``)."""
    c = Client()
    r = c.options("/notes/", HTTP_ORIGIN="https://app.example", HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET")
    assert r.status_code == 401
    assert c.get("/notes/").status_code == 401


def test_optional_auth_in_an_async_view() -> None:
    async def scenario() -> None:
        c = AsyncClient()
        assert (await c.get("/whoami/")).json() == {"sub": None}
        r = await c.get("/whoami/", headers={"Authorization": f"Bearer {token(sub='bob')}"})
        assert r.json() == {"sub": "bob"}
        r = await c.get("/whoami/", headers={"Authorization": "Bearer not.a.token"})
        assert r.status_code == 401

    async_to_sync(scenario)()


class Loaded:
    calls = 0

    def __init__(self, sub: str) -> None:
        self.sub = sub
        self.is_authenticated = True
        self.pk = sub


def loader(claims: dict[str, Any]) -> Loaded:
    Loaded.calls += 1
    return Loaded(claims["sub"])


@override_settings(FERROGATE_USER_LOADER="test_django_auth.loader")
def test_user_loader_runs_once_per_request_before_the_view() -> None:
    """Eager, as simplejwt: a user the loader cannot find is refused before the view runs; DRF
    reuses the user the middleware loaded."""
    Loaded.calls = 0
    c = Client()
    assert c.get("/notes/", HTTP_AUTHORIZATION=f"Bearer {token(scope='notes:read')}").status_code == 200
    assert Loaded.calls == 1
    r = APIClient().get("/drf/notes/", HTTP_AUTHORIZATION=f"Bearer {token()}")
    assert r.status_code == 200
    assert Loaded.calls == 2
    # No token, no load.
    assert c.get("/whoami/").status_code == 200
    assert Loaded.calls == 2


def test_drf_authentication_and_header() -> None:
    client = APIClient()
    r = client.get("/drf/notes/")
    assert r.status_code == 401
    assert r["WWW-Authenticate"] == 'Bearer realm="django-tests"'
    r = client.get("/drf/notes/", HTTP_AUTHORIZATION="Bearer garbage")
    assert r.status_code == 401
    t = token(sub="carol", roles=["x"])
    r = client.get("/drf/notes/", HTTP_AUTHORIZATION=f"Bearer {t}")
    assert r.status_code == 200
    assert r.json()["user"] == "TokenUser carol"
    assert r.json()["auth"]["roles"] == ["x"]


def test_drf_throttle_user_scope_and_wait() -> None:
    client = APIClient()
    h = {"HTTP_AUTHORIZATION": f"Bearer {token(sub='dave')}"}
    for _ in range(3):
        assert client.get("/drf/notes/", **h).status_code == 200
    r = client.get("/drf/notes/", **h)
    assert r.status_code == 429
    assert 0 < int(r["Retry-After"]) <= 20
    # Another user has their own bucket.
    assert client.get("/drf/notes/", HTTP_AUTHORIZATION=f"Bearer {token(sub='erin')}").status_code == 200


def test_drf_throttle_scope_from_the_view() -> None:
    client = APIClient()
    h = {"HTTP_AUTHORIZATION": f"Bearer {token(sub='fay')}"}
    assert client.get("/drf/burst/", **h).status_code == 200
    assert client.get("/drf/burst/", **h).status_code == 429


def test_drf_rates() -> None:
    assert drf_rate_to_quota("100/day") == "100/day"
    assert drf_rate_to_quota("5/min") == "5/minute"
    assert drf_rate_to_quota("10/s") == "10/second"
    assert drf_rate_to_quota("7/hours") == "7/hour"
    from ferrogate import ConfigError

    for bad in ("x/day", "5/fortnight", "5", "5/"):
        with pytest.raises(ConfigError):
            drf_rate_to_quota(bad)
    assert GateThrottle().wait() is None


def _revocation_settings(url: str, on_error: str = "allow") -> dict[str, Any]:
    return {
        **settings.FERROGATE,
        "jwt": {**settings.FERROGATE["jwt"], "revocation": {"store": "redis", "on_error": on_error}},
        "redis": {"url": url, "timeout_ms": 200, "breaker_cooldown_ms": 100},
    }


def test_drf_refuses_revoked_tokens(redis_server: Any) -> None:
    import ferrogate.django

    with override_settings(FERROGATE=_revocation_settings(redis_server.url)):
        state.reset()
        client = APIClient()
        t = token(sub="dora", jti="drf-1")
        assert client.get("/drf/notes/", HTTP_AUTHORIZATION=f"Bearer {t}").status_code == 200
        assert ferrogate.django.revoke_token(t) == "drf-1"
        r = client.get("/drf/notes/", HTTP_AUTHORIZATION=f"Bearer {t}")
        assert r.status_code == 401
        assert "revoked" in r.json()["detail"]
        ferrogate.django.revoke_subject("erin")
        r = client.get("/drf/notes/", HTTP_AUTHORIZATION=f"Bearer {token(sub='erin', iat=time.time() - 5)}")
        assert r.status_code == 401


def test_drf_answers_503_when_revocation_cannot_be_checked(own_redis: Any) -> None:
    with override_settings(FERROGATE=_revocation_settings(own_redis.url, on_error="deny")):
        state.reset()
        client = APIClient()
        h = {"HTTP_AUTHORIZATION": f"Bearer {token(jti='drf-2')}"}
        assert client.get("/drf/notes/", **h).status_code == 200
        own_redis.stop()
        deadline = time.monotonic() + 10
        while (r := client.get("/drf/notes/", **h)).status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert r.status_code == 503


def test_drf_throttle_counts_in_the_host_file(tmp_path: Any) -> None:
    path = tmp_path / "drf.mdb"
    host = {**settings.FERROGATE, "rate_limit": {"storage": "host", "host_path": str(path)}}
    client = APIClient()
    h = {"HTTP_AUTHORIZATION": f"Bearer {token(sub='hana')}"}
    with override_settings(FERROGATE=host):
        for _ in range(3):
            assert client.get("/drf/notes/", **h).status_code == 200
        assert client.get("/drf/notes/", **h).status_code == 429
        assert {lim.storage for lim in _limiters.values()} == {"host"}
        # Another worker process would open the same file: a fresh limiter on it sees the count.
        _limiters.clear()
        assert client.get("/drf/notes/", **h).status_code == 429
    assert path.exists()
