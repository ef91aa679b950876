"""JWTVerifier and encode: RFC vectors, every algorithm, claims semantics and key handling."""

from __future__ import annotations

import json
import pickle
import random
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
from ferrogate import (
    ConfigError,
    DecodeError,
    ExpiredSignatureError,
    ImmatureSignatureError,
    InvalidAlgorithmError,
    InvalidAudienceError,
    InvalidIssuerError,
    InvalidKeyError,
    InvalidSignatureError,
    InvalidTokenError,
    JWTVerifier,
    MissingRequiredClaimError,
    encode,
)
from jwt_keys import ec_pair, pair_for, rsa_pair

VECTORS = json.loads((Path(__file__).parent / "data" / "rfc_jws_vectors.json").read_text())
NOW = 1_800_000_000.0
SECRET = "s3cret-with-enough-entropy-for-tests-and-sha512-hmac-keys-64-bytes!"


@pytest.mark.parametrize("vector", VECTORS, ids=[v["id"] for v in VECTORS])
def test_rfc_vectors(vector: dict[str, Any]) -> None:
    options = vector["options"]
    verifier = JWTVerifier(
        vector["algorithms"],
        key=vector["key"],
        leeway=options.get("leeway", 0),
        verify_exp=options.get("verify_exp", True),
    )

    def check() -> None:
        if options.get("jws_only"):
            verifier.verify_jws(vector["token"])
        else:
            verifier.verify(vector["token"], now=options["now"])

    if vector["expect"] == "valid":
        check()
    else:
        with pytest.raises(InvalidTokenError):
            check()


ALGS = [
    "HS256",
    "HS384",
    "HS512",
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
]


def keys_for(alg: str) -> tuple[str, str]:
    if alg.startswith("HS"):
        return SECRET, SECRET
    pair = pair_for(alg)
    return pair.private_pem, pair.public_pem


@pytest.mark.parametrize("alg", ALGS)
def test_round_trip_every_algorithm(alg: str) -> None:
    signing, verifying = keys_for(alg)
    claims = {"sub": "u1", "exp": NOW + 60, "scope": "read"}
    token = encode(claims, signing, alg, headers={"kid": "k1"})
    assert JWTVerifier([alg], key=verifying).verify(token, now=NOW) == claims
    # A token from PyJWT verifies too (interoperability), except ES512/EdDSA naming quirks.
    if alg not in ("ES512",):
        peer = pyjwt.encode(claims, signing, algorithm=alg)
        assert JWTVerifier([alg], key=verifying).verify(peer, now=NOW) == claims
        # ...and PyJWT accepts ours.
        assert pyjwt.decode(token, verifying, algorithms=[alg], options={"verify_exp": False}) == claims


def test_tampered_tokens_fail() -> None:
    v = JWTVerifier(["HS256"], key=SECRET)
    token = encode({"sub": "a", "exp": NOW + 60}, SECRET, "HS256")
    head, _payload, sig = token.split(".")
    forged = encode({"sub": "admin", "exp": NOW + 60}, SECRET, "HS256").split(".")[1]
    with pytest.raises(InvalidSignatureError):
        v.verify(f"{head}.{forged}.{sig}", now=NOW)
    with pytest.raises(InvalidSignatureError):
        v.verify(encode({"sub": "a"}, "other-secret", "HS256"), now=NOW)


@pytest.mark.parametrize(
    ("now", "leeway", "error"),
    [
        (NOW + 59.999, 0, None),
        (NOW + 60, 0, ExpiredSignatureError),  # invalid at exactly exp
        (NOW + 60.5, 0, ExpiredSignatureError),
        (NOW + 60.5, 1, None),
        (NOW + 61, 1, ExpiredSignatureError),
    ],
)
def test_exp_boundaries(now: float, leeway: float, error: type[Exception] | None) -> None:
    v = JWTVerifier(["HS256"], key=SECRET, leeway=leeway, cache_size=0)
    token = encode({"exp": NOW + 60}, SECRET, "HS256")
    if error is None:
        v.verify(token, now=now)
    else:
        with pytest.raises(error):
            v.verify(token, now=now)


def test_fractional_exp_is_not_rounded() -> None:
    v = JWTVerifier(["HS256"], key=SECRET, cache_size=0)
    token = encode({"exp": NOW + 0.5}, SECRET, "HS256")
    v.verify(token, now=NOW + 0.4)
    with pytest.raises(ExpiredSignatureError):
        v.verify(token, now=NOW + 0.5)


