"""The training run of the profile-guided build (``tools/pgo_build.sh``).

An instrumented build of the extension runs this traffic; the profile it leaves tells the final
build which code is hot, so that code is laid out together and the cold paths are split off. The
gate's cost inside a Flask or Django request is mostly the cache lines its code and data take from
the framework's (``make footprint``), so the layout matters more than it would in a loop of our own.

The mix is an API's, not a benchmark's: mostly authenticated GETs (cache misses that store, then
hits), some conditional requests, and a share of refusals (no token, a forged token, over the
limit), through Flask and through Django. It must not lean on one path only: what it never runs
ends up in the cold section.

    python tests/bench/pgo_train.py            # about five seconds with the instrumented build
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(_HERE.parent), str(_HERE)]

ROUNDS = 1500

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


def _traffic(app: Callable[..., Iterable[bytes]], environ: Environ, token: str) -> None:
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for i in range(ROUNDS):
        _drive(app, environ(f"i={i}", token), "200")  # a miss that stores
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
    from ferrogate.flask import FerroGate

    def environ(query: str, token: str | None) -> dict[str, Any]:
        env = fl.environ(query)
        if token is None:
            del env["HTTP_AUTHORIZATION"]
        else:
            env["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        return env

    _traffic(fl.ferrogate_app(), environ, fl._token())

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
    from django.core.handlers.wsgi import WSGIHandler

    def environ(query: str, token: str | None) -> dict[str, Any]:
        return dj.environ("/bench/ferrogate/", token, query)

    _traffic(WSGIHandler(), environ, dj.token())


def main() -> int:
    _flask()
    _django()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
