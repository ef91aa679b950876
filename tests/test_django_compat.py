"""ferrogate.django._compat: Django's header store where its layout is known, the public header API
elsewhere; both give the same responses.

The installed Django is the newest this Python runs (5.2; 6.x needs Python 3.12). The lowest
supported one (4.2) is checked when ``FERROGATE_DJANGO_LOWEST`` names a directory it is installed
in (``pip install --target DIR 'django==4.2.*'``); CI does not install a second Django, so there
the fallback is forced instead (``test_the_middleware_on_the_public_api``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import django
import pytest
import test_django as django_tests
from django.http import HttpResponse
from django_project.views import CALLS
from ferrogate.django import _compat, state

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(_compat, "_access", None)
    state.reset()
    CALLS.update(middleware=0, views=0)
    yield
    state.reset()


def test_this_django_uses_the_store() -> None:
    assert _compat.STORE_VERSIONS[0] <= django.VERSION[:2] <= _compat.STORE_VERSIONS[1]
    assert _compat.header_access() is _compat.StoreHeaders


def test_the_store_reads_back_like_the_public_api() -> None:
    direct, public = HttpResponse(b"x"), HttpResponse(b"x")
    for name, value in [("RateLimit", '"default";r=9;t=60'), ("cache-status", "ferrogate; fwd=miss")]:
        _compat.StoreHeaders.set_all(direct, [(name, value)])
        _compat.PublicHeaders.set_all(public, [(name, value)])
    assert _compat.StoreHeaders.items(direct) == _compat.PublicHeaders.items(public)
    assert list(direct.items()) == list(public.items())
    assert direct.serialize_headers() == public.serialize_headers()
    assert direct["ratelimit"] == '"default";r=9;t=60'
    # All at once (how the middleware adds them), replacing a header the view set, like one by one.
    batch, single = HttpResponse(b"x"), HttpResponse(b"x")
    gate_headers = [("ETag", '"abc"'), ("Cache-Status", "ferrogate; fwd=miss"), ("content-type", "a/b")]
    _compat.StoreHeaders.set_all(batch, gate_headers)
    _compat.PublicHeaders.set_all(single, gate_headers)
    assert batch.serialize_headers() == single.serialize_headers()
    assert batch["Content-Type"] == "a/b"


def test_outside_the_checked_versions_or_layout_the_public_api(monkeypatch: pytest.MonkeyPatch) -> None:
    low, high = _compat.STORE_VERSIONS
    assert not _compat.store_usable((low[0], low[1] - 1))
    assert not _compat.store_usable((high[0], high[1] + 1))
    monkeypatch.setattr(django, "VERSION", (high[0] + 1, 0, 0, "final", 0))
    assert _compat.header_access() is _compat.PublicHeaders

    class OtherLayout(dict[str, str]):
        pass

    monkeypatch.setattr(django, "VERSION", (*low, 0, "final", 0))
    monkeypatch.setattr(
        HttpResponse, "__init__", lambda self, *a, **k: setattr(self, "headers", OtherLayout())
    )
    assert not _compat.store_usable()


def test_the_middleware_on_the_public_api(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fallback, forced: the gate's headers, a stored response and a hit are the same."""
    monkeypatch.setattr(_compat, "_access", _compat.PublicHeaders)
    django_tests.test_middleware_adds_gate_headers_without_fast_path()
    CALLS.update(views=0)
    django_tests.test_cache_decorator_through_the_middleware()


LOWEST = os.environ.get("FERROGATE_DJANGO_LOWEST")


@pytest.mark.skipif(not LOWEST, reason="FERROGATE_DJANGO_LOWEST names no directory with Django 4.2")
def test_the_lowest_supported_django_uses_the_store() -> None:
    script = textwrap.dedent(
        """
        import django
        from django.conf import settings
        settings.configure()
        django.setup()
        from django.http import HttpResponse
        from ferrogate.django import _compat
        assert django.VERSION[:2] == _compat.STORE_VERSIONS[0], django.VERSION
        assert _compat.header_access() is _compat.StoreHeaders
        direct, public = HttpResponse(b"x"), HttpResponse(b"x")
        headers = [("ETag", '"abc"'), ("Cache-Status", "ferrogate; fwd=miss"), ("content-type", "a/b")]
        _compat.StoreHeaders.set_all(direct, headers)
        _compat.PublicHeaders.set_all(public, headers)
        assert direct.serialize_headers() == public.serialize_headers()
        assert _compat.StoreHeaders.items(direct) == _compat.PublicHeaders.items(public)
        print("ok", django.get_version())
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(LOWEST), str(ROOT / "python")])}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok 4.2")
