"""Keys from a JWKS URL served on 127.0.0.1: rotation, outage, kid-miss storms, discovery."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from ferrogate import InvalidSignatureError, JWTVerifier, encode
from jwt.algorithms import ECAlgorithm

NOW = 1_800_000_000.0


class IdP:
    """A tiny identity provider: a JWKS and a discovery document, with switchable failures."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}
        self.fail = False
        self.hits: dict[str, int] = {}
        self.cache_control = "max-age=300"
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                idp.hits[self.path] = idp.hits.get(self.path, 0) + 1
                if idp.fail:
                    self.send_response(503)
                    self.end_headers()
                    return
                if self.path.endswith("/.well-known/openid-configuration"):
                    body = {"issuer": idp.url, "jwks_uri": idp.url + "/jwks"}
                elif self.path == "/jwks":
                    body = {"keys": [pair["jwk"] for pair in idp.keys.values()]}
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Cache-Control", idp.cache_control)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def add_key(self, kid: str) -> Any:
        private = ec.generate_private_key(ec.SECP256R1())
        jwk = json.loads(ECAlgorithm.to_jwk(private.public_key()))
        jwk.update(kid=kid, use="sig", alg="ES256")
        self.keys[kid] = {"private": private, "jwk": jwk}
        return private

    def token(self, kid: str, **claims: Any) -> str:
        from cryptography.hazmat.primitives import serialization

        pem = self.keys[kid]["private"].private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return encode({"sub": "u", **claims}, pem, "ES256", headers={"kid": kid})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def idp() -> Iterator[IdP]:
    server = IdP()
    server.add_key("k1")
    yield server
    server.close()


def test_fetched_once_and_verified(idp: IdP) -> None:
    v = JWTVerifier(["ES256"], jwks_url=idp.url + "/jwks")
    assert v.fetch_count == 1
    for _ in range(20):
        assert v.verify(idp.token("k1"), now=NOW)["sub"] == "u"
    assert idp.hits["/jwks"] == 1


def test_rotation_is_picked_up_on_an_unknown_kid(idp: IdP) -> None:
    v = JWTVerifier(["ES256"], jwks_url=idp.url + "/jwks", kid_cooldown=0)
    idp.add_key("k2")
    assert v.verify(idp.token("k2"), now=NOW)["sub"] == "u"
    assert idp.hits["/jwks"] == 2


def test_kid_miss_storm_costs_one_fetch_per_cooldown(idp: IdP) -> None:
    v = JWTVerifier(["ES256"], jwks_url=idp.url + "/jwks", kid_cooldown=60)
    idp.add_key("rogue")
    token = idp.token("rogue")
    del idp.keys["rogue"]  # the IdP never publishes it
    errors: list[BaseException] = []

    def storm() -> None:
        for _ in range(50):
            try:
                v.verify(token, now=NOW)
            except InvalidSignatureError:
                pass
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)

    threads = [threading.Thread(target=storm) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    # The first fetch at start, then at most one more for the whole storm.
    assert idp.hits["/jwks"] <= 2


def test_outage_keeps_the_keys_we_have(idp: IdP) -> None:
    v = JWTVerifier(["ES256"], jwks_url=idp.url + "/jwks", kid_cooldown=0)
    token = idp.token("k1")
    idp.fail = True
    v.refresh()
    assert v.last_error is not None
    assert "503" in v.last_error
    assert v.verify(token, now=NOW)["sub"] == "u"  # stale-if-error
    idp.fail = False
    v.refresh()
    assert v.last_error is None


def test_start_during_an_outage_refuses_tokens_then_recovers(idp: IdP) -> None:
    idp.fail = True
    v = JWTVerifier(["ES256"], jwks_url=idp.url + "/jwks", kid_cooldown=0)
    assert v.last_error is not None
    token = idp.token("k1")
    with pytest.raises(InvalidSignatureError):
        v.verify(token, now=NOW)
    idp.fail = False
    v.refresh()
    assert v.verify(token, now=NOW)["sub"] == "u"


def test_oidc_discovery(idp: IdP) -> None:
    v = JWTVerifier(["ES256"], issuer=idp.url, discovery=True)
    assert idp.hits["/.well-known/openid-configuration"] == 1
    assert v.verify(idp.token("k1", iss=idp.url), now=NOW)["iss"] == idp.url


def test_discovery_with_a_mismatched_issuer_fails(idp: IdP) -> None:
    v = JWTVerifier(["ES256"], issuer=idp.url + "/other", discovery=True)
    assert v.last_error is not None
    assert "different issuer" in v.last_error


def test_https_to_http_redirects_are_refused() -> None:
    import urllib.request

    from ferrogate._http import _NoDowngrade

    handler = _NoDowngrade()
    req = urllib.request.Request("https://idp.example/jwks")
    with pytest.raises(OSError, match="refusing a redirect"):
        handler.redirect_request(req, None, 302, "Found", {}, "http://evil.example/jwks")
    same = handler.redirect_request(req, None, 302, "Found", {}, "https://idp.example/v2/jwks")
    assert same is not None
    assert same.full_url == "https://idp.example/v2/jwks"


def test_fetch_refuses_other_schemes() -> None:
    from ferrogate._http import fetch

    with pytest.raises(ValueError, match="http and https"):
        fetch("file:///etc/passwd", 1.0)
