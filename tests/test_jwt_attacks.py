"""Attacks on the verifier, one family at a time. Every one must end in an InvalidTokenError."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest
from ferrogate import (
    DecodeError,
    InvalidAlgorithmError,
    InvalidSignatureError,
    InvalidTokenError,
    JWTVerifier,
    encode,
)
from jwt_keys import ec_pair, ed_pair, rsa_pair

NOW = 1_800_000_000.0
SECRET = "attack-test-secret-long-enough-for-hs256"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_token(
    header: dict[str, Any] | bytes, payload: dict[str, Any] | bytes, secret: bytes | None = SECRET.encode()
) -> str:
    h = b64(header if isinstance(header, bytes) else json.dumps(header).encode())
    p = b64(payload if isinstance(payload, bytes) else json.dumps(payload).encode())
    sig = b"" if secret is None else hmac.new(secret, f"{h}.{p}".encode(), hashlib.sha256).digest()
    return f"{h}.{p}.{b64(sig)}"


HS = JWTVerifier(["HS256"], key=SECRET, cache_size=0)


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE", " none", "none "])
def test_alg_none_in_every_spelling(alg: str) -> None:
    for verifier in (HS, JWTVerifier(["RS256"], key=rsa_pair().public_pem)):
        for sig in (None, SECRET.encode()):
            with pytest.raises(InvalidTokenError):
                verifier.verify(raw_token({"alg": alg, "typ": "JWT"}, {"sub": "admin"}, sig), now=NOW)


@pytest.mark.parametrize("pub", [rsa_pair().public_pem, ec_pair("P-256").public_pem, ed_pair().public_pem])
def test_algorithm_confusion_public_key_as_hmac_secret(pub: str) -> None:
    # The attacker signs HS256 with the public key's PEM text as the secret.
    forged = raw_token({"alg": "HS256"}, {"sub": "admin"}, pub.encode())
    verifier = JWTVerifier(
        ["RS256", "ES256", "EdDSA"],
        keys=[rsa_pair().public_pem, ec_pair("P-256").public_pem, ed_pair().public_pem],
    )
    with pytest.raises(InvalidAlgorithmError):
        verifier.verify(forged, now=NOW)


def test_token_algorithm_outside_the_allow_list() -> None:
    token = encode({"sub": "a"}, SECRET, "HS512")
    with pytest.raises(InvalidAlgorithmError):
        HS.verify(token, now=NOW)


@pytest.mark.parametrize("sig", ["", "AA", "A" * 342])
def test_signature_stripping(sig: str) -> None:
    h, p, _ = encode({"sub": "a"}, SECRET, "HS256").split(".")
    with pytest.raises((InvalidSignatureError, DecodeError)):
        HS.verify(f"{h}.{p}.{sig}", now=NOW)


def test_ecdsa_zero_signature_and_der_signatures() -> None:
    pair = ec_pair("P-256")
    v = JWTVerifier(["ES256"], key=pair.public_pem, cache_size=0)
    token = encode({"sub": "a"}, pair.private_pem, "ES256")
    h, p, s = token.split(".")
    with pytest.raises(InvalidSignatureError):
        v.verify(f"{h}.{p}.{b64(bytes(64))}", now=NOW)  # r = s = 0 ("psychic signatures")
    raw = base64.urlsafe_b64decode(s + "==")
    r, s_ = raw[:32], raw[32:]

    def der_int(b: bytes) -> bytes:
        b = b.lstrip(b"\0")
        if b[0] & 0x80:
            b = b"\0" + b
        return b"\x02" + bytes([len(b)]) + b

    body = der_int(r) + der_int(s_)
    der = b"\x30" + bytes([len(body)]) + body
    with pytest.raises(InvalidSignatureError):
        v.verify(f"{h}.{p}.{b64(der)}", now=NOW)
    assert v.verify(token, now=NOW) == {"sub": "a"}


@pytest.mark.parametrize("kid", ["../../etc/passwd", "' OR 1=1 --", "k" * 5000, "\u0000", "🔑"])
def test_kid_injection_is_just_an_unknown_name(kid: str) -> None:
    v = JWTVerifier(["HS256"], keys=[{"kty": "oct", "k": b64(SECRET.encode()), "kid": "real"}])
    with pytest.raises(InvalidTokenError):
        v.verify(raw_token({"alg": "HS256", "kid": kid}, {"sub": "a"}), now=NOW)


@pytest.mark.parametrize("kid", [1, None, ["real"], {"k": 1}])
def test_kid_must_be_a_string(kid: Any) -> None:
    with pytest.raises(DecodeError):
        HS.verify(raw_token({"alg": "HS256", "kid": kid}, {"sub": "a"}), now=NOW)


@pytest.mark.parametrize("crit", [["exp"], ["b64"], [], "exp", [1]])
def test_crit_is_refused(crit: Any) -> None:
    with pytest.raises(DecodeError, match="crit"):
        HS.verify(raw_token({"alg": "HS256", "crit": crit, "exp": 1}, {"sub": "a"}), now=NOW)


@pytest.mark.parametrize("member", ["jwk", "x5c"])
def test_embedded_keys_are_refused(member: str) -> None:
    value: Any = {"kty": "oct", "k": b64(b"attacker")} if member == "jwk" else [b64(b"attacker-cert")]
    with pytest.raises(DecodeError, match=member):
        HS.verify(raw_token({"alg": "HS256", member: value}, {"sub": "a"}), now=NOW)


@pytest.mark.parametrize("member", ["jku", "x5u"])
def test_key_urls_are_ignored_never_fetched(member: str) -> None:
    """A URL naming a key is not a key: the signature is still checked with the configured key,
    so the header neither helps a forger nor locks out identity providers that send it."""
    evil = "https://evil.example/keys"
    good = raw_token({"alg": "HS256", member: evil}, {"sub": "a"})
    assert HS.verify(good, now=NOW) == {"sub": "a"}
    h, p, _ = good.split(".")
    forged = f"{h}.{p}.{b64(hmac.new(b'attacker', f'{h}.{p}'.encode(), hashlib.sha256).digest())}"
    with pytest.raises(InvalidSignatureError):
        HS.verify(forged, now=NOW)


def test_jwe_and_wrong_segment_counts() -> None:
    with pytest.raises(DecodeError, match="JWE"):
        HS.verify("a.b.c.d.e", now=NOW)
    for bad in ["", "a", "a.b", "a.b.c.d", "....", "a..c"]:
        with pytest.raises(DecodeError):
            HS.verify(bad, now=NOW)


def test_padding_and_non_canonical_base64() -> None:
    h, p, s = encode({"sub": "a"}, SECRET, "HS256").split(".")
    with pytest.raises(DecodeError):
        HS.verify(f"{h}=.{p}.{s}", now=NOW)
    with pytest.raises(DecodeError):
        HS.verify(f"{h}.{p}.{s}=", now=NOW)
    with pytest.raises(DecodeError):
        HS.verify(f"{h.replace('-', '+')}+.{p}.{s}", now=NOW)
    # The last character of a 43-char signature carries 2 unused bits: flipping them is
    # the same bytes in a lenient decoder, and must be refused here.
    last = s[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = alphabet[alphabet.index(last) ^ 1]
    with pytest.raises(DecodeError):
        HS.verify(f"{h}.{p}.{s[:-1]}{twin}", now=NOW)


def test_duplicate_members() -> None:
    header = b'{"alg":"HS256","alg":"none"}'
    with pytest.raises(DecodeError, match="duplicate"):
        HS.verify(raw_token(header, {"sub": "a"}), now=NOW)
    with pytest.raises(DecodeError, match="duplicate"):
        HS.verify(raw_token({"alg": "HS256"}, b'{"sub":"user","sub":"admin"}'), now=NOW)


def test_deep_nesting_and_size() -> None:
    deep = b'{"a":' + b"[" * 200 + b"]" * 200 + b"}"
    with pytest.raises(DecodeError, match="deeper"):
        HS.verify(raw_token({"alg": "HS256"}, deep), now=NOW)
    big = encode({"pad": "x" * 9000}, SECRET, "HS256")
    with pytest.raises(DecodeError, match="larger"):
        HS.verify(big, now=NOW)
    assert JWTVerifier(["HS256"], key=SECRET, max_token_bytes=20000).verify(big, now=NOW)["pad"] == "x" * 9000


@pytest.mark.parametrize(
    ("header", "payload"),
    [
        (b"[]", b"{}"),
        (b'"alg"', b"{}"),
        (b"not json", b"{}"),
        (b'{"alg": 256}', b"{}"),
        (b"{}", b"{}"),
        ({"alg": "HS256"}, b"[1,2]"),
        ({"alg": "HS256"}, b"null"),
        ({"alg": "HS256"}, b"\xff\xfe"),
        ({"alg": "HS256", "b64": False}, {"sub": "a"}),
        ({"alg": "HS256", "typ": 7}, {"sub": "a"}),
        ({"alg": "HS256"}, {"sub": 7}),
        ({"alg": "HS256"}, b'{"exp": 1e999}'),
    ],
)
def test_malformed_headers_and_payloads(header: Any, payload: Any) -> None:
    with pytest.raises(InvalidTokenError):
        HS.verify(raw_token(header, payload), now=NOW)


@pytest.mark.parametrize("token", [None, 12, 1.5, ["a.b.c"], {"t": 1}, b"\xff.\xfe.\xfd", "é.é.é", object()])
def test_non_string_tokens(token: Any) -> None:
    with pytest.raises(InvalidTokenError):
        HS.verify(token, now=NOW)
