"""Token revocation under the faults of issue 21, against real redis-server processes.

- A new worker loads the list in O(list), whatever else the Redis holds: with 10^6 unrelated keys
  a fresh Gate refuses tokens revoked before it started, from its first request.
- A subject revocation names its issuer; its instant is Redis's clock plus the leeway.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from ferrogate import Gate, encode
from redis_server import RedisServer

SECRET = "revocation-trust-test-secret-long-enough-for-hs256"


def token(**claims: Any) -> str:
    now = time.time()
    claims.setdefault("sub", "user-1")
    claims.setdefault("jti", uuid.uuid4().hex)
    claims.setdefault("iat", int(now) - 60)
    claims.setdefault("exp", now + 600)
    return encode({k: v for k, v in claims.items() if v is not None}, SECRET, "HS256")


def config(url: str, **jwt: Any) -> dict[str, Any]:
    return {
        "jwt": {"algorithms": ["HS256"], "key": SECRET, "revocation": "redis", **jwt},
        "redis": {"url": url},
        "defaults": {"auth": "required"},
    }


def status(gate: Gate, t: str) -> int:
    d = gate.check(
        {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": "/me",
            "QUERY_STRING": "",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_AUTHORIZATION": f"Bearer {t}",
        }
    )
    return 200 if d.forward else d.status


@pytest.fixture(scope="module")
def crowded() -> Iterator[RedisServer]:
    """A redis-server holding a million unrelated keys (made inside Redis: seconds, not minutes)."""
    server = RedisServer(extra_args=["--enable-debug-command", "local"])
    server.start()
    try:
        r = redis.Redis.from_url(server.url)
        r.execute_command("DEBUG", "POPULATE", 1_000_000, "unrelated:key")
        assert r.dbsize() >= 1_000_000
        yield server
    finally:
        server.close()


def test_a_new_gate_refuses_revoked_tokens_among_a_million_keys(crowded: RedisServer) -> None:
    a = Gate(config(crowded.url))
    revoked, other = token(), token(sub="user-2")
    subject = token(sub="user-9")
    a.revoke_token(revoked)
    a.revoke_subject("user-9")
    # A fresh worker: its first requests already see the whole list.
    b = Gate(config(crowded.url))
    assert status(b, revoked) == 401
    assert status(b, subject) == 401
    assert status(b, other) == 200
    assert b.revocation_status()["synced"]
    assert b.revocation_status()["tokens"] == 1


def test_the_list_lives_in_its_own_keys(crowded: RedisServer) -> None:
    a = Gate(config(crowded.url))
    for _ in range(100):
        a.revoke_token(token())
    r = redis.Redis.from_url(crowded.url)
    # However long the list, it is a fixed number of keys, loaded without a keyspace scan.
    assert len(r.keys("ferrogate:*revoked*")) <= 3


def test_a_subject_revocation_is_per_issuer(redis_server: RedisServer) -> None:
    g = Gate(config(redis_server.url, issuer=["https://a.example", "https://b.example"]))
    from_a = token(sub="ann", iss="https://a.example")
    from_b = token(sub="ann", iss="https://b.example")
    g.revoke_subject("ann", issuer="https://a.example")
    assert status(g, from_a) == 401
    assert status(g, from_b) == 200, "another issuer's ann is another person"
    fresh = Gate(config(redis_server.url, issuer=["https://a.example", "https://b.example"]))
    assert status(fresh, from_a) == 401
    assert status(fresh, from_b) == 200


def test_a_subject_revocation_needs_its_issuer_when_several_are_trusted(redis_server: RedisServer) -> None:
    g = Gate(config(redis_server.url, issuer=["https://a.example", "https://b.example"]))
    with pytest.raises(ValueError, match="issuer"):
        g.revoke_subject("ann")


def test_the_revocation_instant_is_redis_time_plus_leeway(redis_server: RedisServer) -> None:
    g = Gate(config(redis_server.url, leeway=30))
    r = redis.Redis.from_url(redis_server.url)
    secs, micros = r.time()
    before = secs + micros / 1e6
    t = g.revoke_subject("user-3")
    secs, micros = r.time()
    after = secs + micros / 1e6
    assert before + 30 <= t <= after + 30
    # A token issued (by a host whose clock runs ahead) within the leeway is refused too.
    assert status(g, token(sub="user-3", iat=int(before) + 10)) == 401


def test_a_forked_worker_waits_for_its_first_load(redis_server: RedisServer) -> None:
    # gunicorn --preload: the app (and its Gate) is built in the parent, then workers fork. A
    # revocation the parent never heard of (written straight into Redis, no message) is loaded by
    # the child's own subscriber; the child's first request waits for that load.
    import os

    parent = Gate(config(redis_server.url))
    t = token(jti="raw-revoked")
    r = redis.Redis.from_url(redis_server.url)
    r.hset("ferrogate:{revoked}:entries", "j:raw-revoked", str(time.time() + 600))
    assert status(parent, t) == 200, "the parent's copy does not know it: no message was sent"
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            os.write(write, str(status(parent, t)).encode())
        finally:
            os._exit(0)
    os.close(write)
    got = os.read(read, 16)
    os.close(read)
    os.waitpid(pid, 0)
    assert got == b"401"
