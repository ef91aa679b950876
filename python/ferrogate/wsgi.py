"""``GateMiddleware``: the gate in front of any WSGI app, the fast path.

The gate decides each request in one Rust call. Refused requests are answered here with an RFC 9457
``application/problem+json`` body and never reach the app; forwarded ones reach it with the matched
route in ``environ["ferrogate.route"]`` and its params in ``environ["ferrogate.params"]``.

The app's response iterable is returned untouched, so streaming responses, ``close()`` and
``wsgi.file_wrapper`` behave exactly as without the middleware.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ferrogate._native import WsgiGate

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from ferrogate._native import Decision

__all__ = ["GateMiddleware", "forward", "respond"]


def respond(d: Decision, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """Sends the gate's own response for a refused (or cached) request."""
    body = d.body
    start_response(d.status_line, [*d.headers, ("content-length", str(len(body)))])
    return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]


def forward(
    app: WSGIApplication, d: Decision, environ: WSGIEnvironment, start_response: StartResponse
) -> Iterable[bytes]:
    """Calls the app with what the gate learned in the environ and its headers on the response."""
    environ["ferrogate.route"] = d.route
    environ["ferrogate.route_name"] = d.route_name
    environ["ferrogate.params"] = d.params
    environ["ferrogate.claims"] = d.claims
    environ["ferrogate.decision"] = d
    extra = d.headers
    if not extra:
        return app(environ, start_response)

    def start_with_gate_headers(
        status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None
    ) -> Any:
        return start_response(status, [*headers, *extra], exc_info)

    return app(environ, start_with_gate_headers)


class GateMiddleware(WsgiGate):
    """Wraps ``app`` so that ``gate`` sees every request first: ``GateMiddleware(app, gate)``.

    The per-request work is native (``ferrogate._native.WsgiGate``): the check, the refusal, the
    environ keys and, only when the gate adds response headers, a ``start_response`` wrapper. A
    dry-run rate limit that would have refused is logged at INFO on the ``ferrogate`` logger.
    ``defer_refusals=True`` hands refused requests to the app with the decision in
    ``environ["ferrogate.refused"]`` (the Flask extension uses it for app-rendered refusals).
    """

    __slots__ = ()
