"""The training run of the profile-guided build (``tools/pgo_build.sh``).

An instrumented build of the extension runs this traffic; the profile it leaves tells the final
build which code is hot, so that code is laid out together and the cold paths are split off. The
gate's cost inside a Flask or Django request is mostly the cache lines its code and data take from
the framework's (``make footprint``), so the layout matters more than it would in a loop of our own.

The mix is an API's, not a benchmark's: mostly authenticated GETs (cache misses that store, then
hits) from one user and from many, some conditional requests, and a share of refusals (no token, a
forged token, over the limit), through Flask and through Django; then the classes an app may call
itself. It must not lean on one path only: what it never runs ends up in the cold section, built
for size.

    python tests/bench/pgo_train.py            # about five seconds with the instrumented build
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(_HERE.parent), str(_HERE)]

ROUNDS = 1500
USERS = 300

Environ = Callable[[str, str | None], dict[str, Any]]


def _drive(app: Callable[..., Iterable[bytes]], env: dict[str, Any], want: str) -> None:
    seen: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        seen.append(status)

    body = app(env, start_response)
    for _ in body:
        pass
    close = getattr(body, "close", None)
    if close is not None:
        close()
    # A profile of the wrong path would be worse than none: check each answer.
    if not seen or not seen[-1].startswith(want):
        raise RuntimeError(f"training request answered {seen[-1:]} where {want} was expected")


def _traffic(app: Callable[..., Iterable[bytes]], environ: Environ, tokens: list[str]) -> None:
    """``tokens``: one per user. The first user makes most requests (the token-cache hit path);
    the others' first requests verify a signature and make their own limiter keys and cache keys,
    as an API's many users do."""
    token = tokens[0]
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for i in range(ROUNDS):
        _drive(app, environ(f"i={i}", token), "200")  # a miss that stores
        _drive(app, environ(f"i={i}", tokens[i % len(tokens)]), "200")  # another user's
        _drive(app, environ(f"i={i // 2}", token), "200")  # a hit, every other one
        if i % 10 == 0:
            env = environ(f"i={i // 2}", token)
            env["HTTP_IF_NONE_MATCH"] = "*"  # revalidating a stored entry
            _drive(app, env, "304")
        if i % 20 == 0:
            _drive(app, environ("i=0", None), "401")
            _drive(app, environ("i=0", forged), "401")


def _flask() -> None:
    import flask
    import test_bench_flask_stack as fl
    from ferrogate import encode
    from ferrogate.flask import FerroGate

    def environ(query: str, token: str | None) -> dict[str, Any]:
        env = fl.environ(query)
        if token is None:
            del env["HTTP_AUTHORIZATION"]
        else:
            env["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        return env

    def token(sub: str) -> str:
        claims = {"sub": sub, "exp": time.time() + 3600, "type": "access", "fresh": False, "jti": sub}
        return encode(claims, fl.SECRET, "HS256")

    _traffic(fl.ferrogate_app(), environ, [fl._token()] + [token(f"user-{n}") for n in range(USERS)])

    # Over the limit: the 429 path (headers, problem body) runs too.
    app = flask.Flask(__name__)
    app.config["FERROGATE_JWT"] = {"algorithms": ["HS256"], "key": fl.SECRET}
    gate = FerroGate()
    app.get("/articles")(gate.auth()(gate.limit("5/hour", key="sub")(fl._view)))
    gate.init_app(app)
    token = fl._token()
    for i in range(ROUNDS // 10):
        _drive(app, environ(f"i={i}", token), "200" if i < 5 else "429")


def _django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_project.settings")
    import django

    django.setup()
    import test_bench_django as dj
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler
    from ferrogate import encode

    def environ(query: str, token: str | None) -> dict[str, Any]:
        return dj.environ("/bench/ferrogate/", token, query)

    def token(sub: str) -> str:
        claims = {"sub": sub, "exp": time.time() + 3600, "token_type": "access", "jti": sub, "user_id": sub}
        return encode(claims, settings.JWT_SECRET, "HS256")

    _traffic(WSGIHandler(), environ, [dj.token()] + [token(str(n)) for n in range(1000, 1000 + USERS)])


def _python_api() -> None:
    """The classes an app may call itself: the limiter, the verifier without its cache, the
    router, the memoize decorator."""
    from ferrogate import JWTVerifier, RateLimiter, Router, cached, encode
    from jwt_keys import pair_for

    limiter = RateLimiter("1000/hour", max_keys=20_000)
    for _ in range(3):
        for n in range(20_000):
            limiter.hit(f"client-{n}")
    for alg in ("HS256", "RS256", "ES256", "EdDSA"):
        pair = None if alg == "HS256" else pair_for(alg)
        signing, verifying = ("k" * 32, "k" * 32) if pair is None else (pair.private_pem, pair.public_pem)
        verifier = JWTVerifier([alg], key=verifying, audience="api", cache_size=0)
        token = encode({"sub": "u", "aud": "api", "exp": time.time() + 60}, signing, alg)
        for _ in range(300 if alg == "HS256" else 30):
            verifier.verify(token)
    router = Router()
    for n in range(50):
        router.insert(f"/repos/{{owner}}/r{n}/{{id}}", f"route-{n}", ["GET"])
    for n in range(20_000):
        router.match("GET", f"/repos/octo/r{n % 50}/{n}")

    @cached(maxsize=1024)
    def double(n: int) -> int:
        return n * 2

    for n in range(20_000):
        double(n % 2048)


def main() -> int:
    _flask()
    _django()
    _python_api()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
