"""The Flask user's habits: a login view issuing tokens, a refresh view, current_user from a
user_loader, None-safe claims, and the test-time switches — written as a Flask-JWT-Extended /
Flask-Limiter / Flask-Caching user would."""

from __future__ import annotations

import time
from typing import Any

import pytest
from ferrogate import ConfigError, InvalidTokenError, encode
from ferrogate.flask import (
    FerroGate,
    create_access_token,
    create_refresh_token,
    current_claims,
    current_user,
    get_claims,
    get_identity,
    verify_refresh_token,
)
from ferrogate.tokens import TokenIssuer
from flask import Flask, jsonify, request
from jwt_keys import ec_pair

SECRET = "flask-identity-secret-long-enough-for-hs256"


class User:
    def __init__(self, uid: str, name: str, active: bool = True) -> None:
        self.id, self.name, self.active = uid, name, active


USERS = {"1": User("1", "ann"), "2": User("2", "bob", active=False)}


def make_app(**config: Any) -> tuple[Flask, FerroGate]:
    app = Flask(__name__)
    app.config["FERROGATE_JWT"] = {"algorithms": ["HS256"], "key": SECRET, "issuer": "notes"}
    app.config.update(config)
    gate = FerroGate(app)

    @gate.user_loader
    def load(identity: str, claims: Any) -> User | None:
        user = USERS.get(identity)
        return user if user is not None and user.active else None

    @app.post("/login")
    @gate.limit("3/minute")
    def login() -> Any:
        body = request.get_json()
        uid = {"ann": "1", "bob": "2"}.get(body["username"])
        if uid is None:
            return {"error": "bad credentials"}, 401
        return {
            "access_token": create_access_token(
                uid, scopes=["notes:read"], claims={"name": body["username"]}
            ),
            "refresh_token": create_refresh_token(uid),
        }

    @app.post("/refresh")
    def refresh() -> Any:
        try:
            claims = verify_refresh_token(request.get_json()["refresh_token"])
        except InvalidTokenError as e:
            return {"error": str(e)}, 401
        return {"access_token": create_access_token(claims["sub"], scopes=["notes:read"])}

    @app.get("/notes")
    @gate.auth(scopes=["notes:read"])
    @gate.cache(ttl=60)
    def notes() -> Any:
        return jsonify(
            user=current_user.name, identity=get_identity(), name=current_claims.get("name"), n=time.time()
        )

    @app.get("/whoami")
    @gate.auth(optional=True)
    def whoami() -> Any:
        return {
            "user": current_user.name if current_user else None,
            "sub": current_claims.get("sub"),
            "has_token": get_claims() is not None,
            "claims_len": len(current_claims),
        }

    return app, gate


def login(client: Any, username: str = "ann") -> dict[str, str]:
    r = client.post("/login", json={"username": username})
    assert r.status_code == 200, r.data
    return dict(r.json)


