"""Migrating from simplejwt + DRF throttling: keep simplejwt's token views, swap the authentication
and throttle classes by settings — and nothing gets less safe. Written with DRF's APIClient."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, override_settings
from ferrogate import encode
from ferrogate.django import reset, state
from rest_framework.test import APIClient

REST = {
    **settings.REST_FRAMEWORK,
    "DEFAULT_THROTTLE_CLASSES": [],
    "DEFAULT_THROTTLE_RATES": {"user": "3/min", "anon": "2/min", "burst": "2/min", "uploads": "1/min"},
}
MIGRATED = {
    "ROOT_URLCONF": "drf_migration_urls",
    "REST_FRAMEWORK": REST,
    "FERROGATE_USER_ID_CLAIM": "user_id",
    "FERROGATE_USER_LOADER": "ferrogate.django.users.model_user",
    # Tests only: a fast hasher for the users the token view signs in.
    "PASSWORD_HASHERS": ["django.contrib.auth.hashers.MD5PasswordHasher"],
}


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    state.reset()
    with override_settings(**MIGRATED):
        reset()
        yield
    state.reset()


def bearer(t: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {t}"}


def obtain(client: APIClient, username: str) -> dict[str, str]:
    r = client.post("/token/", {"username": username, "password": "pw-" + username}, format="json")
    assert r.status_code == 200, r.content
    return dict(r.json())


@pytest.fixture
def users(db: Any) -> dict[str, Any]:
    model = get_user_model()
    return {n: model.objects.create_user(n, password="pw-" + n) for n in ("ann", "bob")}


def test_simplejwt_access_tokens_authenticate_the_database_user(users: dict[str, Any]) -> None:
    c = APIClient()
    tokens = obtain(c, "ann")
    for url in ("/me/", "/gated-me/"):
        r = c.get(url, **bearer(tokens["access"]))
        assert r.status_code == 200, r.content
        assert r.json()["user"] == "User"
        assert r.json()["pk"] == users["ann"].pk
        assert r.json()["username"] == "ann"
        assert r.json()["auth_is_jwt_claims"] is True


@pytest.mark.parametrize("url", ["/me/", "/gated-me/"])
def test_a_simplejwt_refresh_token_is_not_an_access_token(users: dict[str, Any], url: str) -> None:
    c = APIClient()
    tokens = obtain(c, "ann")
    r = c.get(url, **bearer(tokens["refresh"]))
    assert r.status_code == 401
    # simplejwt's refresh view still works with its own tokens.
    assert c.post("/token/refresh/", {"refresh": tokens["refresh"]}, format="json").status_code == 200


@pytest.mark.parametrize("url", ["/me/", "/gated-me/"])
def test_deleted_and_inactive_users_are_401_as_in_simplejwt(users: dict[str, Any], url: str) -> None:
    c = APIClient()
    ann, bob = obtain(c, "ann")["access"], obtain(c, "bob")["access"]
    users["ann"].delete()
    r = c.get(url, **bearer(ann))
    assert r.status_code == 401
    if url == "/me/":
        assert r.json()["code"] == "user_not_found"
    users["bob"].is_active = False
    users["bob"].save()
    r = c.get(url, **bearer(bob))
    assert r.status_code == 401
    if url == "/me/":
        assert r.json()["code"] == "user_inactive"


def test_a_token_without_the_user_id_claim_never_authenticates(db: Any) -> None:
    t = encode({"sub": "ann", "exp": time.time() + 60, "token_type": "access"}, settings.JWT_SECRET, "HS256")
    r = APIClient().get("/me/", **bearer(t))
    assert r.status_code == 401
    assert r.json()["code"] == "token_not_valid"


def test_token_users_without_a_loader_have_their_own_ids_and_buckets(db: Any) -> None:
    def t(uid: Any) -> str:
        return encode({"user_id": uid, "exp": time.time() + 60}, settings.JWT_SECRET, "HS256")

    with override_settings(FERROGATE_USER_LOADER=None):
        c = APIClient()
        r = c.get("/me/", **bearer(t(7)))
        assert r.json()["user"] == "TokenUser"
        assert r.json()["pk"] == 7
        assert (
            c.get(
                "/me/", **bearer(encode({"exp": time.time() + 60}, settings.JWT_SECRET, "HS256"))
            ).status_code
            == 401
        )
        # burst is 2/min per user: each user has a bucket of their own, keyed by the id claim.
        assert [c.get("/burst/", **bearer(t(1))).status_code for _ in range(3)] == [200, 200, 429]
        assert c.get("/burst/", **bearer(t(2))).status_code == 200


def test_subclass_scopes_and_missing_rates_behave_as_in_drf(users: dict[str, Any]) -> None:
    c = APIClient()
    access = obtain(c, "ann")["access"]
    statuses = [c.get("/burst/", **bearer(access)).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    # "sustained" has no rate: DRF raises ImproperlyConfigured, so do we.
    with pytest.raises(ImproperlyConfigured, match="sustained"):
        c.get("/both/", **bearer(access))
    with pytest.raises(ImproperlyConfigured, match="upload"):
        APIClient().get("/typo/")
    # A view without throttle_scope is not throttled by ScopedRateThrottle.
    assert [APIClient().get("/unscoped/").status_code for _ in range(5)] == [200] * 5
    assert [APIClient().get("/uploads/").status_code for _ in range(2)] == [200, 429]


def test_anon_and_user_throttles_match_drfs_own_classes(users: dict[str, Any]) -> None:
    """The same traffic through DRF's classes and ours gives the same answers."""
    from django.core.cache import cache
    from drf_migration_urls import Public
    from ferrogate import drf
    from rest_framework import throttling

    access = obtain(APIClient(), "ann")["access"]

    # DRF's classes read their rates when first imported; give them this test's.
    class DrfAnon(throttling.AnonRateThrottle):
        THROTTLE_RATES = REST["DEFAULT_THROTTLE_RATES"]

    class DrfUser(throttling.UserRateThrottle):
        THROTTLE_RATES = REST["DEFAULT_THROTTLE_RATES"]

    def run(anon: Any, user: Any) -> list[int]:
        Public.throttle_classes = (anon, user)
        try:
            cache.clear()
            reset()
            c = APIClient()
            out = [c.get("/public/").status_code for _ in range(3)]
            return out + [c.get("/public/", **bearer(access)).status_code for _ in range(4)]
        finally:
            Public.throttle_classes = (drf.AnonRateThrottle, drf.UserRateThrottle)

    ours = run(drf.AnonRateThrottle, drf.UserRateThrottle)
    theirs = run(DrfAnon, DrfUser)
    assert ours == theirs == [200, 200, 429, 200, 200, 200, 429]


