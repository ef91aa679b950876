"""Key pairs for the JWT tests, generated once per session with `cryptography`."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa


@dataclass(frozen=True)
class Pair:
    private_pem: str
    public_pem: str


def _pems(private: object) -> Pair:
    priv = private.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    pub = (
        private.public_key()
        .public_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        .decode()
    )
    return Pair(priv, pub)


@functools.cache
def rsa_pair(bits: int = 2048) -> Pair:
    return _pems(rsa.generate_private_key(public_exponent=65537, key_size=bits))


@functools.cache
def ec_pair(curve: str) -> Pair:
    curves = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1()}
    return _pems(ec.generate_private_key(curves[curve]))


@functools.cache
def ed_pair() -> Pair:
    return _pems(ed25519.Ed25519PrivateKey.generate())


def pair_for(alg: str) -> Pair:
    if alg.startswith(("RS", "PS")):
        return rsa_pair()
    if alg == "ES256":
        return ec_pair("P-256")
    if alg == "ES384":
        return ec_pair("P-384")
    if alg == "ES512":
        return ec_pair("P-521")
    return ed_pair()