def test_login_access_and_refresh_flow() -> None:
    app, _ = make_app()
    c = app.test_client()
    tokens = login(c)
    r = c.get("/notes", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert r.status_code == 200
    assert (r.json["user"], r.json["identity"], r.json["name"]) == ("ann", "1", "ann")
    # The refresh token is refused where an access token is expected, and vice versa.
    r = c.get("/notes", headers={"Authorization": f"Bearer {tokens['refresh_token']}"})
    assert r.status_code == 401
    assert "access" in r.json["detail"]
    assert c.post("/refresh", json={"refresh_token": tokens["access_token"]}).status_code == 401
    fresh = c.post("/refresh", json={"refresh_token": tokens["refresh_token"]}).json["access_token"]
    assert c.get("/notes", headers={"Authorization": f"Bearer {fresh}"}).status_code == 200


def test_the_issued_claims() -> None:
    app, _ = make_app(FERROGATE_ACCESS_TOKEN_EXPIRES=120)
    with app.app_context():
        t = create_access_token(7, scopes="a b", claims={"role": "x"})
        r = create_refresh_token(7)
        claims = FerroGate.state(app).current().gate.verify_token(t)
        assert claims["sub"] == "7"
        assert claims["scope"] == "a b"
        assert claims["iss"] == "notes"
        assert claims["token_type"] == "access"
        assert claims["role"] == "x"
        assert 119 <= claims["exp"] - claims["iat"] <= 121
        assert len(claims["jti"]) == 32
        assert verify_refresh_token(r)["jti"] != claims["jti"]
        with pytest.raises(ValueError, match="sub"):
            create_access_token("1", claims={"sub": "admin"})
        with pytest.raises(ValueError, match="token_type"):
            create_access_token("1", claims={"token_type": "refresh"})
        with pytest.raises(ValueError, match="identity"):
            create_access_token("")
        with pytest.raises(ValueError, match="expires_in"):
            create_access_token("1", expires_in=-5)


def test_a_deleted_or_disabled_user_is_401_not_500() -> None:
    app, _ = make_app()
    c = app.test_client()
    bob = login(c, "bob")["access_token"]
    r = c.get("/notes", headers={"Authorization": f"Bearer {bob}"})
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    assert r.mimetype == "application/problem+json"
    with app.app_context():
        ghost = create_access_token("999", scopes=["notes:read"])
    assert c.get("/notes", headers={"Authorization": f"Bearer {ghost}"}).status_code == 401


def test_claims_and_user_are_none_safe_without_a_token() -> None:
    app, _ = make_app()
    c = app.test_client()
    assert c.get("/whoami").json == {"user": None, "sub": None, "has_token": False, "claims_len": 0}
    t = login(c)["access_token"]
    r = c.get("/whoami", headers={"Authorization": f"Bearer {t}"})
    assert r.json == {"user": "ann", "sub": "1", "has_token": True, "claims_len": r.json["claims_len"]}
    assert r.json["claims_len"] >= 6
    # Outside a request: None, not an error.
    assert get_claims() is None
    assert dict(current_claims) == {}


def test_current_user_without_a_loader_says_what_to_do() -> None:
    app = Flask(__name__)
    app.config["FERROGATE_JWT"] = {"algorithms": ["HS256"], "key": SECRET}
    gate = FerroGate(app)

    @app.get("/me")
    @gate.auth()
    def me() -> Any:
        return {"user": str(current_user)}

    app.testing = True
    t = encode({"sub": "1", "exp": time.time() + 60}, SECRET, "HS256")
    with pytest.raises(RuntimeError, match="user_loader"):
        app.test_client().get("/me", headers={"Authorization": f"Bearer {t}"})


def test_asymmetric_issuing_needs_the_private_key() -> None:
    pair = ec_pair("P-256")
    jwt = {"algorithms": ["ES256"], "key": pair.public_pem}
    with pytest.raises(ConfigError, match="private key"):
        TokenIssuer(jwt)
    issuer = TokenIssuer(jwt, signing_key=pair.private_pem)
    app = Flask(__name__)
    app.config["FERROGATE_JWT"] = jwt
    app.config["FERROGATE_SIGNING_KEY"] = pair.private_pem
    gate = FerroGate(app)

    @app.get("/me")
    @gate.auth()
    def me() -> Any:
        return {"sub": current_claims["sub"]}

    t = issuer.access_token("ann")
    assert app.test_client().get("/me", headers={"Authorization": f"Bearer {t}"}).json == {"sub": "ann"}
    with app.app_context():
        assert verify_refresh_token(create_refresh_token("ann"))["sub"] == "ann"


def test_switches_turn_limits_and_cache_off_but_never_auth() -> None:
    app, gate = make_app(FERROGATE_RATELIMIT_ENABLED=False, FERROGATE_CACHE_ENABLED=False)
    c = app.test_client()
    tokens = [login(c) for _ in range(6)]  # 3/minute, switched off
    t = tokens[-1]["access_token"]
    h = {"Authorization": f"Bearer {t}"}
    assert c.get("/notes", headers=h).json["n"] != c.get("/notes", headers=h).json["n"]
    assert c.get("/notes").status_code == 401
    assert gate.response_cache(app) is None


def test_reset_gives_the_quota_and_the_cache_back() -> None:
    app, gate = make_app()
    c = app.test_client()
    for _ in range(3):
        login(c)
    assert c.post("/login", json={"username": "ann"}).status_code == 429
    gate.reset(app)
    tokens = login(c)
    h = {"Authorization": f"Bearer {tokens['access_token']}"}
    first = c.get("/notes", headers=h).json["n"]
    assert c.get("/notes", headers=h).json["n"] == first
    gate.reset(app)
    assert c.get("/notes", headers=h).json["n"] != first
