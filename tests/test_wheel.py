"""The wheel, installed as a user installs it.

The wheel in dist/ (built by `make wheel`, which `make test` runs first; built here by
tools/build_wheel.sh when it is missing or older than a source) is installed into a fresh venv
with no Rust toolchain on PATH, and from a directory outside the checkout:

- the wheel is one abi3 manylinux_2_28 wheel whose version is Cargo.toml's and
  ``ferrogate.__version__``;
- ``python -m ferrogate demo`` runs the example apps that ship inside the package;
- a Flask app and a Django/DRF app run behind the gate from the installed package.

The venv gets ferrogate from the wheel alone (``--no-index``: no network, no source). Flask, Django
and DRF, which a user gets from the extras, are read from the development venv's site-packages
through a path file, without that venv's own path files, so its editable ferrogate stays invisible;
every test checks that ``ferrogate`` is imported from the fresh venv.
"""

from __future__ import annotations

import email.parser
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import textwrap
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DIST = ROOT / "dist"
SOURCES = [ROOT / "src", ROOT / "python", ROOT / "Cargo.toml", ROOT / "Cargo.lock", ROOT / "pyproject.toml"]


def _newest_source() -> float:
    newest = 0.0
    for s in SOURCES:
        files = [s] if s.is_file() else [p for p in s.rglob("*") if p.is_file()]
        for f in files:
            if "__pycache__" in f.parts or f.suffix in (".so", ".pyc"):
                continue
            newest = max(newest, f.stat().st_mtime)
    return newest


def _cargo_version() -> str:
    return str(tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]["version"])


@pytest.fixture(scope="module")
def wheel() -> Path:
    version = _cargo_version()
    found = sorted(DIST.glob(f"ferrogate-{version}-*.whl"))
    if not found or found[0].stat().st_mtime < _newest_source():
        env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
        subprocess.run([str(ROOT / "tools" / "build_wheel.sh"), str(DIST)], check=True, env=env, timeout=1800)
        found = sorted(DIST.glob(f"ferrogate-{version}-*.whl"))
    assert len(found) == 1, found
    return found[0]


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("user")
    env_dir = home / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True, timeout=120)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-index", "--no-deps", str(wheel)],
        check=True,
        timeout=300,
        env=_user_env(env_dir),
        cwd=home,
    )
    # The frameworks the extras would bring, borrowed from the development venv (see above).
    site = Path(
        subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"])
        .decode()
        .strip()
    )
    (site / "_dev_frameworks.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return env_dir


def _user_env(env_dir: Path) -> dict[str, str]:
    """The environment of a user without Rust: the venv first, no cargo or rustup on PATH."""
    path = [str(env_dir / "bin")] + [
        p
        for p in os.environ.get("PATH", "").split(os.pathsep)
        if p and not re.search(r"cargo|rustup|\.venv", p) and Path(p).resolve() != Path(sys.executable).parent
    ]
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CARGO", "RUSTUP", "DJANGO_", "PYTHON", "VIRTUAL_ENV", "FERROGATE"))
    }
    env["PATH"] = os.pathsep.join(path)
    env["VIRTUAL_ENV"] = str(env_dir)
    return env


