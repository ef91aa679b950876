"""The WSGI fast path for Django: the gate in front of Django's WSGI handler.

``application = ferrogate.django.wsgi.get_wsgi_application()`` in your project's ``wsgi.py``. Refused
requests are answered before Django builds an ``HttpRequest``, so they skip every middleware
(logging, sessions, CSRF) and cost microseconds. Forwarded requests carry the decision in the
environ and ``GateMiddleware`` (still required in ``MIDDLEWARE``) does not check them again; it still
applies fallbacks. The gate's response headers are added here, on the way out. Under ASGI, use the middleware alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ferrogate._native import WsgiGate

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["DjangoGateWSGI", "get_wsgi_application"]


class DjangoGateWSGI:
    """Wraps Django's WSGI handler with the compiled gate (rebuilt when the settings change)."""

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app
        self._native: WsgiGate | None = None

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        from ferrogate.django import state
        from ferrogate.django.urls import outruns_int

        if outruns_int(environ.get("PATH_INFO", "")):
            # The native gate would match it with its own router (see state.check): GateMiddleware
            # (required, system check ferrogate.E002) checks it under the route Django resolves.
            return self.app(environ, start_response)
        gate = state.compiled().gate
        hook = state.on_refused()
        native = self._native
        if native is None or native.gate is not gate or native.on_refused is not hook:
            native = self._native = WsgiGate(self.app, gate, on_refused=hook)
        return native(environ, start_response)


def get_wsgi_application() -> WSGIApplication:
    """Django's ``get_wsgi_application()`` behind the gate."""
    from django.core.wsgi import get_wsgi_application as django_wsgi

    return DjangoGateWSGI(django_wsgi())
