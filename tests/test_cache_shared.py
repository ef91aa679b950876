"""The shared cache tier: L1 in each process, L2 in a real redis-server, purges that reach every
process. Two gunicorn processes (one worker each, so each request goes to a known process) prove
the cross-process rules; two Gate objects in one process cover the failure modes quickly."""

from __future__ import annotations

import http.client
import io
import json
import os
import socket
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ferrogate import ConfigError, Gate, encode
from flask import Flask, Response, request
from redis_server import RedisServer
from servers import start_gunicorn
from test_redis_topologies import cluster as redis_cluster  # noqa: F401 (the 3-node cluster fixture)

SECRET = "shared-cache-test-secret-long-enough-for-hs256"


def token(sub: str) -> str:
    return encode({"sub": sub, "exp": time.time() + 300}, SECRET, "HS256")


def config(url: str, **cache: Any) -> dict[str, Any]:
    return {
        "redis": {"url": url, "timeout_ms": 100, "connect_timeout_ms": 100, "breaker_cooldown_ms": 200},
        "jwt": {"algorithms": ["HS256"], "key": SECRET},
        "cache": {"shared": "redis", "shared_max_entry_bytes": 64 * 1024, **cache},
        "routes": [
            {"path": "/items/{id}", "cache": 60},
            {"path": "/me", "auth": "required", "cache": 60},
            {"path": "/big", "cache": 60},
            {"path": "/lang", "cache": 60},
            {"path": "/short", "cache": 60},
        ],
    }