def _run(env_dir: Path, *args: str, code: str | None = None) -> subprocess.CompletedProcess[str]:
    cwd = env_dir.parent
    argv = [str(env_dir / "bin" / "python"), *args]
    if code is not None:
        script = cwd / "smoke.py"
        script.write_text(textwrap.dedent(code))
        argv.append(str(script))
    proc = subprocess.run(argv, cwd=cwd, env=_user_env(env_dir), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{argv} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_wheel_is_one_abi3_manylinux_wheel_of_the_cargo_version(wheel: Path) -> None:
    name, version, python_tag, abi_tag, platform_tag = wheel.stem.split("-")
    assert (name, version) == ("ferrogate", _cargo_version())
    assert (python_tag, abi_tag) == ("cp311", "abi3")
    assert platform_tag.startswith("manylinux_2_28_")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = email.parser.Parser().parsestr(z.read(f"ferrogate-{version}.dist-info/METADATA").decode())
    assert "ferrogate/_native.abi3.so" in names
    assert "ferrogate/examples/flask_api/app.py" in names
    assert "ferrogate/examples/django_api/django_api/settings.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert meta["Requires-Python"] == ">=3.11"
    assert sorted(meta.get_all("Provides-Extra") or []) == ["django", "drf", "flask"]
    requires = meta.get_all("Requires-Dist") or []
    assert any(r.startswith("flask") and "extra == 'flask'" in r for r in requires), requires
    assert any(r.startswith("djangorestframework") and "extra == 'drf'" in r for r in requires), requires
    classifiers = meta.get_all("Classifier") or []
    for minor in (11, 12, 13, 14):
        assert f"Programming Language :: Python :: 3.{minor}" in classifiers


def test_sdist_has_what_a_source_build_needs(wheel: Path) -> None:
    sdists = sorted(DIST.glob(f"ferrogate-{_cargo_version()}.tar.gz"))
    if not sdists:
        pytest.skip("no sdist in dist/ (tools/build_wheel.sh writes one)")
    with tarfile.open(sdists[0]) as t:
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    for needed in (
        "Cargo.toml",
        "Cargo.lock",
        "pyproject.toml",
        "src/lib.rs",
        "python/ferrogate/__init__.py",
    ):
        assert needed in names, needed
    assert "python/ferrogate/examples/flask_api/app.py" in names


def test_installed_without_rust_and_imported_from_the_venv(venv: Path) -> None:
    assert shutil.which("cargo", path=_user_env(venv)["PATH"]) is None
    out = _run(
        venv,
        "-c",
        "import ferrogate, ferrogate._native as n; print(ferrogate.__file__); print(n.__file__); "
        "print(ferrogate.__version__)",
    ).stdout.split()
    assert out[0].startswith(str(venv)), out
    assert out[1].endswith("_native.abi3.so"), out
    assert out[2] == _cargo_version()


def test_demo_runs_from_the_installed_package(venv: Path) -> None:
    out = _run(venv, "-m", "ferrogate", "demo").stdout
    summaries = re.findall(r"(\d+)/(\d+) requests behaved as expected", out)
    assert len(summaries) == 2, out  # the Flask example, then the Django/DRF project
    assert all(a == b for a, b in summaries), out


def test_flask_app_from_the_installed_package(venv: Path) -> None:
    _run(
        venv,
        code="""
        import time

        import ferrogate
        from flask import Flask
        from ferrogate import encode
        from ferrogate.flask import FerroGate, current_claims

        assert "/venv/" in ferrogate.__file__, ferrogate.__file__
        SECRET = "a-secret-for-the-wheel-smoke-test-of-32-bytes+"
        app = Flask(__name__)
        app.config["FERROGATE_JWT"] = {"algorithms": ["HS256"], "key": SECRET}
        gate = FerroGate(app)

        @app.get("/me")
        @gate.auth()
        @gate.limit("2/minute", key="sub")
        def me():
            return {"sub": current_claims["sub"]}

        @app.get("/cached")
        @gate.cache(ttl=30)
        def cached():
            return {"ok": True}

        c = app.test_client()
        assert c.get("/me").status_code == 401
        token = encode({"sub": "ann", "exp": time.time() + 60}, SECRET, "HS256")
        h = {"Authorization": f"Bearer {token}"}
        assert c.get("/me", headers=h).json == {"sub": "ann"}
        assert c.get("/me", headers=h).status_code == 200
        assert c.get("/me", headers=h).status_code == 429
        c.get("/cached")
        assert c.get("/cached").headers["Cache-Status"].startswith("ferrogate; hit")

        # The shipped example app is importable from the installed package too.
        from ferrogate.examples.flask_api.app import create_app
        assert create_app().test_client().get("/admin/stats").status_code == 403
        """,
    )


def test_django_app_from_the_installed_package(venv: Path) -> None:
    _run(
        venv,
        code="""
        import time

        import django
        from django.conf import settings

        SECRET = "a-secret-for-the-wheel-smoke-test-of-32-bytes+"
        settings.configure(
            ROOT_URLCONF=__name__,
            ALLOWED_HOSTS=["testserver"],
            INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "rest_framework",
                            "ferrogate.django"],
            MIDDLEWARE=["ferrogate.django.GateMiddleware"],
            FERROGATE={"jwt": {"algorithms": ["HS256"], "key": SECRET}},
            REST_FRAMEWORK={"DEFAULT_AUTHENTICATION_CLASSES": ["ferrogate.drf.JWTAuthentication"],
                            "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"]},
        )
        django.setup()

        import ferrogate
        from django.core.management import call_command
        from django.http import JsonResponse
        from django.test import Client
        from django.urls import path
        from rest_framework.decorators import api_view
        from rest_framework.response import Response
        from ferrogate import encode
        from ferrogate.django import policy

        assert "/venv/" in ferrogate.__file__, ferrogate.__file__

        @policy(access="deny")
        def internal(request):
            return JsonResponse({})

        @api_view(["GET"])
        def me(request):
            return Response({"sub": request.auth["sub"]})

        urlpatterns = [path("internal/", internal), path("me/", me)]

        call_command("check", fail_level="ERROR")   # the ferrogate system checks run
        c = Client()
        assert c.get("/internal/").status_code == 403
        assert c.get("/me/").status_code == 401
        token = encode({"sub": "ann", "exp": time.time() + 60}, SECRET, "HS256")
        assert c.get("/me/", HTTP_AUTHORIZATION=f"Bearer {token}").json() == {"sub": "ann"}
        """,
    )
