"""The CLI (check, explain, demo) and the panic guard."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from ferrogate import _native
from ferrogate.cli import main

CONFIG = """
[defaults]
access = "allow"

[[routes]]
path = "/admin/{*rest}"
access = "deny"
name = "admin"

[[routes]]
path = "/users/{id}"
methods = ["GET", "DELETE"]
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    p = tmp_path / "gate.toml"
    p.write_text(CONFIG)
    return p


def test_check_ok(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(config_file)]) == 0
    assert "OK (2 routes)" in capsys.readouterr().out


def test_check_reports_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "bad.toml"
    p.write_text('[defaults]\naccess = "maybe"\n[[routes]]\npath = "/a/{x}"\n[[routes]]\npath = "/a/{y}"\n')
    assert main(["check", str(p)]) == 1
    err = capsys.readouterr().err
    assert "2 problems" in err
    assert "defaults.access" in err
    assert "routes[1].path" in err


def test_explain_route(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", str(config_file), "get", "/admin/x/y"]) == 0
    out = capsys.readouterr().out
    assert "GET /admin/x/y matches route /admin/{*rest} (name: admin)" in out
    assert "param rest = 'x/y'" in out
    assert "access = deny" in out


def test_explain_405_unmatched_and_bad_path(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["explain", str(config_file), "PUT", "/users/1"])
    assert "405 Method Not Allowed; the path matches for GET, HEAD, DELETE" in capsys.readouterr().out
    main(["explain", str(config_file), "GET", "/other"])
    assert "matches no route; the defaults apply" in capsys.readouterr().out
    main(["explain", str(config_file), "GET", "/users/../admin"])
    assert "400 Bad Request" in capsys.readouterr().out


def test_explain_json(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["explain", "--json", str(config_file), "GET", "/users/9"])
    info = json.loads(capsys.readouterr().out)
    assert info == {
        "outcome": "route",
        "pattern": "/users/{id}",
        "name": None,
        "params": {"id": "9"},
        "policy": {"access": "allow", "auth": "none", "cache": "off", "exempt": False, "limit": "off"},
        "status": None,
        "answer": "forwarded to the app",
    }
    main(["explain", "--json", str(config_file), "GET", "/admin/x"])
    info = json.loads(capsys.readouterr().out)
    assert info["status"] == 403
    assert info["policy"]["exempt"] is False


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/deny"),
        ("GET", "/both"),
        ("GET", "/auth"),
        ("GET", "/optional"),
        ("GET", "/exempt"),
        ("GET", "/limited"),
        ("POST", "/auth"),
        ("GET", "/nowhere"),
        ("GET", "/a/../b"),
    ],
)
def test_explains_status_is_what_the_gate_answers(method: str, path: str) -> None:
    """The explained status is checked against the gate's own answer to the same request."""
    from ferrogate import Gate

    config = {
        "jwt": {"algorithms": ["HS256"], "key": "explain-test-secret-long-enough-hs256"},
        "defaults": {"access": "deny"},
        "routes": [
            {"path": "/deny"},
            {"path": "/both", "auth": "required"},
            {"path": "/auth", "access": "allow", "auth": "required", "methods": ["GET"]},
            {"path": "/optional", "access": "allow", "auth": "optional"},
            {"path": "/exempt", "exempt": True},
            {"path": "/limited", "access": "allow", "limit": "1/hour"},
        ],
    }
    info = Gate(config).explain(method, path)
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": "", "REMOTE_ADDR": "10.0.0.1"}
    d = Gate(config).check(environ)
    assert info["status"] == (None if d.forward else d.status), info["answer"]
    assert str(info["status"] or "forwarded") in info["answer"]


def test_explain_with_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "bad.toml"
    p.write_text("routes = 3")
    assert main(["explain", str(p), "GET", "/"]) == 1
    assert "routes: expected a list" in capsys.readouterr().err


def test_demo_runs_and_every_step_behaves() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ferrogate", "demo"], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "requests behaved as expected" in proc.stdout
    assert "EXPECTED" not in proc.stdout


def test_demo_with_missing_app(tmp_path: Path) -> None:
    assert main(["demo", "--app", str(tmp_path / "none.py")]) == 2


def test_panic_guard_answers_500_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="ferrogate"):
        assert _native._panic_guard_probe() == 500
    assert any("probe panic" in r.getMessage() and r.name == "ferrogate" for r in caplog.records)


def test_token_command(capsys: pytest.CaptureFixture[str]) -> None:
    from ferrogate import JWTVerifier

    assert (
        main(
            [
                "token",
                "--secret",
                "cli-secret",
                "--sub",
                "ann",
                "--scope",
                "a",
                "--scope",
                "b",
                "--claim",
                "n=3",
            ]
        )
        == 0
    )
    t = capsys.readouterr().out.strip()
    claims = JWTVerifier(["HS256"], key="cli-secret").verify(t)
    assert claims["sub"] == "ann"
    assert claims["scope"] == "a b"
    assert claims["n"] == 3
    assert main(["token"]) == 2
    assert main(["token", "--secret", "x", "--claim", "novalue"]) == 1
