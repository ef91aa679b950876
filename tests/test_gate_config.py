"""Gate construction: every config problem reported at once, with its key path and value."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
from ferrogate import ConfigError, Gate


def test_all_problems_at_once_with_key_paths() -> None:
    with pytest.raises(ConfigError) as exc:
        Gate(
            {
                "defaults": {"access": "denny"},
                "routes": [
                    {"path": "/ok"},
                    {"path": 7},
                    {"path": "/x", "methods": ["GET", "get"], "colour": "red"},
                    {"methods": ["GET"]},
                    {"path": "/u/{id}"},
                    {"path": "/u/{name}"},
                ],
                "extra": True,
            }
        )
    keys = [k for k, _ in exc.value.issues]
    assert keys == [
        "extra",
        "defaults.access",
        "routes[1].path",
        "routes[2].colour",
        "routes[2].methods[1]",
        "routes[3].path",
        "routes[5].path",
    ]
    text = str(exc.value)
    assert text.startswith("7 problems in ferrogate config:")
    assert 'routes[5].path: route "/u/{name}" conflicts with route "/u/{id}"' in text
    assert 'defaults.access: expected one of allow | deny, got "denny"' in text
    assert "routes[1].path: expected a string, got 7" in text


def test_route_conflicts_are_reported_after_shape_checks() -> None:
    with pytest.raises(ConfigError) as exc:
        Gate({"routes": [{"path": "/u/{id}"}, {"path": "/u/{name}"}, {"path": "/v/{a}"}, {"path": "/v/{b}"}]})
    assert [k for k, _ in exc.value.issues] == ["routes[1].path", "routes[3].path"]
    assert "/u/{name}" in exc.value.issues[0][1]
    assert "/u/{id}" in exc.value.issues[0][1]


@pytest.mark.parametrize(
    ("config", "key", "fragment"),
    [
        ({"routes": {"path": "/a"}}, "routes", "expected a list"),
        ({"routes": [{"path": "/a", "methods": "GET"}]}, "routes[0].methods", "expected a list of strings"),
        ({"routes": [{"path": b"/a"}]}, "routes[0].path", "unsupported value of type bytes"),
        ({"routes": [{"path": "/a", "access": float("nan")}]}, "routes[0].access", "finite number"),
        ({1: "x"}, "", "keys must be strings"),
        ({"defaults": []}, "defaults", "expected a table/dict"),
    ],
)
def test_bad_values(config: dict[object, object], key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as exc:
        Gate(config)  # type: ignore[arg-type]
    assert (key, next(m for k, m in exc.value.issues if k == key)) in exc.value.issues
    assert fragment in str(exc.value)


def test_not_a_dict() -> None:
    with pytest.raises(ConfigError, match="expected a table/dict"):
        Gate([])  # type: ignore[arg-type]


def test_deeply_nested_config_is_an_error_not_a_crash() -> None:
    deep: dict[str, object] = {}
    cur = deep
    for _ in range(100):
        nxt: dict[str, object] = {}
        cur["x"] = nxt
        cur = nxt
    with pytest.raises(ConfigError, match="nested more than"):
        Gate({"defaults": deep})


def test_config_error_is_a_value_error_and_pickles() -> None:
    with pytest.raises(ValueError, match="problem") as exc:
        Gate({"bogus": 1})
    err = pickle.loads(pickle.dumps(exc.value))
    assert isinstance(err, ConfigError)
    assert err.issues == exc.value.issues


def test_from_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "gate.toml"
    path.write_text(
        """
[defaults]
access = "allow"

[[routes]]
path = "/admin/{*rest}"
access = "deny"

[[routes]]
path = "/users/{id}"
methods = ["GET"]
name = "user"
"""
    )
    gate = Gate.from_file(path)
    assert gate.routes() == [("/admin/{*rest}", None), ("/users/{id}", "user")]
    assert gate.explain("GET", "/admin/x")["policy"] == {
        "access": "deny",
        "auth": "none",
        "cache": "off",
        "exempt": False,
        "limit": "off",
    }


def test_from_json_file(tmp_path: Path) -> None:
    path = tmp_path / "gate.json"
    path.write_text(json.dumps({"routes": [{"path": "/a"}]}))
    assert Gate.from_file(path).routes() == [("/a", None)]


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("bad.toml", "[[routes]\npath = 1", "invalid TOML"),
        ("bad.json", "{", "invalid JSON"),
        ("list.json", "[]", "top level must be an object"),
        ("latin1.toml", b"x = '\xff'", "invalid TOML"),
    ],
)
def test_bad_files(tmp_path: Path, name: str, content: str | bytes, fragment: str) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(ConfigError, match=fragment):
        Gate.from_file(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        Gate.from_file(tmp_path / "nope.toml")


def test_route_params_shapes_are_validated() -> None:
    with pytest.raises(ConfigError) as e:
        Gate({"routes": [{"path": "/a/{id}", "params": {"id": "int", "x": "digits"}}]})
    keys = sorted(k for k, _ in e.value.issues)
    assert keys == ["routes[0].params.id", "routes[0].params.x"]
    g = Gate({"routes": [{"path": "/a/{id}", "params": {"id": "digits"}, "access": "deny"}]})
    env = {"REQUEST_METHOD": "GET", "QUERY_STRING": "", "REMOTE_ADDR": "1.1.1.1"}
    assert g.check({**env, "PATH_INFO": "/a/12"}).status == 403
    # Not this route's parameter: the defaults apply (no framework here to ask).
    assert g.check({**env, "PATH_INFO": "/a/x"}).forward
