"""Hostile inputs against the DRF classes: spoofed client addresses, tokens that name the user
in `user_id`, and Redis reached with the gate's own settings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings
from ferrogate.django import reset, state
from rest_framework.test import APIClient
from test_redis_topologies import tls_server  # noqa: F401 - the TLS redis-server fixture

REST = {
    **settings.REST_FRAMEWORK,
    "DEFAULT_THROTTLE_CLASSES": [],
    "DEFAULT_THROTTLE_RATES": {"user": "3/min", "anon": "2/min", "burst": "2/min", "uploads": "1/min"},
}


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    state.reset()
    with override_settings(ROOT_URLCONF="drf_migration_urls", REST_FRAMEWORK=REST):
        reset()
        yield
    state.reset()


def test_anon_throttle_is_not_dodged_by_a_spoofed_x_forwarded_for(db: Any) -> None:
    """No proxy configured (DRF's NUM_PROXIES unset, no client_ip section): the client is the peer
    (docs/security.md guarantee 5), so a new X-Forwarded-For per request is not a new bucket."""
    c = APIClient()
    statuses = [c.get("/public/", HTTP_X_FORWARDED_FOR=f"203.0.113.{i}").status_code for i in range(4)]
    assert statuses == [200, 200, 429, 429]


def test_anon_throttle_keys_an_ipv6_client_by_its_64(db: Any) -> None:
    """One IPv6 host holds a whole /64: rotating the interface id is not a new bucket (as the
    gate's own limits, ``ipv6_prefix = 64``)."""
    c = APIClient()
    statuses = [c.get("/public/", REMOTE_ADDR=f"2001:db8:1:2::{i:x}").status_code for i in range(1, 5)]
    assert statuses == [200, 200, 429, 429]
    # IPv4-mapped IPv6 is the IPv4 address.
    c.get("/public/", REMOTE_ADDR="198.51.100.7")
    c.get("/public/", REMOTE_ADDR="198.51.100.7")
    assert c.get("/public/", REMOTE_ADDR="::ffff:198.51.100.7").status_code == 429


def test_anon_throttle_reads_a_trusted_proxys_header_as_the_gate_does(db: Any) -> None:
    config = {**settings.FERROGATE, "client_ip": {"trusted_proxies": ["10.0.0.0/8"]}}
    with override_settings(FERROGATE=config):
        reset()
        c = APIClient()

        def via_proxy(xff: str) -> int:
            return int(c.get("/public/", REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR=xff).status_code)

        # The client's own words left of the proxy's entry do not count.
        assert [via_proxy(f"198.51.100.{i}, 203.0.113.9") for i in range(3)] == [200, 200, 429]
        assert via_proxy("203.0.113.10") == 200
        # A peer that is not a trusted proxy is the client, whatever the header says.
        assert [
            c.get("/public/", REMOTE_ADDR="192.0.2.1", HTTP_X_FORWARDED_FOR=f"203.0.113.{i}").status_code
            for i in range(20, 23)
        ] == [200, 200, 429]


def test_num_proxies_still_applies_drfs_reading(db: Any) -> None:
    with override_settings(REST_FRAMEWORK={**REST, "NUM_PROXIES": 1}):
        c = APIClient()
        assert [c.get("/public/", HTTP_X_FORWARDED_FOR=f"203.0.113.{i}").status_code for i in range(3)] == [
            200
        ] * 3


@pytest.mark.xfail(
    strict=True,
    reason="revocation by subject reads only `sub`; simplejwt's tokens name the user in "
    "FERROGATE_USER_ID_CLAIM (`user_id`), so revoke_subject(user.pk) revokes none of them",
)
def test_revoke_subject_reaches_tokens_that_name_the_user_in_user_id(redis_server: Any) -> None:
    """A simplejwt-style access token (user_id, jti, no sub), accepted by the DRF class under
    FERROGATE_USER_ID_CLAIM = "user_id", must be refused after ferrogate.django.revoke_subject of
    that user ("log out everywhere")."""
    import time

    import ferrogate.django
    from ferrogate import encode

    config = {
        **settings.FERROGATE,
        "jwt": {**settings.FERROGATE["jwt"], "revocation": {"store": "redis"}},
        "redis": {"url": redis_server.url, "timeout_ms": 200},
    }
    with override_settings(
        ROOT_URLCONF="django_project.urls", FERROGATE=config, FERROGATE_USER_ID_CLAIM="user_id"
    ):
        state.reset()
        now = time.time()
        claims = {
            "user_id": 42,
            "jti": "simplejwt-1",
            "token_type": "access",
            "iat": now - 60,
            "exp": now + 300,
        }
        t = encode(claims, settings.JWT_SECRET, "HS256")
        h = {"HTTP_AUTHORIZATION": f"Bearer {t}"}
        assert APIClient().get("/drf/notes/", **h).status_code == 200
        ferrogate.django.revoke_subject("42")
        assert APIClient().get("/drf/notes/", **h).status_code == 401


def test_drf_throttles_reach_redis_with_the_gates_redis_settings(
    tls_server: tuple[int, Path],  # noqa: F811 - the fixture imported above
) -> None:
    """[redis] with TLS to a private CA: the gate's limits reach Redis, and so must the DRF
    throttles, which count "where the gate's rate limits do". With only the URL they failed the
    handshake on every request and fell to on_error: with "local", per-process counts (the
    quota times the workers); with "deny", every request throttled."""
    import time

    from ferrogate import encode

    port, d = tls_server
    config = {
        **settings.FERROGATE,
        "redis": {"url": f"rediss://localhost:{port}/0", "tls_ca_file": str(d / "ca.pem")},
        "rate_limit": {"storage": "redis", "on_error": "deny"},
    }
    t = encode({"sub": "tess", "exp": time.time() + 300}, settings.JWT_SECRET, "HS256")
    from django_project.views import BurstView
    from ferrogate.drf import GateThrottle

    with override_settings(ROOT_URLCONF="django_project.urls", FERROGATE=config):
        state.reset()
        saved, BurstView.throttle_classes = BurstView.throttle_classes, (GateThrottle,)
        try:
            c = APIClient()
            statuses = [c.get("/drf/burst/", HTTP_AUTHORIZATION=f"Bearer {t}").status_code for _ in range(3)]
        finally:
            BurstView.throttle_classes = saved
        assert statuses == [200, 200, 429]
