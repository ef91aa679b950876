"""The shared cache tier under the faults of issue 21, against real redis-server processes.

- Keys and purges are per full path: two apps mounted at `/tenant-a` and `/tenant-b` on one host
  and one Redis never serve or purge each other's pages.
- A prefix purge over 200 000 indexed paths answers in bounded chunks: it completes within the
  command timeout, and no later call re-sends it (L2 reads go on being served).
- A POST to a path never cached leaves no day-long generation key behind.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any

import redis
from ferrogate import Gate
from redis_server import RedisServer


class App:
    """A Gate in front of a tiny WSGI app that says who answered, as a mounted app would."""

    def __init__(self, name: str, url: str, script_name: str = "", **redis: Any) -> None:
        self.name = name
        self.script_name = script_name
        self.calls = 0
        self.gate = Gate(
            {
                "redis": {"url": url, "timeout_ms": 100, "breaker_cooldown_ms": 200, **redis},
                "cache": {"shared": "redis"},
                "routes": [{"path": "/{*rest}", "methods": ["GET", "POST"], "cache": 600}],
            }
        )
        self.wsgi = self.gate.wsgi(self._app)

    def _app(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        self.calls += 1
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"{self.name}:{environ['PATH_INFO']}".encode()]

    @property
    def cache(self) -> Any:
        assert self.gate.cache is not None
        return self.gate.cache

    def request(self, path: str, method: str = "GET") -> tuple[str, bytes]:
        env: dict[str, Any] = {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": self.script_name,
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
        seen: dict[str, str] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            seen.update({k.lower(): v for k, v in headers})

        body = b"".join(self.wsgi(env, start_response))
        return seen.get("cache-status", ""), body


def hit(status: str) -> bool:
    return status.startswith("ferrogate; hit")


def until(check: Callable[[], bool], what: str, seconds: float = 10.0) -> None:
    """Polls `check` until it holds (cross-process effects are asynchronous), bounded."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"not within {seconds}s: {what}"
        time.sleep(0.01)


def connected(*apps: App) -> None:
    for a in apps:
        until(lambda a=a: bool(a.cache.stats()["l2_connected"]), f"{a.name} subscribed")


# --- 4. per application, per full path ---------------------------------------------------------


def test_two_mounted_apps_never_serve_each_others_pages(redis_server: RedisServer) -> None:
    a = App("a", redis_server.url, "/tenant-a")
    b = App("b", redis_server.url, "/tenant-b")
    connected(a, b)
    assert a.request("/items")[1] == b"a:/items"
    status, body = b.request("/items")
    assert body == b"b:/items", "b computes its own page"
    assert not hit(status)
    assert hit(a.request("/items")[0])
    assert hit(b.request("/items")[0])


def test_a_purge_reaches_only_its_own_app(redis_server: RedisServer) -> None:
    a = App("a", redis_server.url, "/tenant-a")
    b = App("b", redis_server.url, "/tenant-b")
    a2 = App("a2", redis_server.url, "/tenant-a")  # another process of app a
    connected(a, b, a2)
    a.request("/items")
    b.request("/items")
    # Paths are full paths, as a client sends them (SCRIPT_NAME + PATH_INFO).
    assert a.cache.purge_path("/tenant-a/items") >= 1
    assert not hit(a2.request("/items")[0]), "a's entry is gone from Redis"
    assert hit(b.request("/items")[0]), "b's entry with the same PATH_INFO is untouched"
    b.cache.purge_prefix("/tenant-b/")
    assert not hit(b.request("/items")[0])
    # An unsafe request invalidates its own app's page only.
    a.request("/items")
    b.request("/items")
    a.request("/items", method="POST")
    # a2's L1 copy goes when the purge message arrives (pub/sub: poll, bounded).
    until(lambda: not hit(a2.request("/items")[0]), "a2's copy purged")
    assert hit(b.request("/items")[0])


# --- 5. prefix purges at scale -----------------------------------------------------------------

