"""Hypothesis at the Python boundary: arbitrary input gets an answer or a documented exception,
never a crash, a TypeError or a PanicException."""

from __future__ import annotations

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
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8) | st.binary(max_size=4),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["defaults", "routes", "path", "methods", "access", "exempt", "x"])
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
