"""ferrogate.Router: matchit semantics, methods, conflicts and path normalisation."""

from __future__ import annotations

import pytest
from ferrogate import ConfigError, InvalidPathError, Router


def make(*routes: tuple[str, list[str] | None]) -> Router:
    r = Router()
    for pattern, methods in routes:
        r.insert(pattern, f"{','.join(methods or ['*'])} {pattern}", methods)
    return r


def test_static_beats_param_beats_catch_all() -> None:
    r = make(("/users/me", None), ("/users/{id}", None), ("/files/{*path}", None), ("/files/index", None))
    assert r.match("GET", "/users/me") == ("* /users/me", {})
    assert r.match("GET", "/users/42") == ("* /users/{id}", {"id": "42"})
    assert r.match("GET", "/files/index") == ("* /files/index", {})
    assert r.match("GET", "/files/a/b/c.txt") == ("* /files/{*path}", {"path": "a/b/c.txt"})
    assert r.match("GET", "/nope") is None
    assert len(r) == 4


def test_values_are_any_python_object() -> None:
    r = Router()
    handler = object()
    r.insert("/x", handler)
    m = r.match("GET", "/x")
    assert m is not None
    assert m[0] is handler


def test_methods_use_their_own_trees() -> None:
    r = make(("/users/{id}", ["GET"]), ("/users/new", ["POST"]))
    # werkzeug's answer: GET /users/new is the GET route with id="new", not a 405.
    assert r.match("GET", "/users/new") == ("GET /users/{id}", {"id": "new"})
    assert r.match("POST", "/users/new") == ("POST /users/new", {})
    assert r.match("DELETE", "/users/new") is None
    assert r.allowed("/users/new") == ["GET", "HEAD", "POST"]
    assert r.allowed("/elsewhere") == []


def test_head_falls_back_to_get() -> None:
    r = make(("/a", ["GET"]))
    assert r.match("HEAD", "/a") == ("GET /a", {})
    r.insert("/a", "own head", ["HEAD"])
    assert r.match("HEAD", "/a") == ("own head", {})


def test_methods_are_case_sensitive_tokens() -> None:
    r = make(("/a", ["GET"]))
    assert r.match("get", "/a") is None
    with pytest.raises(ConfigError, match="invalid method"):
        r.insert("/b", 1, ["get"])
    with pytest.raises(ConfigError, match="invalid method"):
        r.insert("/b", 1, ["GE T"])


def test_conflicts_name_both_patterns() -> None:
    r = make(("/users/{id}", ["GET"]))
    with pytest.raises(ConfigError) as exc:
        r.insert("/users/{name}", 2, ["GET"])
    assert "/users/{name}" in str(exc.value)
    assert "/users/{id}" in str(exc.value)
    # A refused insert leaves nothing behind.
    assert r.match("GET", "/users/1") == ("GET /users/{id}", {"id": "1"})
    # The same pattern for other methods is fine.
    r.insert("/users/{id}", "delete", ["DELETE"])
    assert r.match("DELETE", "/users/1") == ("delete", {"id": "1"})


@pytest.mark.parametrize("pattern", ["users", "/a/../b", "/a/{", "/a//b", "/a/{}"])
def test_bad_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(ConfigError):
        Router().insert(pattern, 1)


def test_params_are_percent_decoded_once() -> None:
    r = make(("/files/{name}", None))
    assert r.match("GET", "/files/a%2Fb") == ("* /files/{name}", {"name": "a/b"})
    assert r.match("GET", "/files/a%252Fb") == ("* /files/{name}", {"name": "a%2Fb"})
    assert r.match("GET", "/files/caf%C3%A9") == ("* /files/{name}", {"name": "café"})
    with pytest.raises(InvalidPathError):
        r.match("GET", "/files/%ff")


def test_unreserved_escapes_match_their_characters() -> None:
    r = make(("/users", None))
    assert r.match("GET", "/us%65rs") == ("* /users", {})


@pytest.mark.parametrize(
    "path",
    ["/admin/../admin", "/admin/.", "/a/%2e%2e/admin", "/a/%2E%2e", "/./admin", "/a\x00b", "/a%zz", "admin"],
)
def test_normalisation_attacks_are_refused(path: str) -> None:
    r = make(("/admin", None), ("/a/{x}", None))
    with pytest.raises(InvalidPathError):
        r.match("GET", path)


def test_slashes_are_matched_as_sent_and_case_matters() -> None:
    r = make(("/admin/users", None), ("/files/{*rest}", None))
    # Never merged: werkzeug and Django read an empty segment as a segment.
    assert r.match("GET", "//admin///users") is None
    assert r.match("GET", "/files//a") == ("* /files/{*rest}", {"rest": "/a"})
    # Case-sensitive, as werkzeug and Django are: /Admin reaches neither the policy nor the view.
    assert r.match("GET", "/Admin/users") is None
    # Trailing slashes are distinct routes, as in werkzeug's strict_slashes.
    assert r.match("GET", "/admin/users/") is None


def test_github_route_set_loads_without_conflicts(github_routes: list[tuple[str, str]]) -> None:
    r = Router()
    for method, pattern in github_routes:
        r.insert(pattern, (method, pattern), [method])
    assert len(r) == len(github_routes)
    assert r.match("GET", "/repos/octo/hello/issues/7") == (
        ("GET", "/repos/{owner}/{repo}/issues/{number}"),
        {"owner": "octo", "repo": "hello", "number": "7"},
    )