#: Writes `n` indexed paths `/bulk/<i>` into the cache's path indexes, the way ferrogate's store
#: script does (every layout this test has known: the old set of paths and the lexical one).
POPULATE = """
local n = tonumber(ARGV[1])
local far = tonumber(ARGV[2])
for i = 1, n, 1000 do
  local old, lex, exp = {}, {}, {}
  for j = i, math.min(i + 999, n) do
    local path = '/bulk/' .. j
    local d = redis.sha1hex(path)
    old[#old + 1] = far; old[#old + 1] = d .. '\\n' .. path
    lex[#lex + 1] = 0; lex[#lex + 1] = path
    exp[#exp + 1] = far; exp[#exp + 1] = path
  end
  redis.call('ZADD', KEYS[1], unpack(old))
  redis.call('ZADD', KEYS[2], unpack(lex))
  redis.call('ZADD', KEYS[3], unpack(exp))
end
return n
"""


def test_a_prefix_purge_over_200k_paths_never_becomes_a_retry_storm(redis_server: RedisServer) -> None:
    r = redis.Redis.from_url(redis_server.url)
    keys = ["ferrogate:c{cache}:paths", "ferrogate:c{cache}:lex", "ferrogate:c{cache}:lexp"]
    assert r.eval(POPULATE, 3, *keys, 200_000, 10**13) == 200_000
    a = App("a", redis_server.url)
    b = App("b", redis_server.url)
    connected(a, b)
    for i in range(20):
        a.request(f"/users/{i}")
    b.request("/other")
    before = r.info("stats")["total_commands_processed"]
    assert a.cache.purge_prefix("/users/") >= 20
    # Served from L2 (stored by b, not in a's L1): the purge is not queued and re-sent.
    assert hit(a.request("/other")[0])
    for _ in range(20):
        a.request("/other")
    after = r.info("stats")["total_commands_processed"]
    stats = a.cache.stats()
    assert stats["l2_errors"] == 0, stats
    assert stats["l2_pending_purges"] == 0, stats
    # The purge and 21 reads: a handful of commands each, never a re-sent scan per call.
    assert after - before < 200, after - before
    assert not hit(a.request("/users/3")[0])


# --- 7. small points ---------------------------------------------------------------------------


def test_a_post_to_a_never_cached_path_leaves_no_long_lived_key(redis_server: RedisServer) -> None:
    a = App("a", redis_server.url)
    connected(a)
    for i in range(50):
        a.request(f"/orders/{i}", method="POST")
    r = redis.Redis.from_url(redis_server.url)
    keys = r.keys("ferrogate:*")
    for k in keys:
        ttl = r.pttl(k)
        if k.startswith(b"ferrogate:c{cache}:g:"):
            # A generation has to outlive only the requests in flight when it moved.
            assert ttl == -2 or 0 < ttl <= 120_000, (k, ttl)
    assert len([k for k in keys if k.startswith(b"ferrogate:c{cache}:g:")]) <= 50


def test_paths_are_not_published_on_the_purge_channel(redis_server: RedisServer) -> None:
    a = App("a", redis_server.url)
    connected(a)
    a.request("/users/alice@example.com")
    sub = redis.Redis.from_url(redis_server.url).pubsub()
    sub.subscribe("ferrogate:cache:purge")
    assert sub.get_message(timeout=5) is not None  # the subscription's confirmation
    a.cache.purge_path("/users/alice@example.com")
    got = sub.get_message(timeout=5)
    assert got is not None
    assert got["type"] == "message"
    assert b"alice" not in got["data"], got
    assert b"example.com" not in got["data"], got
    sub.close()


def test_the_cache_on_its_own_server(redis_server: RedisServer, own_redis: RedisServer) -> None:
    gate = Gate(
        {
            "redis": {"url": redis_server.url},
            "rate_limit": {"storage": "redis"},
            "cache": {"shared": own_redis.url, "shared_max_bytes": 1 << 20},
            "routes": [{"path": "/page", "cache": 60, "limit": "100/hour"}],
        }
    )
    app = App("x", redis_server.url)
    wsgi = gate.wsgi(app._app)
    env = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/page",
        "QUERY_STRING": "",
        "REMOTE_ADDR": "127.0.0.1",
        "SERVER_NAME": "h",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": io.StringIO(),
    }
    b"".join(wsgi(dict(env), lambda *a: None))
    limits, cache = redis.Redis.from_url(redis_server.url), redis.Redis.from_url(own_redis.url)
    assert limits.keys("ferrogate:rl:*")
    assert not limits.keys("ferrogate:c{cache}:*")
    assert cache.keys("ferrogate:c{cache}:e:*")
    assert not cache.keys("ferrogate:rl:*")
    assert gate.cache is not None
    assert gate.cache.stats()["l2_stores"] == 1
