"""The gate's refusals as werkzeug ``HTTPException`` s, so Flask apps handle them the Flask way.

A refusal raised inside Flask is both a :class:`ferrogate.exceptions.GateRefused` subclass (so
``@app.errorhandler(RateLimited)`` works) and the werkzeug exception of its status (so
``@app.errorhandler(429)``, ``@app.errorhandler(TooManyRequests)`` and
``@app.errorhandler(HTTPException)`` work). With no handler, Flask renders it through
:meth:`get_response`: the gate's own RFC 9457 body and headers, never a 500.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, cast

from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import (
    HTTPException,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    default_exceptions,
)
from werkzeug.exceptions import MethodNotAllowed as WerkzeugMethodNotAllowed
from werkzeug.wrappers import Response

from ferrogate._adapter import invalid_token_answer
from ferrogate.exceptions import GateRefused

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment
    from flask import Flask

    from ferrogate._native import Decision

__all__ = ["HTTPRefusal", "has_refusal_handler", "invalid_token", "refusal", "refusal_class"]


class HTTPRefusal(HTTPException):
    """The werkzeug half of every refusal class (the gate's status, body and headers)."""

    status: int
    headers: list[tuple[str, str]]
    problem: dict[str, object]
    body: bytes

    def __init__(self, message: str) -> None:
        # Reached through GateRefused.__init__'s super() call; werkzeug's classes differ in their
        # positional parameters (MethodNotAllowed's first is valid_methods), so name them.
        HTTPException.__init__(self, description=message)
        if isinstance(self, WerkzeugMethodNotAllowed):
            self.valid_methods = None

    def get_response(
        self, environ: WSGIEnvironment | Any = None, scope: dict[str, Any] | None = None
    ) -> Response:
        """The gate's answer: its problem document and every header it set (HEAD gets no body:
        werkzeug's response drops it)."""
        return Response(self.body, status=self.status, headers=self.headers)

    def get_headers(
        self, environ: WSGIEnvironment | Any = None, scope: dict[str, Any] | None = None
    ) -> list[tuple[str, str]]:
        return list(self.headers)

    def get_body(self, environ: WSGIEnvironment | Any = None, scope: dict[str, Any] | None = None) -> str:
        return self.body.decode()


_CLASSES: dict[int, type[GateRefused]] = {}


def refusal_class(status: int) -> type[GateRefused]:
    """The class raised for ``status``: the ferrogate refusal class, then werkzeug's exception for
    the status (``HTTPException`` with that code when werkzeug has none)."""
    cls = _CLASSES.get(status)
    if cls is None:
        ours = GateRefused.class_for(status)
        theirs = default_exceptions.get(status)
        namespace: dict[str, Any] = {"__module__": __name__, "__doc__": ours.__doc__}
        if theirs is None:
            namespace["code"] = status
        bases = (ours, HTTPRefusal) if theirs is None else (ours, HTTPRefusal, theirs)
        cls = cast(type[GateRefused], type(ours.__name__, bases, namespace))
        _CLASSES[status] = cls
    return cls


def refusal(d: Decision) -> GateRefused:
    """The exception for a refused decision."""
    problem = _problem(d.body)
    exc = refusal_class(d.status)(d.status, d.headers, problem)
    cast(HTTPRefusal, exc).body = d.body
    _werkzeug_attributes(exc)
    return exc


def _werkzeug_attributes(exc: GateRefused) -> None:
    """What werkzeug's own exceptions of these statuses carry, for handlers that read them:
    ``retry_after`` (429, 503), ``www_authenticate`` (401), ``valid_methods`` (405)."""
    headers = {k.lower(): v for k, v in exc.headers}
    if isinstance(exc, TooManyRequests | ServiceUnavailable):
        retry = headers.get("retry-after", "")
        exc.retry_after = int(retry) if retry.isdigit() else None
    if isinstance(exc, Unauthorized):
        challenge = headers.get("www-authenticate")
        parsed = WWWAuthenticate.from_header(challenge) if challenge else None
        exc.www_authenticate = [parsed] if parsed is not None else []
    if isinstance(exc, WerkzeugMethodNotAllowed):
        allow = headers.get("allow", "")
        exc.valid_methods = [m.strip() for m in allow.split(",") if m.strip()] or None


def invalid_token(realm: str, detail: str) -> GateRefused:
    """A 401 ``invalid_token`` the adapter decides itself (the token verified, but its user is gone
    or disabled), shaped as the gate's own: RFC 6750 challenge, RFC 9457 body."""
    headers, body = invalid_token_answer(realm, detail)
    exc = refusal_class(401)(401, headers, _problem(body))
    cast(HTTPRefusal, exc).body = body
    _werkzeug_attributes(exc)
    return exc


def _problem(body: bytes) -> dict[str, Any]:
    try:
        loaded = json.loads(body) if body else {}
    except ValueError:
        loaded = {}
    return loaded if isinstance(loaded, dict) else {}


#: Statuses the gate refuses with.
REFUSAL_STATUSES = (400, 401, 403, 405, 429, 503)


def has_refusal_handler(app: Flask) -> bool:
    """Whether any error handler of the app (or of a blueprint) would catch a refusal: by status
    code, or by a class in a refusal's MRO (``RateLimited``, ``TooManyRequests``,
    ``HTTPException``...), ``Exception`` itself aside. Then refusals go through Flask so the
    handler renders them."""
    for handlers in app.error_handler_spec.values():
        for code, by_class in handlers.items():
            if not by_class:
                continue
            if code is not None and code in REFUSAL_STATUSES:
                return True
            if code is None and _catches(by_class):
                return True
    return False


def _catches(by_class: Mapping[type[Exception], Any]) -> bool:
    # A catch-all for Exception (the error-reporting habit) is not a refusal handler: it would
    # turn every 401 and 429 into its own 500. The gate answers those itself.
    return any(
        cls in by_class
        for status in REFUSAL_STATUSES
        for cls in _mro(status)
        if cls not in (Exception, BaseException)
    )


def _mro(status: int) -> Iterable[type]:
    return refusal_class(status).__mro__
