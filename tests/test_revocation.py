"""Token revocation shared through Redis ([jwt] revocation), against a real redis-server.

Two Gate objects in one test have separate local copies, Redis connections and subscriber
threads, as two processes would; one test also runs two real processes. Time rules use ``now=``;
pub/sub delivery is waited for by polling with a bounded deadline, never by sleeping a guess.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from ferrogate import (
    ConfigError,
    Decision,
    ExpiredSignatureError,
    Gate,
    InvalidSignatureError,
    InvalidTokenError,
    MissingRequiredClaimError,
    RevokedTokenError,
    StoreUnavailableError,
    encode,
)
from flask import Flask
from redis_server import RedisServer

SECRET = "revocation-test-secret-long-enough-for-hs256"
REVOKED_CHALLENGE = (
    'Bearer realm="api", error="invalid_token", error_description="the token has been revoked"'
)


def token(**claims: Any) -> str:
    now = time.time()
    claims.setdefault("sub", "user-1")
    claims.setdefault("jti", uuid.uuid4().hex)
    claims.setdefault("iat", int(now) - 60)
    claims.setdefault("exp", now + 600)
    return encode({k: v for k, v in claims.items() if v is not None}, SECRET, "HS256")


def config(url: str, revocation: Any = "redis", **jwt: Any) -> dict[str, Any]:
    return {
        "jwt": {"algorithms": ["HS256"], "key": SECRET, "revocation": revocation, **jwt},
        "redis": {"url": url, "timeout_ms": 200, "breaker_cooldown_ms": 100},
        "defaults": {"auth": "required"},
        "routes": [{"path": "/health", "auth": "none"}],
    }


ENTRIES = "ferrogate:{revoked}:entries"
EXPIRY = "ferrogate:{revoked}:expiry"


def stored(server: RedisServer, field: str) -> tuple[float | None, float | None]:
    """An entry as Redis holds it: ``(value, expiry score)``, None for absent."""
    r = redis.Redis.from_url(server.url)
    value, score = r.hget(ENTRIES, field), r.zscore(EXPIRY, field)
    return (None if value is None else float(value)), score


def subject(sub: str, iss: str = "") -> str:
    return "s:" + json.dumps([iss, sub], separators=(",", ":"))


def environ(t: str | None, path: str = "/me") -> dict[str, Any]:
    env: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "REMOTE_ADDR": "127.0.0.1",
    }
    if t is not None:
        env["HTTP_AUTHORIZATION"] = f"Bearer {t}"
    return env


def check(gate: Gate, t: str) -> Decision:
    return gate.check(environ(t))


def status(gate: Gate, t: str) -> int:
    d = check(gate, t)
    return 200 if d.forward else d.status


def eventually(cond: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Polls `cond` until it holds, failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout}s: {what}")
        time.sleep(0.005)


@pytest.fixture
def gates(redis_server: RedisServer) -> Iterator[Callable[..., Gate]]:
    made: list[Gate] = []

    def make(revocation: Any = "redis", **jwt: Any) -> Gate:
        g = Gate(config(redis_server.url, revocation, **jwt))
        made.append(g)
        return g

    yield make
    made.clear()


def assert_revoked(d: Decision) -> None:
    assert not d.forward
    assert d.status == 401
    headers = dict(d.headers)
    assert headers["www-authenticate"] == REVOKED_CHALLENGE
    assert headers["content-type"] == "application/problem+json"
    body = json.loads(d.body)
    assert body["status"] == 401
    assert body["detail"] == "the token has been revoked"


# -- in one process -----------------------------------------------------------------------------


def test_a_revoked_token_is_refused_at_once_even_from_the_verified_cache(gates: Callable[..., Gate]) -> None:
    g = gates()
    assert g.revocation_status()["synced"], "the first load is waited for at start-up"
    t, other = token(), token()
    for _ in range(3):  # verified once, then served from the verified-token cache
        assert status(g, t) == 200
    assert g.verify_token(t)["sub"] == "user-1"
    jti = g.revoke_token(t)
    assert jti == json.loads(__import__("base64").urlsafe_b64decode(t.split(".")[1] + "==="))["jti"]
    assert_revoked(check(g, t))
    with pytest.raises(RevokedTokenError, match="the token has been revoked") as e:
        g.verify_token(t)
    assert isinstance(e.value, InvalidTokenError)
    assert status(g, other) == 200, "only that token"
    assert status(g, "x") == 401
    assert g.check(environ(None, "/health")).forward


def test_through_flask_the_app_never_sees_a_revoked_token(gates: Callable[..., Gate]) -> None:
    g = gates()
    app = Flask(__name__)
    seen: list[str] = []

    @app.route("/<path:p>")
    def anything(p: str) -> Any:
        seen.append(p)
        return {"ok": True}

    app.wsgi_app = g.wsgi(app.wsgi_app)  # type: ignore[method-assign]
    client = app.test_client()
    t = token()
    assert client.get("/a", headers={"Authorization": f"Bearer {t}"}).status_code == 200
    g.revoke_token(t)
    r = client.get("/b", headers={"Authorization": f"Bearer {t}"})
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == REVOKED_CHALLENGE
    assert r.mimetype == "application/problem+json"
    assert seen == ["a"]


def test_storage_ttl_and_message(gates: Callable[..., Gate], redis_server: RedisServer) -> None:
    g = gates(leeway=30)
    exp = time.time() + 100
    t = token(jti="tok-1", exp=exp)
    assert g.revoke_token(t) == "tok-1"
    value, score = stored(redis_server, "j:tok-1")
    assert value == pytest.approx(exp + 30), "until exp plus the leeway"
    assert score == pytest.approx(exp + 30)
    # a bare jti: with exp= it expires, without it stays
    now = time.time()
    assert g.revoke_token("bare-1", exp=now + 50) == "bare-1"
    assert 49 < (stored(redis_server, "j:bare-1")[1] or 0) - now <= 80
    g.revoke_token("bare-2")
    assert stored(redis_server, "j:bare-2") == (0.0, float("inf"))
    # exp may be a datetime
    g.revoke_token("bare-3", exp=datetime.fromtimestamp(now + 1000, tz=UTC))
    assert 1000 < (stored(redis_server, "j:bare-3")[1] or 0) - now <= 1031
    # an expired token needs no entry
    g.revoke_token("old", exp=time.time() - 100)
    assert stored(redis_server, "j:old") == (None, None)
    assert status(g, token(jti="bare-1")) == 401
    assert g.revocation_status()["tokens"] == 4


def test_revoke_token_checks_what_it_is_given(gates: Callable[..., Gate]) -> None:
    g = gates()
    with pytest.raises(MissingRequiredClaimError) as e:
        g.revoke_token(token(jti=None))
    assert e.value.claim == "jti"
    forged = encode({"sub": "x", "jti": "victim"}, "another-secret", "HS256")
    with pytest.raises(InvalidSignatureError):
        g.revoke_token(forged)
    with pytest.raises(ValueError, match="jti must be"):
        g.revoke_token("")
    with pytest.raises(ValueError, match="finite"):
        g.revoke_token("j", exp=float("inf"))
    with pytest.raises(ValueError, match="sub must be"):
        g.revoke_subject("x" * 2000)


def test_entries_expire_with_the_token(gates: Callable[..., Gate]) -> None:
    # verify_exp off so the token itself stays valid past exp: what ends is the revocation entry
    g = gates(leeway=5, verify_exp=False)
    exp = time.time() + 100
    t = token(exp=exp)
    g.revoke_token(t)
    with pytest.raises(RevokedTokenError):
        g.verify_token(t, now=exp + 4.9)
    assert g.verify_token(t, now=exp + 5)["sub"] == "user-1"
    strict = gates(leeway=5)
    with pytest.raises(ExpiredSignatureError):
        strict.verify_token(t, now=exp + 5)


def test_revoke_subject_before_t(gates: Callable[..., Gate], redis_server: RedisServer) -> None:
    g = gates()
    now = time.time()
    old, fresh, no_iat = token(iat=now - 300), token(iat=now - 10), token(iat=None)
    other_user = token(sub="user-2", iat=now - 300)
    t = g.revoke_subject("user-1", before=now - 100)
    assert t == pytest.approx(now - 100, abs=1e-6)
    assert stored(redis_server, subject("user-1"))[0] == pytest.approx(t, abs=1e-6)
    assert_revoked(check(g, old))
    assert_revoked(check(g, no_iat))
    assert status(g, fresh) == 200, "issued after T"
    assert status(g, other_user) == 200
    # an earlier T never un-revokes; the default T is now
    assert g.revoke_subject("user-1", before=now - 1000) == pytest.approx(t, abs=1e-6)
    assert stored(redis_server, subject("user-1"))[0] == pytest.approx(t, abs=1e-6)
    assert status(g, old) == 401
    assert g.revoke_subject("user-1") >= now
    assert status(g, fresh) == 401
    assert g.revoke_subject("user-3", before=datetime.fromtimestamp(now, tz=UTC)) == pytest.approx(now)


def test_subject_ttl_expires_the_entry(gates: Callable[..., Gate], redis_server: RedisServer) -> None:
    g = gates({"store": "redis", "subject_ttl": 3600})
    now = time.time()
    g.revoke_subject("user-1", before=now)
    assert 3590 < (stored(redis_server, subject("user-1"))[1] or 0) - time.time() <= 3600
    t = token(iat=now - 10, exp=now + 10_000)
    with pytest.raises(RevokedTokenError):
        g.verify_token(t, now=now + 3599)
    assert g.verify_token(t, now=now + 3600)["sub"] == "user-1"


# -- across processes ----------------------------------------------------------------------------


def test_a_revocation_reaches_another_gate_through_pubsub(gates: Callable[..., Gate]) -> None:
    a, b = gates(), gates()
    t, s = token(), token(sub="user-9", iat=int(time.time()) - 100)
    assert status(b, t) == 200  # cached in b's verifier
    assert status(b, s) == 200
    a.revoke_token(t)
    a.revoke_subject("user-9")
    eventually(lambda: status(b, t) == 401, "b refuses the revoked jti")
    eventually(lambda: status(b, s) == 401, "b refuses the revoked subject")
    assert_revoked(check(b, t))
    assert b.revocation_status()["tokens"] == 1
    assert b.revocation_status()["subjects"] == 1


def test_a_new_gate_loads_existing_revocations(gates: Callable[..., Gate]) -> None:
    a = gates()
    t = token()
    a.revoke_token(t)
    a.revoke_subject("user-7", before=time.time())
    b = gates()  # starts after: its first load happens before it serves a request
    assert status(b, t) == 401
    assert status(b, token(sub="user-7")) == 401


def test_check_always_takes_effect_everywhere_within_one_request(gates: Callable[..., Gate]) -> None:
    cfg = {"store": "redis", "check": "always"}
    a, b = gates(cfg), gates(cfg)
    assert a.revocation_status()["check"] == "always"
    for i in range(50):
        t = token(sub=f"u{i}")
        assert status(b, t) == 200
        a.revoke_token(t)
        assert_revoked(check(b, t))  # the very next request, no waiting
        s = token(sub=f"s{i}", iat=int(time.time()) - 5)
        assert status(b, s) == 200
        a.revoke_subject(f"s{i}")
        assert status(b, s) == 401
    with pytest.raises(RevokedTokenError):
        b.verify_token(t)


CHILD = textwrap.dedent(
    """
    import sys, json
    from ferrogate import Gate
    gate = Gate(json.loads(sys.argv[1]))
    print("ready", flush=True)
    for line in sys.stdin:
        cmd, arg = line.split()
        if cmd == "check":
            d = gate.check({"REQUEST_METHOD": "GET", "PATH_INFO": "/me", "QUERY_STRING": "",
                            "REMOTE_ADDR": "127.0.0.1", "HTTP_AUTHORIZATION": "Bearer " + arg})
            print(200 if d.forward else d.status, flush=True)
        elif cmd == "revoke":
            print(gate.revoke_token(arg), flush=True)
    """
)


class Child:
    def __init__(self, cfg: dict[str, Any]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, json.dumps(cfg)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.ask(None) == "ready"

    def ask(self, line: str | None) -> str:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        if line is not None:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=10)


@pytest.mark.parametrize("mode", ["local", "always"])
def test_two_real_processes(redis_server: RedisServer, mode: str) -> None:
    cfg = config(redis_server.url, {"store": "redis", "check": mode})
    one, two = Child(cfg), Child(cfg)
    try:
        t = token()
        assert one.ask(f"check {t}") == "200"
        assert two.ask(f"check {t}") == "200"
        one.ask(f"revoke {t}")
        assert one.ask(f"check {t}") == "401", "at once in the revoking process"
        if mode == "always":
            assert two.ask(f"check {t}") == "401", "the next request in the other process"
        else:
            eventually(lambda: two.ask(f"check {t}") == "401", "the other process refuses it")
    finally:
        one.close()
        two.close()


# -- outages -------------------------------------------------------------------------------------


def own_gate(server: RedisServer, revocation: Any = "redis") -> Gate:
    return Gate(config(server.url, revocation))


def test_subscriber_reconnect_reloads_the_list(own_redis: RedisServer) -> None:
    g = own_gate(own_redis)
    before_outage = token()
    g.revoke_token(before_outage)
    own_redis.stop()  # the data goes with it
    eventually(lambda: not g.revocation_status()["synced"], "the subscriber notices")
    assert status(g, before_outage) == 401, "the local copy stays in use"
    own_redis.start()
    # revoked meanwhile by someone else, straight into Redis, with no message
    raw = token(jti="raw-1")
    r = redis.Redis.from_url(own_redis.url)
    r.hset(ENTRIES, mapping={"j:raw-1": str(time.time() + 600), subject("user-5"): str(time.time())})
    # whatever the subscriber did so far, it reconnects (and reloads) after the writes above
    own_redis.command("CLIENT", "KILL", "TYPE", "pubsub")
    # (a reload between the two writes may have seen only the first; the one after the kill sees
    # both, and "synced" may still describe the killed connection for a moment: poll for all)
    eventually(
        lambda: (
            status(g, raw) == 401
            and status(g, token(sub="user-5")) == 401
            and g.revocation_status()["synced"]
        ),
        "reloaded on reconnect",
    )
    assert status(g, before_outage) == 401, "what the copy knew is kept"
    assert status(g, token()) == 200


def test_redis_down_allow_uses_the_local_copy(own_redis: RedisServer) -> None:
    g = own_gate(own_redis, {"store": "redis", "on_error": "allow"})
    revoked, good = token(), token()
    g.revoke_token(revoked)
    own_redis.stop()
    eventually(lambda: not g.revocation_status()["synced"], "the subscriber notices")
    assert status(g, good) == 200
    assert status(g, revoked) == 401
    assert g.verify_token(good)["sub"] == "user-1"
    late = token()
    with pytest.raises(StoreUnavailableError, match="applies in this process only"):
        g.revoke_token(late)
    assert status(g, late) == 401, "applied locally all the same"
    with pytest.raises(StoreUnavailableError):
        g.revoke_subject("user-2")
    assert status(g, token(sub="user-2", iat=int(time.time()) - 10)) == 401


def test_redis_down_deny_answers_503_never_500(own_redis: RedisServer) -> None:
    g = own_gate(own_redis, {"store": "redis", "on_error": "deny"})
    revoked, good = token(), token()
    g.revoke_token(revoked)
    assert status(g, good) == 200
    own_redis.stop()
    eventually(lambda: status(g, good) == 503, "deny once the copy cannot be trusted")
    d = check(g, good)
    assert dict(d.headers)["retry-after"] == "1"
    assert json.loads(d.body)["status"] == 503
    assert status(g, revoked) == 401, "a known revocation is still a 401"
    assert g.check(environ(None, "/health")).forward, "routes without auth are untouched"
    with pytest.raises(StoreUnavailableError):
        g.verify_token(good)
    own_redis.start()
    eventually(lambda: status(g, good) == 200, "back once resynced")


@pytest.mark.parametrize("outage", ["stop", "pause"])
@pytest.mark.parametrize("on_error", ["allow", "deny"])
def test_check_always_with_redis_down(own_redis: RedisServer, on_error: str, outage: str) -> None:
    g = own_gate(own_redis, {"store": "redis", "check": "always", "on_error": on_error})
    revoked, good = token(), token()
    g.revoke_token(revoked)
    getattr(own_redis, outage)()
    try:
        expected = 200 if on_error == "allow" else 503
        for _ in range(5):  # timeouts, then the open breaker: never a 500, never an exception
            assert status(g, good) == expected
            assert status(g, revoked) == 401
    finally:
        own_redis.resume()


def test_a_gate_built_while_redis_is_down(own_redis: RedisServer) -> None:
    own_redis.stop()
    started = time.monotonic()
    g = own_gate(own_redis, {"store": "redis", "on_error": "deny"})
    assert time.monotonic() - started < 2
    assert not g.revocation_status()["synced"]
    assert status(g, token()) == 503
    own_redis.start()
    eventually(lambda: status(g, token()) == 200, "synced once Redis is up")


# -- config ----------------------------------------------------------------------------------------


def test_config_errors_name_the_key(redis_server: RedisServer) -> None:
    cfg = config(redis_server.url)
    del cfg["redis"]
    with pytest.raises(ConfigError) as e:
        Gate(cfg)
    assert [k for k, _ in e.value.issues] == ["jwt.revocation"]
    assert "[redis]" in e.value.issues[0][1]
    bad = config(
        redis_server.url,
        {"store": "memory", "on_error": "local", "check": "sometimes", "max_entries": -1, "ttl": 1},
    )
    with pytest.raises(ConfigError) as e:
        Gate(bad)
    assert [k for k, _ in e.value.issues] == [
        "jwt.revocation.ttl",
        "jwt.revocation.store",
        "jwt.revocation.on_error",
        "jwt.revocation.check",
        "jwt.revocation.max_entries",
    ]
    for value in ["memcached", 1, []]:
        with pytest.raises(ConfigError) as e:
            Gate(config(redis_server.url, value))
        assert [k for k, _ in e.value.issues] == ["jwt.revocation"]


def test_the_api_needs_revocation_configured() -> None:
    g = Gate({"jwt": {"algorithms": ["HS256"], "key": SECRET}})
    with pytest.raises(ConfigError, match=r"jwt\.revocation"):
        g.revoke_token("x")
    with pytest.raises(ConfigError, match=r"jwt\.revocation"):
        g.revocation_status()


def test_flask_extension_revokes(redis_server: RedisServer) -> None:
    from ferrogate.flask import FerroGate

    app = Flask(__name__)
    app.config["FERROGATE_JWT"] = {"algorithms": ["HS256"], "key": SECRET, "revocation": "redis"}
    app.config["FERROGATE_REDIS"] = {"url": redis_server.url}
    ext = FerroGate(app)

    @app.get("/me")
    @ext.auth()
    def me() -> Any:
        return {"ok": True}

    client = app.test_client()
    t = token()
    assert client.get("/me", headers={"Authorization": f"Bearer {t}"}).status_code == 200
    ext.revoke_token(t, app=app)
    r = client.get("/me", headers={"Authorization": f"Bearer {t}"})
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == REVOKED_CHALLENGE
    ext.revoke_subject("user-2", app=app)
    assert client.get("/me", headers={"Authorization": f"Bearer {token(sub='user-2')}"}).status_code == 401


def test_a_hung_redis_is_noticed_by_the_subscriber_heartbeat(own_redis: RedisServer) -> None:
    # SIGSTOP: the connection stays open and silent, as with a link cut without a reset
    g = own_gate(own_redis, {"store": "redis", "on_error": "deny"})
    good = token()
    assert status(g, good) == 200
    own_redis.pause()
    try:
        eventually(lambda: status(g, good) == 503, "the heartbeat finds the server silent")
    finally:
        own_redis.resume()
    eventually(lambda: status(g, good) == 200, "resynced once it answers again")


def test_a_dropped_gate_stops_its_subscriber_thread(redis_server: RedisServer) -> None:
    import gc
    import os

    def threads() -> int:
        return len(os.listdir("/proc/self/task"))

    gc.collect()
    baseline = threads()
    made = [Gate(config(redis_server.url)) for _ in range(10)]
    assert threads() >= baseline + 10
    made.clear()
    gc.collect()
    eventually(lambda: threads() <= baseline, "every subscriber thread ended")


def test_resync_waits_out_an_open_circuit_breaker(own_redis: RedisServer) -> None:
    cfg = config(own_redis.url, {"store": "redis", "on_error": "deny"})
    cfg["redis"]["breaker_cooldown_ms"] = 1500
    g = Gate(cfg)
    good = token()
    assert status(g, good) == 200
    own_redis.stop()
    eventually(lambda: status(g, good) == 503, "unsynced")
    for _ in range(3):  # failed calls open the breaker
        with pytest.raises(StoreUnavailableError):
            g.revoke_token(uuid.uuid4().hex)
    own_redis.start()
    # the subscriber reconnects at once; its reload meets the open breaker and keeps trying
    eventually(lambda: status(g, good) == 200, "resynced after the breaker's cooldown")


def test_forked_child_gets_its_own_subscriber(redis_server: RedisServer) -> None:
    """A worker forked from a process holding the gate (gunicorn --preload) hears revocations:
    its own subscriber thread is started after the fork."""
    import os

    g = Gate(config(redis_server.url))
    t = token()
    assert g.check(environ(t)).forward
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(read)
        ok = False
        try:
            deadline = time.monotonic() + 10
            os.write(write, b"r")  # ready: the parent revokes now
            while time.monotonic() < deadline:
                if g.check(environ(t)).status == 401:
                    ok = True
                    break
                time.sleep(0.01)
        finally:
            os._exit(0 if ok else 1)
    os.close(write)
    assert os.read(read, 1) == b"r"
    os.close(read)
    # Heard by the child's subscriber, or found by its reload if that connects later.
    Gate(config(redis_server.url)).revoke_token(t)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0, "the child never heard the revocation"
