"""Token verification, ferrogate vs PyJWT in the same run (aud + iss checks, 12 claims).

ferrogate's verified-token cache is off for the per-algorithm groups, so every call does the
full parse, signature check and claims validation that PyJWT does; the cache gets its own group.
"""

from __future__ import annotations

import time
from typing import Any

import jwt as pyjwt
import pytest
from ferrogate import JWTVerifier, encode
from jwt_keys import pair_for

SECRET = "bench-secret-that-is-long-enough-for-hs256-hs384-and-hs512-keys!!"
ALGS = ["HS256", "RS256", "ES256", "EdDSA"]


def claims() -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": "https://idp.example.com/",
        "aud": "api.example.com",
        "sub": "user-42",
        "exp": now + 3600,
        "nbf": now - 10,
        "iat": now - 10,
        "jti": "c1a2b3c4-d5e6-47f8-9a0b-1c2d3e4f5a6b",
        "scope": "articles:read articles:write",
        "email": "ann@example.com",
        "email_verified": True,
        "roles": ["staff", "editor"],
        "tenant": "acme",
    }


def keys(alg: str) -> tuple[str, str]:
    if alg.startswith("HS"):
        return SECRET, SECRET
    pair = pair_for(alg)
    return pair.private_pem, pair.public_pem


@pytest.mark.parametrize("alg", ALGS)
def test_ferrogate_verify(benchmark: Any, alg: str) -> None:
    signing, verifying = keys(alg)
    token = encode(claims(), signing, alg)
    v = JWTVerifier(
        [alg], key=verifying, issuer="https://idp.example.com/", audience="api.example.com", cache_size=0
    )
    assert v.verify(token)["sub"] == "user-42"
    benchmark.group = f"jwt: verify {alg} (aud+iss, 12 claims)"
    benchmark(v.verify, token)


@pytest.mark.parametrize("alg", ALGS)
def test_pyjwt_decode(benchmark: Any, alg: str) -> None:
    signing, verifying = keys(alg)
    token = pyjwt.encode(claims(), signing, algorithm=alg)
    key: Any = verifying
    if not alg.startswith("HS"):
        # PyJWT's fastest path: a key object parsed once, as ferrogate's is.
        key = pyjwt.PyJWK.from_json(
            pyjwt.algorithms.get_default_algorithms()[alg].to_jwk(
                pyjwt.algorithms.get_default_algorithms()[alg].prepare_key(verifying)
            )
        ).key

    def run() -> Any:
        return pyjwt.decode(
            token, key, algorithms=[alg], audience="api.example.com", issuer="https://idp.example.com/"
        )

    assert run()["sub"] == "user-42"
    benchmark.group = f"jwt: verify {alg} (aud+iss, 12 claims)"
    benchmark(run)


@pytest.mark.benchmark(group="jwt: verified-token cache hit (HS256), claims dict included")
def test_ferrogate_verify_cache_hit(benchmark: Any) -> None:
    token = encode(claims(), SECRET, "HS256")
    v = JWTVerifier(["HS256"], key=SECRET, issuer="https://idp.example.com/", audience="api.example.com")
    v.verify(token)
    benchmark(v.verify, token)


@pytest.mark.benchmark(group="jwt: verified-token cache hit (HS256), claims dict included")
def test_pyjwt_decode_hs256_for_cache_comparison(benchmark: Any) -> None:
    token = pyjwt.encode(claims(), SECRET, algorithm="HS256")
    benchmark(
        pyjwt.decode,
        token,
        SECRET,
        algorithms=["HS256"],
        audience="api.example.com",
        issuer="https://idp.example.com/",
    )