def test_nbf_and_iat() -> None:
    v = JWTVerifier(["HS256"], key=SECRET, cache_size=0)
    token = encode({"nbf": NOW + 10}, SECRET, "HS256")
    with pytest.raises(ImmatureSignatureError):
        v.verify(token, now=NOW + 9.9)
    v.verify(token, now=NOW + 10)  # valid at exactly nbf
    assert JWTVerifier(["HS256"], key=SECRET, leeway=1, cache_size=0).verify(token, now=NOW + 9.5) == {
        "nbf": NOW + 10
    }
    with pytest.raises(ImmatureSignatureError):
        v.verify(encode({"iat": NOW + 100}, SECRET, "HS256"), now=NOW)


def test_huge_leeway_never_overflows() -> None:
    v = JWTVerifier(["HS256"], key=SECRET, leeway=1e300, cache_size=0)
    assert v.verify(encode({"exp": 1}, SECRET, "HS256"), now=NOW) == {"exp": 1}
    with pytest.raises(ConfigError):
        JWTVerifier(["HS256"], key=SECRET, leeway=float("inf"))
    with pytest.raises(ConfigError):
        JWTVerifier(["HS256"], key=SECRET, leeway=-1)


@pytest.mark.parametrize("bad", ["1800000060", True, None, [1], {"t": 1}])
def test_claim_types(bad: Any) -> None:
    v = JWTVerifier(["HS256"], key=SECRET)
    with pytest.raises(DecodeError, match="exp"):
        v.verify(encode({"exp": bad}, SECRET, "HS256"), now=NOW)


def test_audience() -> None:
    v = JWTVerifier(["HS256"], key=SECRET, audience=["api", "web"], cache_size=0)
    v.verify(encode({"aud": "api"}, SECRET, "HS256"), now=NOW)
    v.verify(encode({"aud": ["x", "web"]}, SECRET, "HS256"), now=NOW)
    with pytest.raises(InvalidAudienceError):
        v.verify(encode({"aud": "other"}, SECRET, "HS256"), now=NOW)
    for bad in (1, ["api", 2], [], {"api": True}):
        with pytest.raises(InvalidAudienceError):
            v.verify(encode({"aud": bad}, SECRET, "HS256"), now=NOW)
    with pytest.raises(MissingRequiredClaimError) as exc:
        v.verify(encode({"sub": "x"}, SECRET, "HS256"), now=NOW)
    assert exc.value.claim == "aud"
    assert pickle.loads(pickle.dumps(exc.value)).claim == "aud"
    # No audience configured: a token meant for some audience is not for us (RFC 7519 §4.1.3).
    with pytest.raises(InvalidAudienceError):
        JWTVerifier(["HS256"], key=SECRET).verify(encode({"aud": "api"}, SECRET, "HS256"), now=NOW)


def test_issuer() -> None:
    v = JWTVerifier(["HS256"], key=SECRET, issuer="https://idp.example", cache_size=0)
    v.verify(encode({"iss": "https://idp.example"}, SECRET, "HS256"), now=NOW)
    with pytest.raises(InvalidIssuerError):
        v.verify(encode({"iss": "https://evil.example"}, SECRET, "HS256"), now=NOW)
    with pytest.raises(InvalidIssuerError):
        v.verify(encode({"iss": ["https://idp.example"]}, SECRET, "HS256"), now=NOW)
    with pytest.raises(MissingRequiredClaimError):
        v.verify(encode({}, SECRET, "HS256"), now=NOW)


def test_required_claims() -> None:
    v = JWTVerifier(["HS256"], key=SECRET, required_claims=["sub", "exp"])
    with pytest.raises(MissingRequiredClaimError, match="exp"):
        v.verify(encode({"sub": "a"}, SECRET, "HS256"), now=NOW)


def test_key_family_binding() -> None:
    pub = rsa_pair().public_pem
    # An RSA public key can never be an HMAC secret.
    with pytest.raises(InvalidKeyError):
        JWTVerifier(["HS256"], key=pub)
    with pytest.raises(InvalidKeyError):
        JWTVerifier(["RS256", "HS256"], key=pub)
    with pytest.raises(InvalidKeyError):
        encode({}, pub, "HS256")
    with pytest.raises(InvalidKeyError):
        JWTVerifier(["RS256"], key=rsa_pair().private_pem)
    with pytest.raises(InvalidKeyError):
        JWTVerifier(["ES256"], key=ec_pair("P-384").public_pem)