def until(check: Callable[[], bool], what: str, seconds: float = 5.0) -> None:
    """Polls `check` until it holds; fails after `seconds` (cross-process effects are async)."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {seconds}s: {what}")
        time.sleep(0.02)


# --- two Gates in one process ---------------------------------------------------------------


class Node:
    """One Gate in front of its own Flask app (its own call counter), as a process would be."""

    def __init__(self, name: str, url: str, **cache: Any) -> None:
        self.name = name
        self.gate = Gate(config(url, **cache))
        self.calls = 0
        # Runs inside the view: what another process does while this one computes a response.
        self.during: Callable[[], None] | None = None
        app = Flask(name)
        self.app = app

        @app.route("/<path:p>", methods=["GET", "POST"])
        def anything(p: str) -> Any:
            if request.method == "POST":
                return {"ok": True}, 200
            self.calls += 1
            if self.during is not None:
                self.during()
            headers = {"X-Cache-Tags": "items"} if p.startswith("items/") else {}
            if p == "me":
                return {"me": request.environ["ferrogate.claims"]["sub"], "by": name}
            if p == "big":
                return Response(b"b" * (100 * 1024), headers=headers)
            if p == "lang":
                r = Response(f"{request.headers.get('Accept-Language')} by {name}")
                r.headers["Vary"] = "Accept-Language"
                return r
            if p == "short":
                return Response("short", headers={"Cache-Control": "max-age=60"})
            return Response(json.dumps({"path": p, "by": name, "n": self.calls}), headers=headers)

        self.wsgi = self.gate.wsgi(app.wsgi_app)

    @property
    def cache(self) -> Any:
        assert self.gate.cache is not None
        return self.gate.cache

    def stats(self) -> dict[str, int]:
        s: dict[str, int] = self.cache.stats()
        return s

    def connected(self) -> None:
        until(lambda: bool(self.stats()["l2_connected"]), f"{self.name} subscribed")

    def get(self, path: str, method: str = "GET", **headers: str) -> tuple[int, dict[str, str], bytes]:
        env: dict[str, Any] = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SERVER_NAME": "api.example.com",
            "SERVER_PORT": "80",
            "HTTP_HOST": "api.example.com",
            "REMOTE_ADDR": "127.0.0.1",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(),
            "wsgi.errors": io.StringIO(),
        }
        env.update({f"HTTP_{k.upper()}": v for k, v in headers.items()})
        seen: dict[str, Any] = {}

        def start_response(status: str, hs: list[tuple[str, str]], exc_info: Any = None) -> Any:
            seen["status"] = int(status.split()[0])
            seen["headers"] = {k.lower(): v for k, v in hs}

        body = self.wsgi(env, start_response)
        try:
            data = b"".join(body)
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
        return seen["status"], seen["headers"], data


@pytest.fixture
def nodes(redis_server: RedisServer) -> Iterator[tuple[Node, Node]]:
    a, b = Node("a", redis_server.url), Node("b", redis_server.url)
    a.connected()
    b.connected()
    return a, b


def entry_keys(server: RedisServer) -> list[bytes]:
    reply = server.command("KEYS", "ferrogate:c{cache}:e:*")
    return [line for line in reply.split(b"\r\n") if line.startswith(b"ferrogate:")]


def test_shared_needs_a_redis_section() -> None:
    with pytest.raises(ConfigError) as e:
        Gate({"cache": {"shared": "redis"}, "routes": [{"path": "/a", "cache": 60}]})
    assert "cache.shared" in str(e.value)
    with pytest.raises(ConfigError) as e:
        Gate({"redis": {"url": "redis://127.0.0.1:1"}, "cache": {"shared": "memcached"}})
    assert "cache.shared" in str(e.value)


def test_stored_by_one_served_by_the_other_with_its_lifetime(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    status, headers, body = a.get("/items/1")
    assert status == 200
    assert "stored" in headers["cache-status"]
    status, headers, body2 = b.get("/items/1")
    assert status == 200
    assert headers["cache-status"].startswith("ferrogate; hit")
    assert body2 == body, "b served a's response from L2"
    assert b.calls == 0
    assert b.stats()["l2_hits"] == 1
    # Promoted into b's L1: the next hit costs no Redis round trip.
    b.get("/items/1")
    assert b.stats()["l2_hits"] == 1
    assert b.stats()["hits"] >= 1
    # ETag revalidation works on an L2 hit as on an L1 one.
    etag = headers["etag"]
    status, _, empty = b.get("/items/1", if_none_match=etag)
    assert status == 304
    assert empty == b""


def test_promotion_never_extends_the_remaining_lifetime(
    redis_server: RedisServer, nodes: tuple[Node, Node]
) -> None:
    a, b = nodes
    a.get("/short")
    (key,) = entry_keys(redis_server)
    # Five seconds left in Redis: b's copy must not live longer than that, whatever max-age said.
    assert redis_server.command("PEXPIRE", key.decode(), "5000").startswith(b":1")
    _, headers, _ = b.get("/short")
    assert headers["cache-status"].startswith("ferrogate; hit")
    ttl = int(headers["cache-status"].split("ttl=")[1])
    assert ttl <= 5, headers["cache-status"]


def test_a_purge_in_one_empties_the_others_l1_and_l2(
    redis_server: RedisServer, nodes: tuple[Node, Node]
) -> None:
    a, b = nodes
    for path in ("/items/1", "/items/2", "/items/3"):
        a.get(path)
        b.get(path)  # now in b's L1 too
    assert b.calls == 0
    assert a.cache.purge_path("/items/1") >= 1
    until(lambda: b.get("/items/1")[1]["cache-status"].startswith("ferrogate; fwd=miss"), "b's L1 purged")
    assert b.calls == 1, "the view ran again in b"
    # By tag, from b: a's L1 and Redis lose every tagged entry.
    assert b.cache.purge_tag("items") >= 1
    until(lambda: "fwd=miss" in a.get("/items/2")[1]["cache-status"], "a's L1 purged by tag")
    # An unsafe request through one gate invalidates the path everywhere.
    a.get("/items/3")
    b.get("/items/3")
    calls = b.calls
    status, _, _ = a.get("/items/3", method="POST")
    assert status == 200
    until(lambda: "fwd=miss" in b.get("/items/3")[1]["cache-status"], "b's L1 invalidated by a's POST")
    assert b.calls == calls + 1
    # clear() (purge everything) reaches the other process and empties Redis.
    a.get("/items/4")
    b.get("/items/4")
    b.cache.clear()
    assert entry_keys(redis_server) == []
    until(lambda: "fwd=miss" in a.get("/items/4")[1]["cache-status"], "a's L1 cleared")
    assert a.stats()["l2_purges_received"] >= 2


@pytest.mark.parametrize("purge", ["path", "tag", "prefix", "unsafe"])
def test_a_response_computed_during_a_purge_is_not_stored(
    redis_server: RedisServer, nodes: tuple[Node, Node], purge: str
) -> None:
    a, b = nodes
    # b purges while a's view is running: a's response may predate the purge.
    actions: dict[str, Callable[[], object]] = {
        "path": lambda: b.cache.purge_path("/items/20"),
        "tag": lambda: b.cache.purge_tag("items"),
        "prefix": lambda: b.cache.purge_prefix("/items"),
        "unsafe": lambda: b.get("/items/20", method="POST"),
    }
    a.during = lambda: actions[purge]()
    _, h, _ = a.get("/items/20")
    a.during = None
    assert h["cache-status"] == "ferrogate; fwd=miss; detail=purged-meanwhile"
    assert entry_keys(redis_server) == []
    assert a.stats()["l2_purged_meanwhile"] == 1
    assert "fwd=miss" in a.get("/items/20")[1]["cache-status"], "not in a's L1 either"
    assert a.get("/items/20")[1]["cache-status"].startswith("ferrogate; hit")
    # A purge of another path does not stop the store.
    a.during = lambda: b.cache.purge_path("/elsewhere")
    assert "stored" in a.get("/items/21")[1]["cache-status"]


def test_prefix_purge_reaches_both_tiers(redis_server: RedisServer, nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    a.get("/items/1")
    a.get("/lang", accept_language="fr")
    b.get("/items/1")
    assert b.cache.purge_prefix("/items") >= 1
    until(lambda: "fwd=miss" in a.get("/items/1")[1]["cache-status"], "a's L1 purged by prefix")
    # /lang was outside the prefix: still in Redis, served to b.
    assert b.get("/lang", accept_language="fr")[1]["cache-status"].startswith("ferrogate; hit")


def test_vary_is_part_of_the_shared_key(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    a.get("/lang", accept_language="fr")
    a.get("/lang", accept_language="de")
    _, h, body = b.get("/lang", accept_language="de")
    assert h["cache-status"].startswith("ferrogate; hit")
    assert body == b"de by a"
    _, h, body = b.get("/lang", accept_language="fr")
    assert body == b"fr by a"
    _, h, body = b.get("/lang", accept_language="en")
    assert "fwd=miss" in h["cache-status"]
    assert body == b"en by b"


def test_principal_isolation_across_processes(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    alice, bob = token("alice"), token("bob")
    _, _, body = a.get("/me", authorization=f"Bearer {alice}")
    assert json.loads(body)["me"] == "alice"
    _, h, body = b.get("/me", authorization=f"Bearer {bob}")
    assert json.loads(body) == {"me": "bob", "by": "b"}
    assert "fwd=miss" in h["cache-status"]
    _, h, body = b.get("/me", authorization=f"Bearer {alice}")
    assert json.loads(body) == {"me": "alice", "by": "a"}
    assert h["cache-status"].startswith("ferrogate; hit")
    _, _, body = a.get("/me", authorization=f"Bearer {bob}")
    assert json.loads(body)["me"] == "bob"


def test_key_names_hold_no_user_material(redis_server: RedisServer, nodes: tuple[Node, Node]) -> None:
    a, _ = nodes
    a.get("/me", authorization=f"Bearer {token('alice-secret-name')}")
    everything = redis_server.command("KEYS", "*")
    assert b"alice" not in everything
    assert b"/me" not in everything
    assert entry_keys(redis_server)


def test_oversized_responses_stay_in_l1_but_purges_reach_them(
    redis_server: RedisServer, nodes: tuple[Node, Node]
) -> None:
    a, b = nodes
    _, h, _ = a.get("/big")
    assert "stored" in h["cache-status"]
    assert entry_keys(redis_server) == [], "100 KiB is over shared_max_entry_bytes: not in Redis"
    assert a.stats()["l2_too_large"] == 1
    assert a.get("/big")[1]["cache-status"].startswith("ferrogate; hit"), "in a's L1"
    b.get("/big")
    assert b.calls == 1, "b had to ask its own app"
    # A purge from b still reaches a's L1 copy: it is indexed in Redis.
    b.get("/big", method="POST")
    until(lambda: "fwd=miss" in a.get("/big")[1]["cache-status"], "a's oversized L1 entry invalidated")


def raw_command(server: RedisServer, *args: bytes) -> bytes:
    parts = [b"*%d\r\n" % len(args)] + [b"$%d\r\n%s\r\n" % (len(a), a) for a in args]
    with socket.create_connection(("127.0.0.1", server.port), timeout=1) as s:
        s.sendall(b"".join(parts))
        return s.recv(1 << 20)


def test_a_corrupt_or_foreign_value_is_a_miss(redis_server: RedisServer, nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    a.get("/items/7")
    (key,) = entry_keys(redis_server)
    assert raw_command(redis_server, b"SET", key, b"\x00garbage\xff", b"PX", b"60000").startswith(b"+OK")
    status, h, body = b.get("/items/7")
    assert status == 200
    assert "fwd=miss" in h["cache-status"]
    assert json.loads(body)["by"] == "b"
    assert b.stats()["l2_corrupt"] == 1
    # A well-formed value moved under another key (another user's entry, say) is refused too.
    before = set(entry_keys(redis_server))
    a.get("/items/8")
    (k8,) = set(entry_keys(redis_server)) - before
    a.get("/items/9")
    (k9,) = set(entry_keys(redis_server)) - before - {k8}
    reply = raw_command(redis_server, b"GET", k9)
    value = reply.split(b"\r\n", 1)[1][: int(reply[1 : reply.index(b"\r\n")])]
    assert value.startswith(b"FGC\x01")
    assert raw_command(redis_server, b"SET", k8, value, b"PX", b"60000").startswith(b"+OK")
    status, h, body = b.get("/items/8")
    assert status == 200
    assert json.loads(body) == {"path": "items/8", "by": "b", "n": 2}
    assert b.stats()["l2_corrupt"] == 2


def test_redis_down_is_a_miss_never_a_500_then_recovery(own_redis: RedisServer) -> None:
    a, b = Node("a", own_redis.url), Node("b", own_redis.url)
    a.connected()
    b.connected()
    a.get("/items/1")
    assert b.get("/items/1")[1]["cache-status"].startswith("ferrogate; hit")
    own_redis.stop()
    # The subscribers notice; from then on no process answers from an L1 that may miss purges.
    until(lambda: not a.stats()["l2_connected"] and not b.stats()["l2_connected"], "subscribers down")
    before = b.calls
    for _ in range(5):
        status, _h, body = b.get("/items/1")
        assert status == 200
        assert json.loads(body)["path"] == "items/1"
    assert b.calls == before + 5, "every request went to the app"
    # Purges and unsafe requests while Redis is away: applied locally, queued, no exception.
    assert a.get("/items/1", method="POST")[0] == 200
    a.cache.purge_tag("items")
    assert a.stats()["l2_pending_purges"] >= 1
    assert b.stats()["l2_errors"] >= 1
    own_redis.start()
    until(lambda: a.stats()["l2_connected"] and b.stats()["l2_connected"], "subscribers back", seconds=10)
    # Sent on reconnect, or by the next request once the breaker lets calls through.
    until(lambda: a.get("/items/5")[0] == 200 and a.stats()["l2_pending_purges"] == 0, "queued purges sent")
    # Stores and L2 hits work again once the breaker lets calls through.
    until(lambda: "stored" in a.get("/items/9")[1]["cache-status"], "a stores again")
    # b's breaker may still be open from the outage (it retries after its cooldown).
    until(lambda: b.get("/items/9")[1]["cache-status"].startswith("ferrogate; hit"), "b hits a's entry in L2")
    assert json.loads(b.get("/items/9")[2])["by"] == "a"


def test_a_paused_redis_stops_l1_within_the_bound(own_redis: RedisServer) -> None:
    a = Node("a", own_redis.url)
    a.connected()
    a.get("/items/1")
    assert a.get("/items/1")[1]["cache-status"].startswith("ferrogate; hit")
    own_redis.pause()
    try:
        started = time.monotonic()
        # The subscriber's PING (every second, 200 ms to answer) goes unanswered: L1 is off.
        until(lambda: not a.stats()["l2_connected"], "subscriber notices the pause", seconds=3)
        assert time.monotonic() - started < 2.5
        status, h, _ = a.get("/items/1")
        assert status == 200
        assert "fwd=miss" in h["cache-status"]
    finally:
        own_redis.resume()
    until(lambda: bool(a.stats()["l2_connected"]), "subscriber back")


# --- two processes --------------------------------------------------------------------------

APP = textwrap.dedent(
    """
    import json, os
    from flask import Flask, request
    from ferrogate import Gate

    gate = Gate({
        "redis": {"url": os.environ["REDIS_URL"]},
        "jwt": {"algorithms": ["HS256"], "key": os.environ["SECRET"]},
        "cache": {"shared": "redis", "shared_max_entry_bytes": 65536},
        "routes": [
            {"path": "/items/{id}", "cache": 60},
            {"path": "/me", "auth": "required", "cache": 60},
            {"path": "/big", "cache": 60},
            {"path": "/admin/{*rest}", "exempt": True},
        ],
    })
    app = Flask(__name__)
    calls = {"n": 0}

    @app.route("/items/<i>", methods=["GET", "POST"])
    def item(i):
        if request.method == "POST":
            return {"ok": True}
        calls["n"] += 1
        return {"item": i, "pid": os.getpid()}, 200, {"X-Cache-Tags": "items"}

    @app.get("/me")
    def me():
        calls["n"] += 1
        return {"me": request.environ["ferrogate.claims"]["sub"], "pid": os.getpid()}

    @app.get("/big")
    def big():
        calls["n"] += 1
        return "x" * 100000

    @app.post("/admin/purge")
    def purge():
        kind, arg = request.args["kind"], request.args.get("arg", "")
        getattr(gate.cache, "purge_" + kind)(arg)
        return {"ok": True}

    @app.get("/admin/stats")
    def stats():
        return {**gate.cache.stats(), "calls": calls["n"], "pid": os.getpid()}

    app.wsgi_app = gate.wsgi(app.wsgi_app)
    """
)


class Proc:
    def __init__(self, tmp: Path, url: str) -> None:
        env = {**os.environ, "REDIS_URL": url, "SECRET": SECRET, "PYTHONPATH": str(tmp)}
        self.proc, self.port = start_gunicorn("shared_app:app", tmp, "-w", "1", env=env, timeout=20)
        until(self.up, "gunicorn up", seconds=20)

    def up(self) -> bool:
        try:
            return bool(self.stats()["l2_connected"])
        except OSError:
            return False

    def request(self, method: str, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            # One public host name, as behind a load balancer (the Host header is part of the key).
            hs = {"Host": "api.example.com", **{k.replace("_", "-"): v for k, v in headers.items()}}
            c.request(method, path, headers=hs)
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def stats(self) -> dict[str, Any]:
        s: dict[str, Any] = json.loads(self.request("GET", "/admin/stats")[2])
        return s

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def procs(tmp_path: Path, redis_server: RedisServer) -> Iterator[tuple[Proc, Proc]]:
    (tmp_path / "shared_app.py").write_text(APP)
    a = Proc(tmp_path, redis_server.url)
    try:
        b = Proc(tmp_path, redis_server.url)
        try:
            yield a, b
        finally:
            b.close()
    finally:
        a.close()


def test_two_processes_share_l2_and_purges(redis_server: RedisServer, procs: tuple[Proc, Proc]) -> None:
    a, b = procs
    pid_a = a.stats()["pid"]
    s, h, body = a.request("GET", "/items/1")
    assert s == 200
    assert "stored" in h["cache-status"]
    s, h, body_b = b.request("GET", "/items/1")
    assert s == 200
    assert h["cache-status"].startswith("ferrogate; hit")
    assert json.loads(body_b)["pid"] == pid_a
    assert body_b == body
    assert b.stats()["calls"] == 0, "the view ran once, in a"
    b.request("GET", "/items/1")
    assert b.stats()["hits"] >= 1
    # Purge by path in a: b's L1 and Redis lose it; b's view runs.
    a.request("POST", "/admin/purge?kind=path&arg=/items/1")
    until(lambda: "fwd=miss" in b.request("GET", "/items/1")[1]["cache-status"], "b's L1 purged")
    assert b.stats()["calls"] == 1
    # Purge by tag in b reaches a (which stored the entry b just served from L2? no: b's own).
    a.request("GET", "/items/1")
    assert a.stats()["calls"] == 1
    b.request("POST", "/admin/purge?kind=tag&arg=items")
    until(lambda: "fwd=miss" in a.request("GET", "/items/1")[1]["cache-status"], "a's L1 purged by tag")
    # An unsafe request in b invalidates a's copy.
    a.request("GET", "/items/2")
    b.request("GET", "/items/2")
    b.request("POST", "/items/2")
    until(
        lambda: "fwd=miss" in a.request("GET", "/items/2")[1]["cache-status"],
        "a's L1 invalidated by POST in b",
    )


def test_two_processes_keep_users_apart_and_big_entries_local(
    redis_server: RedisServer, procs: tuple[Proc, Proc]
) -> None:
    a, b = procs
    alice, bob = token("alice"), token("bob")
    a.request("GET", "/me", authorization=f"Bearer {alice}")
    _, h, body = b.request("GET", "/me", authorization=f"Bearer {bob}")
    assert json.loads(body)["me"] == "bob"
    assert "fwd=miss" in h["cache-status"]
    _s, h, body = b.request("GET", "/me", authorization=f"Bearer {alice}")
    assert json.loads(body)["me"] == "alice"
    assert h["cache-status"].startswith("ferrogate; hit")
    a.request("GET", "/big")
    b.request("GET", "/big")
    assert a.stats()["calls"] == 2, "/big is over shared_max_entry_bytes"
    assert b.stats()["calls"] == 2
    assert entry_keys(redis_server), "the /me entries are in Redis"


# --- Redis Cluster --------------------------------------------------------------------------


def test_shared_tier_on_a_redis_cluster(request: pytest.FixtureRequest) -> None:
    """Every cache key carries the `{cache}` hash tag: the scripts (which touch several keys)
    run on one slot, and purges published there reach subscribers on another node."""
    cluster: list[int] = request.getfixturevalue("redis_cluster")
    url = "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in cluster)
    a, b = Node("a", url), Node("b", url)
    a.connected()
    b.connected()
    a.get("/items/1")
    a.get("/lang", accept_language="fr")
    assert b.get("/items/1")[1]["cache-status"].startswith("ferrogate; hit")
    assert b.get("/lang", accept_language="fr")[1]["cache-status"].startswith("ferrogate; hit")
    assert b.calls == 0
    a.cache.purge_prefix("/items")
    until(lambda: "fwd=miss" in b.get("/items/1")[1]["cache-status"], "b purged by prefix on the cluster")
    a.get("/items/1")
    a.get("/items/1", method="POST")
    until(
        lambda: "fwd=miss" in b.get("/items/1")[1]["cache-status"], "b invalidated by a's POST on the cluster"
    )
    a.cache.purge_tag("items")
    until(lambda: "fwd=miss" in b.get("/items/1")[1]["cache-status"], "b purged by tag on the cluster")
    assert a.stats()["l2_errors"] == 0
    assert b.stats()["l2_errors"] == 0
