"""What an attacker review of the framework-native layer found, each pinned by a test: tokens from
the tools users migrate from, the issuer's claims, refusal attributes, catch-all handlers, the
test switches, and credentials repeated in a cookie or a decoded query name."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from ferrogate import ConfigError, Gate
from ferrogate.flask import FerroGate, create_access_token, create_refresh_token, current_user
from flask import Flask, jsonify
from werkzeug.exceptions import TooManyRequests, Unauthorized

SECRET = "migration-safety-secret-long-enough-hs256"


def app_with(jwt: dict[str, Any] | None = None, **config: Any) -> tuple[Flask, FerroGate]:
    app = Flask(__name__)
    app.config["FERROGATE_JWT"] = {"algorithms": ["HS256"], "key": SECRET, **(jwt or {})}
    app.config.update(config)
    gate = FerroGate(app)

    @app.get("/admin")
    @gate.auth(scopes=["admin"])
    def admin() -> Any:
        return {"ok": True}

    @app.get("/me")
    @gate.auth()
    @gate.limit("1/minute", key="sub")
    def me() -> Any:
        return {"ok": True}

    return app, gate


def bearer(t: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {t}"}


def test_flask_jwt_extended_refresh_tokens_stay_refused_after_migrating() -> None:
    from flask_jwt_extended import JWTManager
    from flask_jwt_extended import create_refresh_token as fjwte_refresh

    app, _ = app_with()
    app.config["JWT_SECRET_KEY"] = SECRET
    JWTManager(app)
    with app.app_context():
        old = fjwte_refresh(identity="ann")
    r = app.test_client().get("/me", headers=bearer(old))
    assert r.status_code == 401
    assert "refresh" in r.json["detail"]


def test_the_issuer_follows_the_gates_token_type() -> None:
    app, _ = app_with({"token_type": "at"})
    with app.app_context():
        assert app.test_client().get("/me", headers=bearer(create_access_token("ann"))).status_code == 200
    app, _ = app_with({"token_type": False})
    with app.app_context(), pytest.raises(ConfigError, match="refresh"):
        create_refresh_token("ann")


@pytest.mark.parametrize("claim", ["scp", "type", "token_type"])
def test_claims_that_grant_or_classify_cannot_be_set_by_the_caller(claim: str) -> None:
    app, _ = app_with()
    with app.app_context(), pytest.raises(ValueError, match=claim):
        create_access_token("ann", claims={claim: ["admin"]})


def test_the_identity_claim_is_written_where_the_app_reads_it() -> None:
    app, gate = app_with(FERROGATE_IDENTITY_CLAIM="uid")

    @gate.user_loader
    def load(identity: str, claims: Any) -> str:
        return f"user {identity}"

    @app.get("/who")
    @gate.auth()
    def who() -> Any:
        return {"user": str(current_user)}

    with app.app_context():
        t = create_access_token(7)
        claims = FerroGate.state(app).current().gate.verify_token(t)
        assert (claims["sub"], claims["uid"]) == ("7", 7)
        with pytest.raises(ValueError, match="uid"):
            create_access_token(7, claims={"uid": 1})
    assert app.test_client().get("/who", headers=bearer(t)).json == {"user": "user 7"}


def test_two_hmac_keys_without_kid_are_a_config_error_not_a_runtime_401() -> None:
    with pytest.raises(ConfigError, match="kid"):
        Gate({"jwt": {"algorithms": ["HS256"], "keys": [SECRET, SECRET + "-old"]}})
    k = base64.urlsafe_b64encode(SECRET.encode()).rstrip(b"=").decode()
    Gate(
        {
            "jwt": {
                "algorithms": ["HS256"],
                "keys": [{"kty": "oct", "k": k, "kid": "a"}, {"kty": "oct", "k": k + "x", "kid": "b"}],
            }
        }
    )


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "hook-mode"])
def test_handlers_can_read_werkzeugs_attributes(fast_path: bool) -> None:
    app, _ = app_with(FERROGATE_FAST_PATH=fast_path)

    @app.errorhandler(TooManyRequests)
    def slow(e: TooManyRequests) -> Any:
        return jsonify(retry_after=e.retry_after), 429

    @app.errorhandler(Unauthorized)
    def unauth(e: Unauthorized) -> Any:
        return jsonify(schemes=[c.type for c in e.www_authenticate]), 401

    c = app.test_client()
    assert c.get("/me").json == {"schemes": ["bearer"]}
    with app.app_context():
        t = create_access_token("ann")
    c.get("/me", headers=bearer(t))
    r = c.get("/me", headers=bearer(t))
    assert r.status_code == 429
    assert r.json["retry_after"] > 0


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "hook-mode"])
def test_a_catch_all_exception_handler_does_not_turn_refusals_into_500s(fast_path: bool) -> None:
    app, _ = app_with(FERROGATE_FAST_PATH=fast_path)

    @app.errorhandler(Exception)
    def report(e: Exception) -> Any:
        return {"error": "internal"}, 500

    r = app.test_client().get("/me")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="api"'


def test_a_repeated_cookie_is_two_places_and_a_decoded_query_name_is_read() -> None:
    app = Flask(__name__)
    app.config["FERROGATE_JWT"] = {"algorithms": ["HS256"], "key": SECRET}
    gate = FerroGate(app)

    @app.get("/c")
    @gate.auth(locations=["cookie:at"])
    def c_view() -> Any:
        return {"ok": True}

    @app.get("/q")
    @gate.auth(locations=["query:token"])
    def q_view() -> Any:
        return {"ok": True}

    with app.app_context():
        t = create_access_token("ann")
    client = app.test_client(use_cookies=False)  # the Cookie header exactly as sent
    # werkzeug reads the first cookie, Django the last: two cookies are refused, not chosen from.
    r = client.get("/c", environ_overrides={"HTTP_COOKIE": f"at={t}; at={t}"})
    assert r.status_code == 400
    assert client.get("/c", environ_overrides={"HTTP_COOKIE": f"at={t}"}).status_code == 200
    assert client.get(f"/q?%74oken={t}").status_code == 200
