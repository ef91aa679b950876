"""The gate's `[jwt]` is secure by default: tokens must expire, refresh tokens are not access tokens,
HMAC secrets are as long as their hash, a token without `kid` never has several keys tried, and a
request that carries a token in two places is refused (RFC 6750 §2) rather than read one way."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from ferrogate import ConfigError, Gate, JWTVerifier, encode
from flask import Flask, request

SECRET = "secure-defaults-secret-long-enough-for-hs256"


def token(secret: str = SECRET, **claims: Any) -> str:
    claims.setdefault("exp", time.time() + 300)
    claims.setdefault("sub", "ann")
    return encode(claims, secret, "HS256")


def client(jwt: dict[str, Any] | None = None, **route: Any) -> Any:
    config = {
        "jwt": {"algorithms": ["HS256"], "key": SECRET, **(jwt or {})},
        "routes": [{"path": "/me", "auth": "required", **route}, {"path": "/open"}],
    }
    app = Flask(__name__)

    @app.get("/me")
    def me() -> Any:
        return {"sub": request.environ["ferrogate.claims"]["sub"]}

    @app.get("/open")
    def open_() -> Any:
        return {"ok": True}

    app.wsgi_app = Gate(config).wsgi(app.wsgi_app)  # type: ignore[method-assign]
    return app.test_client()


def bearer(t: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {t}"}


def test_a_token_without_exp_is_refused_unless_the_config_opts_out() -> None:
    forever = encode({"sub": "ann"}, SECRET, "HS256")
    r = client().get("/me", headers=bearer(forever))
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    assert "exp" in r.json["detail"]
    assert client({"require_exp": False}).get("/me", headers=bearer(forever)).json == {"sub": "ann"}


def test_a_refresh_token_is_not_an_access_token() -> None:
    # simplejwt's and our own refresh tokens say what they are in `token_type`.
    refresh = token(token_type="refresh", jti="r1")
    r = client().get("/me", headers=bearer(refresh))
    assert r.status_code == 401
    assert "access" in r.json["detail"]
    assert client().get("/me", headers=bearer(token(token_type="access"))).status_code == 200
    # Identity providers' tokens carry no such claim: they pass.
    assert client().get("/me", headers=bearer(token())).status_code == 200
    # A custom claim name, required; or the check off.
    custom = client({"token_type_claim": "typ", "token_type_required": True})
    assert custom.get("/me", headers=bearer(token())).status_code == 401
    assert custom.get("/me", headers=bearer(token(typ="access"))).status_code == 200
    assert client({"token_type": False}).get("/me", headers=bearer(refresh)).status_code == 200


@pytest.mark.parametrize(("alg", "needed"), [("HS256", 32), ("HS384", 48), ("HS512", 64)])
def test_a_short_hmac_secret_is_refused_at_start_up(alg: str, needed: int) -> None:
    short = "s" * (needed - 1)
    with pytest.raises(ConfigError) as e:
        Gate({"jwt": {"algorithms": [alg], "key": short}})
    (key, message), *_ = e.value.issues
    assert key == "jwt.key"
    assert f"is {needed - 1} bytes; {alg} needs at least {needed}" in message
    assert "RFC 7518" in message
    Gate({"jwt": {"algorithms": [alg], "key": "s" * needed}})
    # The longest hash allowed sets the bar; JWK secrets and key lists are checked too.
    with pytest.raises(ConfigError):
        Gate({"jwt": {"algorithms": ["HS256", "HS512"], "key": "s" * 40}})
    k = base64.urlsafe_b64encode(b"s" * (needed - 1)).rstrip(b"=").decode()
    with pytest.raises(ConfigError):
        Gate({"jwt": {"algorithms": [alg], "jwks": {"keys": [{"kty": "oct", "k": k, "kid": "a"}]}}})
    with pytest.raises(ConfigError):
        Gate({"jwt": {"algorithms": [alg], "keys": ["s" * needed, "s" * 8]}})


def test_a_flask_app_with_a_short_secret_never_serves() -> None:
    from ferrogate.flask import FerroGate

    app = Flask(__name__)
    app.config["FERROGATE_JWT"] = {"algorithms": ["HS256"], "key": "too-short"}
    # Refused when the extension is set up, before any route or request.
    with pytest.raises(ConfigError, match="RFC 7518"):
        FerroGate(app)


def test_the_library_verifier_keeps_pyjwt_defaults() -> None:
    """JWTVerifier mirrors PyJWT (code ported from it behaves the same); each rule is opt-in."""
    v = JWTVerifier(["HS256"], key="short")
    assert v.verify(encode({"sub": "a"}, "short", "HS256")) == {"sub": "a"}
    strict = JWTVerifier(
        ["HS256"], key=SECRET, require_exp=True, token_type="refresh", token_type_required=True
    )
    with pytest.raises(Exception, match="exp"):
        strict.verify(encode({"sub": "a", "token_type": "refresh"}, SECRET, "HS256"))
    refresh = encode({"sub": "a", "exp": time.time() + 60, "token_type": "refresh"}, SECRET, "HS256")
    assert strict.verify(refresh)["token_type"] == "refresh"
    with pytest.raises(Exception, match="refresh"):
        strict.verify(encode({"sub": "a", "exp": time.time() + 60, "token_type": "access"}, SECRET, "HS256"))


def test_no_kid_and_several_keys_is_refused_not_tried_in_turn() -> None:
    def oct_key(secret: str, kid: str) -> dict[str, str]:
        return {
            "kty": "oct",
            "kid": kid,
            "k": base64.urlsafe_b64encode(secret.encode()).rstrip(b"=").decode(),
        }

    current, retired = SECRET, "retired-key-that-leaked-long-enough-for-hs256"
    jwks = {"keys": [oct_key(current, "2026"), oct_key(retired, "2025")]}
    config = {"jwt": {"algorithms": ["HS256"], "jwks": jwks}, "routes": [{"path": "/me", "auth": "required"}]}
    app = Flask(__name__)
    app.add_url_rule("/me", view_func=lambda: {"ok": True})
    app.wsgi_app = Gate(config).wsgi(app.wsgi_app)  # type: ignore[method-assign]
    tc = app.test_client()
    # Signed with the leaked key and no kid: trying every key would let it in.
    r = tc.get("/me", headers=bearer(token(retired)))
    assert r.status_code == 401
    assert "kid" in r.json["detail"]
    assert tc.get("/me", headers=bearer(token(current))).status_code == 401
    named = encode({"sub": "ann", "exp": time.time() + 60}, current, "HS256", headers={"kid": "2026"})
    assert tc.get("/me", headers=bearer(named)).status_code == 200


@pytest.mark.parametrize(
    ("path", "headers", "locations"),
    [
        # The header and RFC 6750's query parameter, the query location not even configured.
        ("/me?access_token=T", "header", None),
        # A percent-encoded parameter name is the same parameter to the app.
        ("/me?access%5Ftoken=T", "header", None),
        # Two configured locations.
        ("/me", "header+cookie", ["header", "cookie:session"]),
        ("/me?access_token=T", "none", ["query:access_token", "cookie:session"]),
        # One location, twice.
        ("/me?access_token=T&access_token=T", "none", ["query:access_token"]),
        # The same parameter in two spellings the app reads as one name.
        ("/me?access_token=T&access%5Ftoken=T", "none", ["query:access_token"]),
    ],
)
def test_a_token_in_more_than_one_place_is_400_invalid_request(
    path: str, headers: str, locations: list[str] | None
) -> None:
    t = token()
    auth: dict[str, Any] = {"mode": "required"}
    if locations is not None:
        auth["locations"] = locations
    c = client(auth=auth)
    if "cookie" in headers or (locations and any(x.startswith("cookie") for x in locations)):
        c.set_cookie("session", t)
    sent = bearer(t) if "header" in headers else {}
    r = c.get(path.replace("T", t), headers=sent)
    assert r.status_code == 400, r.data
    challenge = r.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    assert 'error="invalid_request"' in challenge
    assert r.mimetype == "application/problem+json"
    # One place is fine; and a route without auth never looks.
    c = client(auth=auth)
    if locations is None or "header" in locations:
        assert c.get("/me", headers=bearer(t)).status_code == 200
    else:
        assert c.get(f"/me?access_token={t}").status_code == 200
    assert c.get(f"/open?access_token={t}", headers=bearer(t)).status_code == 200


def test_jku_and_x5u_are_ignored_by_the_gate() -> None:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(
        json.dumps(
            {"alg": "HS256", "jku": "https://idp.example/keys", "x5u": "https://idp.example/c"}
        ).encode()
    )
    payload = b64(json.dumps({"sub": "ann", "exp": time.time() + 60}).encode())
    sig = b64(hmac.new(SECRET.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest())
    assert client().get("/me", headers=bearer(f"{header}.{payload}.{sig}")).json == {"sub": "ann"}