def test_throttling_off_by_setting_and_reset(users: dict[str, Any]) -> None:
    c = APIClient()
    access = obtain(c, "ann")["access"]
    with override_settings(FERROGATE_RATELIMIT_ENABLED=False):
        assert [c.get("/burst/", **bearer(access)).status_code for _ in range(4)] == [200] * 4
    assert [c.get("/burst/", **bearer(access)).status_code for _ in range(3)] == [200, 200, 429]
    reset()
    assert c.get("/burst/", **bearer(access)).status_code == 200


@override_settings(FERROGATE_USER_LOADER=None)
def test_issuing_tokens_in_django(db: Any) -> None:
    c = Client()
    access = c.get("/issue/").json()["access"]
    assert c.get("/notes/", **bearer(access)).json() == {"sub": "42"}
    from ferrogate.django import create_refresh_token, verify_refresh_token

    refresh = create_refresh_token("42")
    assert c.get("/notes/", **bearer(refresh)).status_code == 401
    assert verify_refresh_token(refresh)["sub"] == "42"


def test_on_refused_sees_django_refusals_once(db: Any) -> None:
    seen: list[tuple[int, str]] = []

    def hook(decision: Any, environ: dict[str, Any]) -> None:
        seen.append((decision.status, environ["PATH_INFO"]))

    with override_settings(FERROGATE_ON_REFUSED=hook):
        assert Client().get("/notes/").status_code == 401
        from ferrogate.django.wsgi import get_wsgi_application
        from werkzeug.test import Client as WsgiClient

        wsgi = WsgiClient(get_wsgi_application())
        assert wsgi.get("/notes/").status_code == 401
    assert seen == [(401, "/notes/"), (401, "/notes/")]


AUTH_MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "ferrogate.django.GateMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]


@override_settings(
    MIDDLEWARE=AUTH_MIDDLEWARE, INSTALLED_APPS=[*settings.INSTALLED_APPS, "django.contrib.sessions"]
)
def test_plain_views_see_the_tokens_user_after_authentication_middleware(users: dict[str, Any]) -> None:
    """Django's AuthenticationMiddleware runs after GateMiddleware's request phase and sets the
    session user: the token's user is attached in process_view, after it."""
    c = APIClient()
    ann = obtain(c, "ann")["access"]
    assert Client().get("/who-plain/", **bearer(ann)).json() == {"pk": users["ann"].pk, "authenticated": True}
    users["ann"].delete()
    r = Client().get("/who-plain/", **bearer(ann))
    assert r.status_code == 401
    assert 'error="invalid_token"' in r["WWW-Authenticate"]


@pytest.mark.parametrize("uid", [True, 1.0, 1.7, [1], {"id": 1}, ""])
def test_a_user_id_that_is_not_a_string_or_int_never_loads_a_user(users: dict[str, Any], uid: Any) -> None:
    t = encode({"user_id": uid, "exp": time.time() + 60}, settings.JWT_SECRET, "HS256")
    r = APIClient().get("/me/", **bearer(t))
    assert r.status_code == 401
    assert r.json()["code"] == "token_not_valid"


def test_issued_tokens_carry_the_user_id_claim_the_app_reads(users: dict[str, Any]) -> None:
    from ferrogate.django import create_access_token

    t = create_access_token(users["ann"].pk)
    assert APIClient().get("/me/", **bearer(t)).json()["pk"] == users["ann"].pk


@override_settings(
    REST_FRAMEWORK={**REST, "DEFAULT_THROTTLE_RATES": {**REST["DEFAULT_THROTTLE_RATES"], "unlimited": None}}
)
def test_throttle_rate_attribute_and_none_rates_as_in_drf(users: dict[str, Any]) -> None:
    c = APIClient()
    access = obtain(c, "ann")["access"]
    assert [c.get("/own-rate/", **bearer(access)).status_code for _ in range(3)] == [200, 200, 429]
    assert {APIClient().get("/none-rate/").status_code for _ in range(5)} == {200}
    from ferrogate.drf import UserRateThrottle

    class Neither(UserRateThrottle):
        scope = None  # type: ignore[assignment]

    with pytest.raises(ImproperlyConfigured, match="scope"):
        Neither()


def test_two_limits_send_both_ratelimit_items(db: Any) -> None:
    r = Client().get("/two-limits/")
    assert r.status_code == 200
    assert len(r["RateLimit-Policy"].split(", ")) == 2
    assert len(r["RateLimit"].split(", ")) == 2