def test_small_rsa_keys_are_refused() -> None:
    with pytest.raises(InvalidKeyError):
        JWTVerifier(["RS256"], key=rsa_pair(1024).public_pem)


def test_jwk_and_jwks_keys() -> None:
    k = {"kty": "oct", "k": "c2VjcmV0", "kid": "a", "alg": "HS256", "use": "sig"}
    v = JWTVerifier(["HS256", "HS384"], keys=[k, {"kty": "oct", "k": "b3RoZXI", "kid": "b", "alg": "HS384"}])
    assert v.verify(encode({"x": 1}, "secret", "HS256", headers={"kid": "a"}), now=NOW) == {"x": 1}
    # The JWK's alg binds the key: HS384 under kid "a" is refused.
    with pytest.raises(InvalidAlgorithmError):
        v.verify(encode({"x": 1}, "secret", "HS384", headers={"kid": "a"}), now=NOW)
    with pytest.raises(InvalidSignatureError, match="kid"):
        v.verify(encode({"x": 1}, "secret", "HS256", headers={"kid": "zzz"}), now=NOW)
    with pytest.raises(InvalidKeyError, match="use"):
        JWTVerifier(["HS256"], key={"kty": "oct", "k": "c2VjcmV0", "use": "enc"})
    jwks = {
        "keys": [{"kty": "oct", "k": "c2VjcmV0", "use": "enc"}, {"kty": "oct", "k": "c2VjcmV0", "kid": "s"}]
    }
    assert (
        JWTVerifier(["HS256"], jwks=jwks).verify(encode({}, "secret", "HS256", headers={"kid": "s"}), now=NOW)
        == {}
    )


def test_bytes_secrets_and_tokens() -> None:
    raw = bytes(range(256))
    token = encode({"a": 1}, raw, "HS512")
    assert JWTVerifier(["HS512"], key=raw).verify(token.encode(), now=NOW) == {"a": 1}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"algorithms": []},
        {"algorithms": ["HS256"]},
        {"algorithms": ["XS256"], "key": SECRET},
        {"algorithms": ["none"], "key": SECRET},
        {"algorithms": ["HS256"], "key": SECRET, "jwks_url": "http://x"},
        {"algorithms": ["HS256"], "key": SECRET, "max_token_bytes": 0},
        {"algorithms": ["HS256"], "key": SECRET, "jwks_url": "ftp://x"},
        {"algorithms": ["HS256"], "discovery": True},
    ],
)
def test_bad_options(kwargs: dict[str, Any]) -> None:
    with pytest.raises((ConfigError, InvalidKeyError)):
        JWTVerifier(**kwargs)


def test_verified_cache_still_enforces_exp() -> None:
    v = JWTVerifier(["HS256"], key=SECRET)
    token = encode({"exp": NOW + 10}, SECRET, "HS256")
    first = v.verify(token, now=NOW)
    first["mutated"] = True  # callers get a copy
    assert v.verify(token, now=NOW + 5) == {"exp": NOW + 10}
    with pytest.raises(ExpiredSignatureError):
        v.verify(token, now=NOW + 10)


def test_negative_cache_remembers_refusals_without_hiding_rotation() -> None:
    v = JWTVerifier(["HS256"], key=SECRET)
    bad = encode({}, "wrong", "HS256")
    for _ in range(3):
        with pytest.raises(InvalidSignatureError):
            v.verify(bad, now=NOW)


def test_fractional_claims_read_back_exactly() -> None:
    """A float claim comes back as the very f64 that was signed: serde_json's default parser is up
    to one ulp off for about one value in eight, which moved a revocation entry's expiry
    (`exp` + leeway) across the instant a test checked it at."""
    rng = random.Random(20261201)
    verifier = JWTVerifier(["HS256"], key=SECRET)
    for _ in range(500):
        exp = NOW + 100 + rng.random()
        ratio = rng.random() * 10 ** rng.randint(-30, 30)
        claims = verifier.verify(encode({"exp": exp, "ratio": ratio}, SECRET, "HS256"), now=NOW)
        assert (claims["exp"], claims["ratio"]) == (exp, ratio)
