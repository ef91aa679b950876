"""Cache keys that must not merge what the app can tell apart: the Host (virtual hosts, absolute
URLs), proxy forwarding headers, and the token's issuer next to its subject."""

from __future__ import annotations

import time
from typing import Any

import pytest
from ferrogate import ConfigError, Gate, encode
from flask import Flask, request, url_for
from flask.testing import FlaskClient
from werkzeug.middleware.proxy_fix import ProxyFix

SECRET = "cache-test-secret-long-enough-for-hs256"


def client(config: dict[str, Any], app: Flask) -> tuple[Gate, FlaskClient]:
    gate = Gate(config)
    app.wsgi_app = gate.wsgi(app.wsgi_app)  # type: ignore[method-assign]
    return gate, app.test_client()


def test_virtual_hosts_have_their_own_entries() -> None:
    app = Flask(__name__)

    @app.get("/data")
    def data() -> Any:
        return {"tenant": request.host}

    _, c = client({"routes": [{"path": "/data", "cache": 60}]}, app)
    assert c.get("/data", base_url="http://a.example").json == {"tenant": "a.example"}
    b = c.get("/data", base_url="http://b.example")
    assert b.json == {"tenant": "b.example"}
    assert b.headers["Cache-Status"] == "ferrogate; fwd=miss; stored"
    again = c.get("/data", base_url="http://a.example")
    assert again.json == {"tenant": "a.example"}
    assert again.headers["Cache-Status"].startswith("ferrogate; hit")


def test_a_forged_host_cannot_poison_absolute_urls() -> None:
    app = Flask(__name__)

    @app.get("/links")
    def links() -> Any:
        return {"self": url_for("links", _external=True)}

    _, c = client({"routes": [{"path": "/links", "cache": 60}]}, app)
    c.get("/links", base_url="http://evil.example")
    assert c.get("/links", base_url="http://api.example.com").json == {"self": "http://api.example.com/links"}


def test_the_scheme_the_server_received_is_keyed() -> None:
    """GET http://api.example.com/links, then the same over https (a server answering both, such as
    uWSGI behind nginx, says so in ``wsgi.url_scheme``, not in a header): the https client is not
    served links that say http."""
    app = Flask(__name__)

    @app.get("/links")
    def links() -> Any:
        return {"self": url_for("links", _external=True)}

    _, c = client({"routes": [{"path": "/links", "cache": 60}]}, app)
    c.get("/links", base_url="http://api.example.com")
    secure = c.get("/links", base_url="https://api.example.com")
    assert secure.json == {"self": "https://api.example.com/links"}
    assert (
        c.get("/links", base_url="https://api.example.com")
        .headers["Cache-Status"]
        .startswith("ferrogate; hit")
    )


def test_proxy_fix_prefix_and_proto_are_keyed() -> None:
    app = Flask(__name__)

    @app.get("/links")
    def links() -> Any:
        return {"self": url_for("links", _external=True)}

    app.wsgi_app = ProxyFix(app.wsgi_app, x_prefix=1, x_proto=1)  # type: ignore[method-assign]
    _, c = client({"routes": [{"path": "/links", "cache": 60}]}, app)
    c.get("/links", headers={"X-Forwarded-Prefix": "/evil", "X-Forwarded-Proto": "https"})
    assert c.get("/links").json == {"self": "http://localhost/links"}


def test_a_proxy_that_always_sets_forwarding_headers_still_gets_a_cache() -> None:
    app = Flask(__name__)
    calls: list[int] = []

    @app.get("/a")
    def a() -> str:
        calls.append(1)
        return "a"

    _, c = client({"routes": [{"path": "/a", "cache": 60}]}, app)
    h = {"X-Forwarded-Host": "api.example.com", "X-Forwarded-Proto": "https"}
    c.get("/a", headers=h)
    assert c.get("/a", headers=h).headers["Cache-Status"].startswith("ferrogate; hit")
    assert len(calls) == 1


def tok(sub: Any, **claims: Any) -> str:
    return encode({"sub": sub, "exp": time.time() + 300, **claims}, SECRET, "HS256")


def me_app() -> Flask:
    app = Flask(__name__)

    @app.get("/me")
    def me() -> Any:
        c = request.environ["ferrogate.claims"]
        return {k: c.get(k) for k in ("iss", "sub", "tid")}

    return app


def test_same_subject_from_two_issuers_is_two_users() -> None:
    cfg = {
        "jwt": {"algorithms": ["HS256"], "key": SECRET, "issuer": ["https://a", "https://b"]},
        "routes": [{"path": "/me", "auth": "required", "cache": 60}],
    }
    _, c = client(cfg, me_app())
    a = c.get("/me", headers={"Authorization": f"Bearer {tok('alice', iss='https://a')}"})
    b = c.get("/me", headers={"Authorization": f"Bearer {tok('alice', iss='https://b')}"})
    assert a.json["iss"] == "https://a"
    assert b.json["iss"] == "https://b"
    assert b.headers["Cache-Status"] == "ferrogate; fwd=miss; stored"


def test_principal_claims_are_configurable() -> None:
    cfg = {
        "jwt": {"algorithms": ["HS256"], "key": SECRET},
        "cache": {"principal_claims": ["tid", "sub"]},
        "routes": [{"path": "/me", "auth": "required", "cache": 60}],
    }
    _, c = client(cfg, me_app())
    t1 = c.get("/me", headers={"Authorization": f"Bearer {tok('u1', tid='t1')}"})
    t2 = c.get("/me", headers={"Authorization": f"Bearer {tok('u1', tid='t2')}"})
    assert (t1.json["tid"], t2.json["tid"]) == ("t1", "t2")
    hit = c.get("/me", headers={"Authorization": f"Bearer {tok('u1', tid='t1')}"})
    assert hit.headers["Cache-Status"].startswith("ferrogate; hit")
    assert hit.json["tid"] == "t1"
    # A token without one of the claims is not a principal: with Authorization, it bypasses.
    no_tid = c.get("/me", headers={"Authorization": f"Bearer {tok('u1')}"})
    assert no_tid.headers["Cache-Status"] == "ferrogate; fwd=bypass; detail=authorization"


def test_claim_values_keep_their_json_type() -> None:
    cfg = {
        "jwt": {"algorithms": ["HS256"], "key": SECRET},
        "cache": {"principal_claims": ["sub", "tid"]},
        "routes": [{"path": "/me", "auth": "required", "cache": 60}],
    }
    _, c = client(cfg, me_app())
    c.get("/me", headers={"Authorization": f"Bearer {tok('u', tid='7')}"})
    r = c.get("/me", headers={"Authorization": f"Bearer {tok('u', tid=7)}"})
    assert r.json["tid"] == 7


def test_principal_claims_config_errors() -> None:
    with pytest.raises(ConfigError) as exc:
        Gate({"cache": {"principal_claims": []}})
    assert [k for k, _ in exc.value.issues] == ["cache.principal_claims"]
