"""pytest fixtures for apps behind ferrogate, loaded by pytest through the ``pytest11`` entry point.

- ``ferrogate_token``: mints tokens the app's verifier accepts —
  ``ferrogate_token("ann", scopes=["notes:read"])``, ``ferrogate_token("ann", refresh=True)``.
- ``ferrogate_reset``: the app's in-memory limit counts and response cache start empty, and are
  emptied again after the test.

Which app: a Flask app from your ``app`` fixture (the pytest-flask convention), else the Django
project when Django's settings are configured. Override the ``ferrogate_issuer`` fixture for
anything else (a :class:`ferrogate.tokens.TokenIssuer`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol

import pytest

from ferrogate.tokens import TokenIssuer

__all__ = ["ferrogate_issuer", "ferrogate_reset", "ferrogate_token"]


class MintToken(Protocol):
    def __call__(
        self,
        identity: str | int = ...,
        *,
        scopes: Iterable[str] | str | None = ...,
        claims: Mapping[str, Any] | None = ...,
        expires_in: float | None = ...,
        refresh: bool = ...,
    ) -> str: ...


def _flask_app(request: pytest.FixtureRequest) -> Any:
    """The test's ``app`` fixture when it is a Flask app, else None."""
    try:
        from flask import Flask
    except ImportError:
        return None
    try:
        app = request.getfixturevalue("app")
    except pytest.FixtureLookupError:
        return None
    return app if isinstance(app, Flask) else None


def _django_ready() -> bool:
    try:
        from django.conf import settings
    except ImportError:
        return False
    return bool(settings.configured)


@pytest.fixture
def ferrogate_issuer(request: pytest.FixtureRequest) -> TokenIssuer:
    """The app's :class:`~ferrogate.tokens.TokenIssuer` (see the module docs for which app)."""
    app = _flask_app(request)
    if app is not None:
        from ferrogate.flask import FerroGate

        return FerroGate.state(app).issuer()
    if _django_ready():
        from ferrogate.django import state

        return state.issuer()
    raise pytest.UsageError(
        "ferrogate_token needs the app: define an `app` fixture returning the Flask app, configure "
        "Django settings, or override the `ferrogate_issuer` fixture"
    )


@pytest.fixture
def ferrogate_token(ferrogate_issuer: TokenIssuer) -> MintToken:
    """``mint(identity="test-user", *, scopes=None, claims=None, expires_in=None, refresh=False)``:
    a signed access (or refresh) token for the app's own verifier."""

    def mint(
        identity: str | int = "test-user",
        *,
        scopes: Iterable[str] | str | None = None,
        claims: Mapping[str, Any] | None = None,
        expires_in: float | None = None,
        refresh: bool = False,
    ) -> str:
        if refresh:
            return ferrogate_issuer.refresh_token(identity, claims=claims, expires_in=expires_in)
        return ferrogate_issuer.access_token(identity, scopes=scopes, claims=claims, expires_in=expires_in)

    return mint


@pytest.fixture
def ferrogate_reset(request: pytest.FixtureRequest) -> Iterator[None]:
    """Empties the app's in-memory rate-limit counts and response cache before and after the test."""
    reset = _resetter(request)
    reset()
    yield
    reset()


def _resetter(request: pytest.FixtureRequest) -> Callable[[], None]:
    app = _flask_app(request)
    if app is not None:
        from ferrogate.flask import FerroGate

        state = FerroGate.state(app)
        return lambda: state.ext.reset(app)
    if _django_ready():
        from ferrogate.django import reset

        return reset
    raise pytest.UsageError(
        "ferrogate_reset needs the app: define an `app` fixture returning the Flask app, or configure Django"
    )
