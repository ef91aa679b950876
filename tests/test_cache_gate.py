"""The gate's response cache through the WSGI middleware in front of a real Flask app: served
from Rust on a hit, and never leaking between users."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from ferrogate import ConfigError, Gate, encode
from flask import Flask, Response, request

SECRET = "cache-test-secret-long-enough-for-hs256"


def token(sub: str) -> str:
    return encode({"sub": sub, "exp": time.time() + 300}, SECRET, "HS256")


CONFIG: dict[str, Any] = {
    "jwt": {"algorithms": ["HS256"], "key": SECRET},
    "cache": {"default_ttl": 60},
    "routes": [
        {"path": "/articles", "cache": 60},
        {"path": "/articles/{id}", "cache": {"ttl": 60}},
        {"path": "/me", "auth": "required", "cache": 60},
        {"path": "/public", "cache": {"ttl": 60, "public": True}},
        {"path": "/echo-host", "cache": 60},
        {"path": "/cookie", "cache": 60},
        {"path": "/private", "cache": 60},
        {"path": "/nostore", "cache": 60},
        {"path": "/lang", "cache": {"ttl": 60, "vary": ["x-tenant"]}},
        {"path": "/tagged", "cache": 60},
        {"path": "/slow", "cache": 60},
        {"path": "/stream", "cache": 60},
        {"path": "/limited", "cache": 60, "limit": "3/minute"},
        {"path": "/notfound", "cache": 60},
    ],
}


class App:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.release = threading.Event()
        self.release.set()
        flask_app = Flask(__name__)
        self.flask = flask_app

        @flask_app.route("/<path:p>", methods=["GET", "HEAD", "POST", "PUT", "DELETE"])
        def anything(p: str) -> Any:
            self.calls[p] += 1
            if request.method == "POST":
                return {"created": True}, 201
            if p == "me":
                return {"me": request.environ["ferrogate.claims"]["sub"], "n": self.calls[p]}
            if p == "echo-host":
                return {"host": request.headers.get("X-Forwarded-Host", "api.example.com")}
            if p == "cookie":
                r = Response("with cookie")
                r.set_cookie("sid", "secret-session")
                return r
            if p == "private":
                return "mine", 200, {"Cache-Control": "private, max-age=60"}
            if p == "nostore":
                return "nope", 200, {"Cache-Control": "no-store"}
            if p == "lang":
                lang = request.headers.get("Accept-Language", "en")
                return (
                    f"hello in {lang} for {request.headers.get('X-Tenant')}",
                    200,
                    {"Vary": "Accept-Language, X-Tenant"},
                )
            if p == "tagged":
                return "tagged", 200, {"X-Cache-Tags": "articles, article:1"}
            if p == "slow":
                self.release.wait(10)
                return "slow"
            if p == "stream":

                def gen() -> Iterator[str]:
                    yield "a;"
                    yield "b"

                return Response(gen(), headers={"Cache-Control": "no-store"})
            if p == "notfound":
                return "missing", 404
            return {"path": p, "query": request.query_string.decode(), "n": self.calls[p]}

        self.gate = Gate(CONFIG)
        flask_app.wsgi_app = self.gate.wsgi(flask_app.wsgi_app)  # type: ignore[method-assign]
        self.client = flask_app.test_client()


@pytest.fixture
def app() -> App:
    return App()


def test_hit_is_served_without_the_app(app: App) -> None:
    r1 = app.client.get("/articles")
    assert r1.headers["Cache-Status"] == "ferrogate; fwd=miss; stored"
    r2 = app.client.get("/articles")
    assert r2.get_data() == r1.get_data()
    assert r2.headers["Cache-Status"].startswith("ferrogate; hit; ttl=")
    assert r2.headers["Age"] == "0"
    assert r2.headers["ETag"] == r1.headers["ETag"]
    assert app.calls["articles"] == 1
    stats = app.gate.cache.stats()  # type: ignore[union-attr]
    assert stats["hits"] == 1
    assert stats["stores"] == 1
    assert stats["entries"] == 1
    assert stats["bytes"] > 0


def test_users_never_see_each_others_body(app: App) -> None:
    ann = app.client.get("/me", headers={"Authorization": f"Bearer {token('ann')}"})
    bob = app.client.get("/me", headers={"Authorization": f"Bearer {token('bob')}"})
    assert ann.json["me"] == "ann"
    assert bob.json["me"] == "bob"
    again = app.client.get("/me", headers={"Authorization": f"Bearer {token('ann')}"})
    assert again.json == ann.json  # ann's own entry
    assert app.calls["me"] == 2


def test_across_the_stores_shards_users_stay_apart_and_a_write_reaches_every_query(app: App) -> None:
    # The default store (64 MiB) is eight shards, picked by each resource's primary key: forty
    # users' pages and forty queries of one path land in all of them.
    users = [f"user-{i}" for i in range(40)]
    for sub in users:
        r = app.client.get("/me", headers={"Authorization": f"Bearer {token(sub)}"})
        assert r.get_json()["me"] == sub
    for sub in reversed(users):
        r = app.client.get("/me", headers={"Authorization": f"Bearer {token(sub)}"})
        assert r.headers["Cache-Status"].startswith("ferrogate; hit")
        assert r.get_json()["me"] == sub  # this user's entry, from whichever shard
    assert app.calls["me"] == len(users)
    for q in range(40):
        assert app.client.get(f"/articles?q={q}").headers["Cache-Status"].endswith("stored")
    assert app.client.post("/articles").status_code == 201
    # The write invalidated every stored query of the path, in every shard: none is served stale.
    for q in range(40):
        r = app.client.get(f"/articles?q={q}")
        assert r.headers["Cache-Status"] == "ferrogate; fwd=miss; stored", q
    assert app.calls["articles"] == 1 + 2 * 40


def test_authorization_without_a_principal_bypasses(app: App) -> None:
    app.client.get("/articles")
    r = app.client.get("/articles", headers={"Authorization": "Bearer whatever"})
    assert r.headers["Cache-Status"] == "ferrogate; fwd=bypass; detail=authorization"
    assert app.calls["articles"] == 2


def test_public_routes_share_one_entry(app: App) -> None:
    app.client.get("/public", headers={"Authorization": f"Bearer {token('ann')}"})
    r = app.client.get("/public", headers={"Cookie": "sid=1"})
    assert r.headers["Cache-Status"].startswith("ferrogate; hit")
    assert app.calls["public"] == 1


@pytest.mark.parametrize(
    ("path", "detail"),
    [("/cookie", "set-cookie"), ("/private", "private"), ("/nostore", "no-store"), ("/notfound", "status")],
)
def test_never_stored(app: App, path: str, detail: str) -> None:
    r = app.client.get(path)
    assert r.headers["Cache-Status"] == f"ferrogate; fwd=miss; detail={detail}"
    app.client.get(path)
    assert app.calls[path.lstrip("/")] == 2


def test_set_cookie_is_never_replayed(app: App) -> None:
    app.client.get("/cookie")
    r = app.client.get("/cookie")
    assert "secret-session" in r.headers.get("Set-Cookie", "")  # from the app, not a replay
    assert app.calls["cookie"] == 2


def test_requests_with_cookies_bypass_non_public_routes(app: App) -> None:
    app.client.get("/articles")
    app.client.set_cookie("sid", "abc")
    r = app.client.get("/articles")
    assert r.headers["Cache-Status"] == "ferrogate; fwd=bypass; detail=cookie"


def test_head_is_served_from_get_never_the_reverse(app: App) -> None:
    h = app.client.head("/articles/1")
    assert h.headers["Cache-Status"] == "ferrogate; fwd=miss; detail=head"
    assert app.client.get("/articles/1").headers["Cache-Status"] == "ferrogate; fwd=miss; stored"
    h = app.client.head("/articles/1")
    assert h.headers["Cache-Status"].startswith("ferrogate; hit")
    assert h.get_data() == b""
    assert app.calls["articles/1"] == 2


def test_query_order_and_repeats_are_distinct(app: App) -> None:
    a = app.client.get("/articles?a=1&b=2")
    b = app.client.get("/articles?b=2&a=1")
    c = app.client.get("/articles?a=1&a=2")
    d = app.client.get("/articles?a=2&a=1")
    assert {a.json["query"], b.json["query"], c.json["query"], d.json["query"]} == {
        "a=1&b=2",
        "b=2&a=1",
        "a=1&a=2",
        "a=2&a=1",
    }
    assert app.client.get("/articles?a=1&b=2").json == a.json
    assert app.calls["articles"] == 4


def test_vary_on_accept_language(app: App) -> None:
    en = app.client.get("/lang", headers={"Accept-Language": "en", "X-Tenant": "t1"})
    fr = app.client.get("/lang", headers={"Accept-Language": "fr", "X-Tenant": "t1"})
    assert en.get_data() != fr.get_data()
    assert (
        app.client.get("/lang", headers={"Accept-Language": "fr", "X-Tenant": "t1"}).get_data()
        == fr.get_data()
    )
    t2 = app.client.get("/lang", headers={"Accept-Language": "fr", "X-Tenant": "t2"})
    assert b"t2" in t2.get_data()
    assert app.calls["lang"] == 3


def test_forwarding_headers_cannot_poison(app: App) -> None:
    evil = app.client.get("/echo-host", headers={"X-Forwarded-Host": "evil.example"})
    assert evil.json["host"] == "evil.example"
    # Stored, but under a key that holds the header: served only to requests that send it too.
    assert evil.headers["Cache-Status"] == "ferrogate; fwd=miss; stored"
    normal = app.client.get("/echo-host")
    assert normal.json["host"] == "api.example.com"
    assert normal.headers["Cache-Status"] == "ferrogate; fwd=miss; stored"
    assert app.client.get("/echo-host").json["host"] == "api.example.com"
    again = app.client.get("/echo-host", headers={"X-Forwarded-Host": "evil.example"})
    assert again.headers["Cache-Status"].startswith("ferrogate; hit")
    assert app.calls["echo-host"] == 2


def test_etag_and_if_none_match(app: App) -> None:
    etag = app.client.get("/articles/2").headers["ETag"]
    assert etag.startswith('"')
    r = app.client.get("/articles/2", headers={"If-None-Match": etag})
    assert r.status_code == 304
    assert r.get_data() == b""
    assert r.headers["ETag"] == etag
    assert app.client.get("/articles/2", headers={"If-None-Match": 'W/"other"'}).status_code == 200


def test_unsafe_request_invalidates_the_path(app: App) -> None:
    app.client.get("/articles")
    app.client.get("/articles?page=2")
    assert app.client.post("/articles").status_code == 201
    assert app.client.get("/articles").headers["Cache-Status"] == "ferrogate; fwd=miss; stored"
    assert app.client.get("/articles?page=2").headers["Cache-Status"] == "ferrogate; fwd=miss; stored"


def test_purges(app: App) -> None:
    gate_cache = app.gate.cache
    assert gate_cache is not None
    r = app.client.get("/tagged")
    assert "X-Cache-Tags" not in r.headers  # stripped before sending
    app.client.get("/articles/1")
    app.client.get("/articles/2")
    assert gate_cache.purge_tag("article:1") == 1
    assert app.client.get("/tagged").headers["Cache-Status"].endswith("stored")
    assert gate_cache.purge_prefix("/articles/") == 2
    assert gate_cache.purge_path("/tagged") == 1
    assert gate_cache.purge_path("/tagged") == 0
    gate_cache.clear()
    assert gate_cache.stats()["entries"] == 0


def test_concurrent_misses_run_the_app_once(app: App) -> None:
    app.release.clear()
    results: list[bytes] = []

    def get() -> None:
        results.append(app.client.get("/slow").get_data())

    threads = [threading.Thread(target=get) for _ in range(6)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    # Wait until every request has looked the key up (bounded poll, not a timed assertion).
    while app.gate.cache.stats()["misses"] < 6 and time.monotonic() < deadline:  # type: ignore[union-attr]
        time.sleep(0.001)
    app.release.set()
    for t in threads:
        t.join()
    assert results == [b"slow"] * 6
    assert app.calls["slow"] == 1


def test_streaming_responses_pass_through(app: App) -> None:
    r = app.client.get("/stream")
    assert r.get_data() == b"a;b"
    assert r.headers["Cache-Status"] == "ferrogate; fwd=miss; detail=no-store"


def test_hits_count_against_the_quota(app: App) -> None:
    statuses = [app.client.get("/limited") for _ in range(4)]
    assert [r.status_code for r in statuses] == [200, 200, 200, 429]
    assert "RateLimit" in statuses[1].headers  # a hit carries the limit headers
    assert app.calls["limited"] == 1


def test_cache_config_errors() -> None:
    with pytest.raises(ConfigError) as exc:
        Gate(
            {
                "cache": {"max_bytes": 0, "status_header": "etag", "colour": 1},
                "routes": [{"path": "/a", "cache": {"ttl": -1, "vary": ["bad header"]}}],
            }
        )
    keys = {k for k, _ in exc.value.issues}
    assert {
        "cache.max_bytes",
        "cache.status_header",
        "cache.colour",
        "routes[0].cache.ttl",
        "routes[0].cache.vary[0]",
    } <= keys


def test_partial_and_not_modified_statuses_cannot_be_made_storable() -> None:
    """A 206 or a 304 answers one request's ``Range`` or ``If-None-Match``: stored, it would be
    served to every request for the resource, so ``statuses`` refuses them."""
    for status in (206, 304):
        with pytest.raises(ConfigError) as exc:
            Gate(
                {
                    "cache": {"statuses": [200, status]},
                    "routes": [{"path": "/a", "cache": {"ttl": 5, "statuses": [status]}}],
                }
            )
        keys = {k for k, _ in exc.value.issues}
        assert {"cache.statuses[1]", "routes[0].cache.statuses[0]"} <= keys


def test_x_cache_style() -> None:
    gate = Gate({"cache": {"status_header": "x-cache"}, "routes": [{"path": "/a", "cache": 10}]})
    flask_app = Flask(__name__)

    @flask_app.get("/a")
    def a() -> str:
        return "a"

    flask_app.wsgi_app = gate.wsgi(flask_app.wsgi_app)  # type: ignore[method-assign]
    c = flask_app.test_client()
    assert c.get("/a").headers["X-Cache"] == "MISS"
    assert c.get("/a").headers["X-Cache"] == "HIT"


def test_hits_carry_one_content_length_and_304_none(app: App) -> None:
    from werkzeug.test import run_wsgi_app

    app.client.get("/articles/9")
    env = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/articles/9",
        "QUERY_STRING": "",
        "SERVER_NAME": "x",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
        "REMOTE_ADDR": "127.0.0.1",
    }
    import io

    env["wsgi.input"] = io.BytesIO()
    _, status, headers = run_wsgi_app(app.flask.wsgi_app, env)
    assert status == "200 OK"
    assert [k.lower() for k, _ in headers].count("content-length") == 1
    etag = dict((k.lower(), v) for k, v in headers)["etag"]
    env2 = {**env, "HTTP_IF_NONE_MATCH": etag, "wsgi.input": io.BytesIO()}
    _, status, headers = run_wsgi_app(app.flask.wsgi_app, env2)
    assert status == "304 Not Modified"
    assert "content-length" not in [k.lower() for k, _ in headers]


def test_a_write_to_an_exempt_route_still_invalidates_the_path() -> None:
    """GET /a (cached by its route), POST /a to a view that is ``exempt`` from the gate, GET /a:
    the write invalidated the path, whichever route handled it (docs/caching.md)."""
    from ferrogate.flask import FerroGate

    app = Flask(__name__)
    gate = FerroGate(app)
    version = [1]

    @app.get("/a")
    @gate.cache(ttl=60)
    def show() -> Any:
        return {"v": version[0]}

    @app.post("/a")
    @gate.exempt
    def change() -> Any:
        version[0] += 1
        return {"v": version[0]}, 201

    client = app.test_client()
    assert client.get("/a").json == {"v": 1}
    assert client.get("/a").headers["Cache-Status"].startswith("ferrogate; hit")
    assert client.post("/a").status_code == 201
    after = client.get("/a")
    assert after.json == {"v": 2}
    assert after.headers["Cache-Status"] == "ferrogate; fwd=miss; stored"


def test_a_body_made_for_a_session_is_not_stored_when_checked_in_the_hook() -> None:
    """A cached view with a Python-keyed limit is checked in ``before_request`` (hook mode), whose
    store ran before Flask saved the session: GET /form from A (the view puts a CSRF token in A's
    new session), then from B: B must not be served A's token."""
    import itertools

    from ferrogate.flask import FerroGate
    from flask import session

    app = Flask(__name__)
    app.secret_key = "cache-test-session-key"
    gate = FerroGate(app)
    tokens = itertools.count()

    @app.get("/form")
    @gate.cache(ttl=60)
    @gate.limit("100/minute", key=lambda: request.remote_addr)
    def form() -> Any:
        session["csrf"] = f"token-{next(tokens)}"
        return {"csrf": session["csrf"]}

    a, b = app.test_client(), app.test_client()
    first = a.get("/form")
    assert first.json == {"csrf": "token-0"}
    assert "Set-Cookie" in first.headers
    assert b.get("/form").json == {"csrf": "token-1"}


def test_after_request_hooks_are_seen_when_checked_in_the_hook() -> None:
    """Hook mode (a Python-keyed limit): the app's ``after_request`` makes the response
    ``private`` and sets a cookie. GET /f from A, then from B: B is not served A's response."""
    import itertools

    from ferrogate.flask import FerroGate

    app = Flask(__name__)
    gate = FerroGate(app)
    calls = itertools.count()

    @app.get("/f")
    @gate.cache(ttl=60)
    @gate.limit("100/minute", key=lambda: request.remote_addr)
    def f() -> Any:
        return {"n": next(calls)}

    @app.after_request
    def personal(response: Response) -> Response:
        response.headers["Cache-Control"] = "private"
        response.set_cookie("remember", "user-a")
        return response

    a, b = app.test_client(), app.test_client()
    first = a.get("/f")
    assert first.headers["Cache-Status"] == "ferrogate; fwd=miss; detail=private"
    assert b.get("/f").json == {"n": 1}
