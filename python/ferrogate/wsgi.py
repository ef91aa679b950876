"""``GateMiddleware``: the gate in front of any WSGI app, the fast path.

The gate decides each request in one Rust call. Refused requests are answered here with an RFC 9457
``application/problem+json`` body and never reach the app; forwarded ones reach it with the matched
route in ``environ["ferrogate.route"]`` and its params in ``environ["ferrogate.params"]``.

The app's response iterable is returned untouched, so streaming responses, ``close()`` and
``wsgi.file_wrapper`` behave exactly as without the middleware.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from ferrogate._native import Decision
    from ferrogate._native import Gate as NativeGate

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
    environ["ferrogate.decision"] = d
    extra = d.headers
    if not extra:
        return app(environ, start_response)

    def start_with_gate_headers(
        status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None
    ) -> Any:
        return start_response(status, [*headers, *extra], exc_info)

    return app(environ, start_with_gate_headers)


logger = logging.getLogger("ferrogate")


class GateMiddleware:
    """Wraps ``app`` so that ``gate`` sees every request first."""

    __slots__ = ("app", "gate")

    def __init__(self, app: WSGIApplication, gate: NativeGate) -> None:
        self.app = app
        self.gate = gate

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        d = self.gate.check(environ)
        if d.forward:
            if d.dry_run_refused is not None:
                logger.info("dry-run rate limit %r would have refused %s", d.dry_run_refused, d.route)
            return forward(self.app, d, environ, start_response)
        return respond(d, environ, start_response)
