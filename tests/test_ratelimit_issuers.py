"""Rate limits keyed by a token's subject when several issuers are trusted."""

from __future__ import annotations

import time
from typing import Any

from ferrogate import Gate, encode

SECRET = "review-c-secret-long-enough-for-hs256-tokens"
ISSUERS = ["https://idp-a.example", "https://idp-b.example"]


def bearer(**claims: Any) -> dict[str, Any]:
    claims.setdefault("exp", time.time() + 300)
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/api",
        "QUERY_STRING": "",
        "REMOTE_ADDR": "192.0.2.1",
        "HTTP_AUTHORIZATION": "Bearer " + encode(claims, SECRET, "HS256"),
    }


def test_a_sub_keyed_limit_keeps_issuers_apart() -> None:
    """`sub` is unique only within its issuer (RFC 7519 §4.1.2, OIDC Core §2); revocation already
    keys subjects by (iss, sub). An account at issuer B named like a victim at issuer A must not
    exhaust the victim's quota."""
    gate = Gate(
        {
            "jwt": {"algorithms": ["HS256"], "key": SECRET, "issuer": ISSUERS},
            "routes": [{"path": "/api", "auth": "required", "limit": {"quota": "2/minute", "key": "sub"}}],
        }
    )
    for _ in range(2):
        assert gate.check(bearer(sub="1001", iss=ISSUERS[1])).forward
    assert not gate.check(bearer(sub="1001", iss=ISSUERS[1])).forward
    assert gate.check(bearer(sub="1001", iss=ISSUERS[0])).forward, "the victim at issuer A"
