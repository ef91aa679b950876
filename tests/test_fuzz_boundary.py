"""Hypothesis at the Python boundary: arbitrary input gets an answer or a documented exception,
never a crash, a TypeError or a PanicException."""

from __future__ import annotations

import contextlib
from typing import Any

from ferrogate import ConfigError, Gate, InvalidPathError, Router
from hypothesis import given
from hypothesis import strategies as st

ROUTER = Router()
ROUTER.insert("/users/{id}", 1, ["GET"])
ROUTER.insert("/files/{*rest}", 2)
GATE = Gate(
    {"routes": [{"path": "/admin/{*rest}", "access": "deny"}, {"path": "/users/{id}", "methods": ["GET"]}]}
)

paths = st.lists(
    st.one_of(
        st.sampled_from(["/", ".", "..", "%", "%2e", "%2F", "%ff", "%C3%A9", "admin", "users"]),
        st.text(max_size=3),
    ),
    max_size=12,
).map("".join)

json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=8)
    | st.binary(max_size=4)
    | st.sampled_from(["redis", "redis://127.0.0.1:1/0", "rediss://x", "unix:///nope", "deny", "1/hour"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    *("defaults", "routes", "path", "methods", "access", "exempt", "x"),
                    *("redis", "url", "rate_limit", "storage", "on_error", "batch", "prefix", "limit"),
                ]
            )
            | st.integers(),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@given(method=st.text(max_size=8), path=paths)
def test_router_match_answers_or_raises_invalid_path(method: str, path: str) -> None:
    try:
        result = ROUTER.match(method, path)
    except InvalidPathError:
        return
    assert result is None or isinstance(result[1], dict)


@given(
    method=st.one_of(st.text(max_size=8), st.integers(), st.none()),
    path=st.one_of(paths, st.binary(max_size=8), st.none()),
    extra=st.dictionaries(st.text(max_size=12), st.one_of(st.text(max_size=8), st.integers()), max_size=4),
)
def test_gate_check_always_decides(method: Any, path: Any, extra: dict[str, Any]) -> None:
    environ: dict[str, Any] = dict(extra)
    if method is not None:
        environ["REQUEST_METHOD"] = method
    if path is not None:
        environ["PATH_INFO"] = path
    d = GATE.check(environ)
    assert d.forward or d.status in (400, 403, 405)


@given(config=json_like)
def test_gate_config_builds_or_explains(config: Any) -> None:
    error: ConfigError | None = None
    try:
        Gate(config)
    except ConfigError as e:
        error = e
    assert error is None or error.issues


segment = st.one_of(
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/.", max_size=40),
    st.binary(max_size=30).map(lambda b: __import__("base64").urlsafe_b64encode(b).decode().rstrip("=")),
    st.sampled_from(["eyJhbGciOiJIUzI1NiJ9", "eyJhbGciOiJub25lIn0", "e30", "W10", "bnVsbA"]),
)


@given(
    token=st.one_of(
        st.lists(segment, min_size=0, max_size=6).map(".".join), st.binary(max_size=64), st.text(max_size=64)
    )
)
def test_verify_only_raises_invalid_token_errors(token: Any) -> None:
    from ferrogate import InvalidTokenError, JWTVerifier

    verifier = JWTVerifier(["HS256"], key="fuzz-secret", cache_size=0)
    # Anything else (TypeError, ValueError, PanicException) fails the test.
    with contextlib.suppress(InvalidTokenError):
        verifier.verify(token, now=1_800_000_000)
