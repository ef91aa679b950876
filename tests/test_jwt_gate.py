"""Auth in the gate: 401/403 the RFC 6750 way, token locations, scopes, claims, and the claims
reaching the app, through the WSGI middleware in front of a real Flask app."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from ferrogate import ConfigError, Gate, encode
from flask import Flask, request
from jwt_keys import rsa_pair

SECRET = "gate-test-secret-long-enough-for-hs256"


def token(secret: str = SECRET, alg: str = "HS256", **claims: Any) -> str:
    claims.setdefault("exp", time.time() + 300)
    claims.setdefault("sub", "user-1")
    return encode(claims, secret, alg)


CONFIG: dict[str, Any] = {
    "jwt": {"algorithms": ["HS256"], "key": SECRET, "issuer": "me", "realm": "articles"},
    "defaults": {"auth": "none"},
    "routes": [
        {"path": "/public"},
        {"path": "/me", "auth": "required"},
        {"path": "/maybe", "auth": "optional"},
        {"path": "/write", "auth": {"scopes": ["articles:write"]}},
        {"path": "/admin", "auth": {"claims": {"roles": {"contains": ["admin"]}, "email_verified": True}}},
        {"path": "/cookie", "auth": {"locations": ["cookie:session"]}},
        {"path": "/query", "auth": {"locations": ["header", "query:access_token"]}},
        {"path": "/limited", "auth": "required", "limit": {"quota": "2/minute", "key": "sub"}},
    ],
}


@pytest.fixture
def client() -> Any:
    app = Flask(__name__)

    @app.route("/<path:p>")
    def anything(p: str) -> Any:
        return {"path": p, "claims": request.environ.get("ferrogate.claims")}

    app.wsgi_app = Gate(CONFIG).wsgi(app.wsgi_app)  # type: ignore[method-assign]
    return app.test_client()


def bearer(t: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {t}"}


def test_required_without_a_token_is_401_without_error_code(client: Any) -> None:
    r = client.get("/me")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="articles"'
    assert r.mimetype == "application/problem+json"


def test_valid_token_reaches_the_app_with_its_claims(client: Any) -> None:
    t = token(iss="me", name="Ann")
    r = client.get("/me", headers=bearer(t))
    assert r.status_code == 200
    assert r.json["claims"]["name"] == "Ann"
    assert r.json["claims"]["sub"] == "user-1"


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "bearer    TOKEN"},
        {"Authorization": "BEARER TOKEN"},
        {"Authorization": "Bearer TOKEN"},
    ],
)
def test_scheme_is_case_insensitive_and_spaces_are_allowed(client: Any, headers: dict[str, str]) -> None:
    t = token(iss="me")
    h = {k: v.replace("TOKEN", t) for k, v in headers.items()}
    assert client.get("/me", headers=h).status_code == 200


@pytest.mark.parametrize(
    "t",
    [
        "garbage",
        token(secret="other", iss="me"),
        token(iss="someone-else"),
        token(iss="me", exp=time.time() - 1),
    ],
)
def test_bad_tokens_are_401_invalid_token_and_never_echoed(client: Any, t: str) -> None:
    r = client.get("/me", headers=bearer(t))
    assert r.status_code == 401
    challenge = r.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="articles", error="invalid_token", error_description="')
    assert t not in r.get_data(as_text=True)
    assert t not in challenge


@pytest.mark.parametrize("credentials", ["a b", "==", "", 'tok"en', "abc.d\u00e9f.ghi"])
def test_credentials_outside_token68_are_401_malformed(client: Any, credentials: str) -> None:
    # A valid token first, so its verification is cached: the check of the alphabet, which runs
    # after the cache lookup, must still refuse everything the cache does not hold.
    assert client.get("/me", headers=bearer(token(iss="me"))).status_code == 200
    r = client.get("/me", headers={"Authorization": f"Bearer {credentials}"})
    assert r.status_code == 401
    assert "not a well-formed bearer token" in r.headers["WWW-Authenticate"]


def test_other_schemes_are_no_token(client: Any) -> None:
    r = client.get("/me", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert r.status_code == 401
    assert "error=" not in r.headers["WWW-Authenticate"]


def test_optional_auth(client: Any) -> None:
    assert client.get("/maybe").json["claims"] is None
    assert client.get("/maybe", headers=bearer(token(iss="me"))).json["claims"]["sub"] == "user-1"
    # A token that is presented must be valid.
    assert client.get("/maybe", headers=bearer("bad.token.here")).status_code == 401


def test_public_routes_ignore_tokens(client: Any) -> None:
    assert client.get("/public", headers=bearer("not-even-a-jwt")).status_code == 200


def test_scopes(client: Any) -> None:
    r = client.get("/write", headers=bearer(token(iss="me", scope="articles:read")))
    assert r.status_code == 403
    assert 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]
    assert 'scope="articles:write"' in r.headers["WWW-Authenticate"]
    assert client.get("/write", headers=bearer(token(iss="me", scope="a articles:write"))).status_code == 200
    assert client.get("/write", headers=bearer(token(iss="me", scp=["articles:write"]))).status_code == 200


def test_claim_requirements(client: Any) -> None:
    ok = token(iss="me", roles=["staff", "admin"], email_verified=True)
    assert client.get("/admin", headers=bearer(ok)).status_code == 200
    for bad in (token(iss="me", roles=["staff"], email_verified=True), token(iss="me", roles=["admin"])):
        r = client.get("/admin", headers=bearer(bad))
        assert r.status_code == 403
        assert json.loads(r.data)["status"] == 403


def test_cookie_location_is_opt_in(client: Any) -> None:
    t = token(iss="me")
    client.set_cookie("session", t)
    assert client.get("/cookie").status_code == 200
    # The header is not a location on this route.
    client.delete_cookie("session")
    assert client.get("/cookie", headers=bearer(t)).status_code == 401
    # ...and cookies are not one on /me.
    client.set_cookie("session", t)
    assert client.get("/me").status_code == 401


def test_query_location(client: Any) -> None:
    t = token(iss="me")
    assert client.get(f"/query?access_token={t}").status_code == 200
    assert client.get(f"/me?access_token={t}").status_code == 401


def test_rate_limit_keyed_on_the_subject(client: Any) -> None:
    ann, bob = token(iss="me", sub="ann"), token(iss="me", sub="bob")
    assert client.get("/limited", headers=bearer(ann)).status_code == 200
    assert client.get("/limited", headers=bearer(ann)).status_code == 200
    assert client.get("/limited", headers=bearer(ann)).status_code == 429
    assert client.get("/limited", headers=bearer(bob)).status_code == 200


def test_asymmetric_keys_in_the_gate() -> None:
    pair = rsa_pair()
    gate = Gate({"jwt": {"algorithms": ["RS256"], "key": pair.public_pem}, "defaults": {"auth": "required"}})
    env = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/x",
        "HTTP_AUTHORIZATION": f"Bearer {token(pair.private_pem, 'RS256')}",
    }
    d = gate.check(env)
    assert d.forward
    assert d.claims is not None
    assert d.claims["sub"] == "user-1"


def test_auth_config_errors() -> None:
    with pytest.raises(ConfigError) as exc:
        Gate(
            {
                "routes": [
                    {"path": "/a", "auth": "required"},
                    {"path": "/b", "auth": "sometimes"},
                    {"path": "/c", "auth": {"locations": ["body"], "scopes": ["has space"]}},
                ]
            }
        )
    keys = [k for k, _ in exc.value.issues]
    assert "routes[0].auth" in keys
    assert "routes[1].auth" in keys
    assert "routes[2].auth.locations[0]" in keys
    assert "routes[2].auth.scopes[0]" in keys
    with pytest.raises(ConfigError) as exc:
        Gate({"jwt": {"algorithms": ["HS256", "XS1"], "key": SECRET, "leeway": -1}})
    keys = [k for k, _ in exc.value.issues]
    assert "jwt.algorithms[1]" in keys
    assert "jwt.leeway" in keys


def test_a_cors_preflight_needs_no_token_on_exempt_methods_but_a_token_sent_must_be_valid() -> None:
    """``exempt_methods = ["OPTIONS"]``: a browser's preflight (never with credentials) is not asked
    for the token the route's other methods need. Without it (the default) every method needs it;
    a token that is sent on an exempt method is still checked."""
    config: dict[str, Any] = {
        "jwt": {"algorithms": ["HS256"], "key": SECRET},
        "routes": [
            {"path": "/me", "auth": {"exempt_methods": ["OPTIONS"]}},
            {"path": "/write", "auth": {"scopes": ["articles:write"], "exempt_methods": ["OPTIONS"]}},
            {"path": "/strict", "auth": "required"},
            {"path": "/custom", "auth": {"exempt_methods": ["OPTIONS", "HEAD"]}},
        ],
    }
    app = Flask(__name__)

    @app.route("/<path:p>", methods=["GET", "OPTIONS"])
    def anything(p: str) -> Any:
        return {"method": request.method, "claims": request.environ.get("ferrogate.claims")}

    app.wsgi_app = Gate(config).wsgi(app.wsgi_app)  # type: ignore[method-assign]
    c = app.test_client()
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "GET"}
    for path in ("/me", "/write", "/custom"):
        r = c.options(path, headers=preflight)
        assert r.status_code == 200, path
        assert r.json == {"method": "OPTIONS", "claims": None}
        assert c.get(path).status_code == 401, path
    assert c.options("/strict", headers=preflight).status_code == 401
    assert c.head("/custom").status_code == 200
    assert c.head("/me").status_code == 401
    assert c.options("/strict").status_code == 401
    # Sent anyway: verified, and its claims reach the app; a bad one is refused.
    r = c.options("/me", headers=bearer(token(sub="ann")))
    assert r.json["claims"]["sub"] == "ann"
    assert c.options("/me", headers=bearer("not.a.token")).status_code == 401
    assert c.options("/write", headers=bearer(token(scope="other"))).status_code == 403


@pytest.mark.parametrize(
    "methods",
    [["options"], ["OPT IONS"], "OPTIONS", [1]],
)
def test_auth_exempt_methods_must_be_upper_case_methods(methods: Any) -> None:
    with pytest.raises(ConfigError) as e:
        Gate(
            {
                "jwt": {"algorithms": ["HS256"], "key": SECRET},
                "routes": [{"path": "/me", "auth": {"exempt_methods": methods}}],
            }
        )
    assert "routes[0].auth.exempt_methods" in str(e.value)
