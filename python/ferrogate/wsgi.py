"""``GateMiddleware``: the gate in front of any WSGI app, the fast path.

The gate decides each request in one Rust call. Refused requests are answered here with an RFC 9457
``application/problem+json`` body and never reach the app; forwarded ones reach it with the matched
route in ``environ["ferrogate.route"]`` and its params in ``environ["ferrogate.params"]``.

The app's response iterable is returned untouched, so streaming responses, ``close()`` and
``wsgi.file_wrapper`` behave exactly as without the middleware.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ferrogate._native import WsgiGate

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from ferrogate._native import CacheTicket, Decision

__all__ = ["GateMiddleware", "forward", "respond", "serve_with_ticket"]


def respond(d: Decision, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """Sends the gate's own response for a refused (or cached) request."""
    body = d.body
    length = [] if d.status in (204, 304) else [("content-length", str(len(body)))]
    start_response(d.status_line, [*d.headers, *length])
    return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]


class _Passthrough:
    """Chunks already read from the app, then the rest of its iterable; ``close()`` reaches the app."""

    def __init__(self, head: list[bytes], rest: Iterator[bytes], result: Iterable[bytes]) -> None:
        self._head = head
        self._rest = rest
        self._result = result

    def __iter__(self) -> Iterator[bytes]:
        yield from self._head
        yield from self._rest

    def close(self) -> None:
        close = getattr(self._result, "close", None)
        if close is not None:
            close()


def serve_with_ticket(
    app: WSGIApplication,
    ticket: CacheTicket,
    environ: WSGIEnvironment,
    start_response: StartResponse,
    extra: tuple[tuple[str, str], ...] = (),
) -> Iterable[bytes]:
    """Runs the app for a request the cache may learn from.

    After an unsafe request, a success invalidates the path. For a GET miss, a response the rules
    would store is buffered (up to the cache's entry size), stored and sent; any other response,
    streaming ones included, passes through unbuffered, with ``close()`` intact.
    """
    if not ticket.is_store:

        def start_unsafe(
            status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None
        ) -> Any:
            ticket.unsafe_done(_status_code(status))
            return start_response(status, [*headers, *extra], exc_info)

        return app(environ, start_unsafe)

    captured: list[Any] = []
    written: list[bytes] = []

    def capture(status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None) -> Any:
        captured[:] = [status, list(headers), exc_info]
        return written.append

    try:
        result = app(environ, capture)
    except BaseException:
        ticket.end()
        raise
    iterator = iter(result)
    head: list[bytes] = list(written)
    try:
        while not captured:
            head.append(next(iterator))
    except StopIteration:
        pass
    except BaseException:
        ticket.end()
        _close(result)
        raise
    if not captured:  # pragma: no cover - an app that never calls start_response is broken
        ticket.end()
        _close(result)
        raise RuntimeError("the WSGI app returned without calling start_response")
    status, headers, exc_info = captured
    if not ticket.wants(_status_code(status), headers):
        # Not storable: store() only strips the tags header and says why in the cache status.
        out_headers = ticket.store(_status_code(status), headers, b"")
        start_response(status, [*out_headers, *extra], exc_info)
        return _Passthrough(head, iterator, result)
    body = bytearray(b"".join(head))
    try:
        for chunk in iterator:
            body += chunk
            if len(body) > MAX_BUFFER:
                # Too large to store: send what we have and stream the rest.
                ticket.end()
                start_response(status, [*headers, *extra], exc_info)
                return _Passthrough([bytes(body)], iterator, result)
    except BaseException:
        ticket.end()
        _close(result)
        raise
    _close(result)
    final = ticket.store(_status_code(status), headers, bytes(body))
    start_response(status, [*final, *extra], exc_info)
    return [] if environ.get("REQUEST_METHOD") == "HEAD" else [bytes(body)]


#: Responses larger than this are streamed, not buffered for the cache (the cache's own
#: `max_entry_bytes` may be smaller and is applied when storing).
MAX_BUFFER = 8 << 20


def _status_code(status: str) -> int:
    try:
        return int(status[:3])
    except ValueError:
        return 0


def _close(result: Iterable[bytes]) -> None:
    close = getattr(result, "close", None)
    if close is not None:
        close()


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
    if d.cache_ticket is not None:
        return serve_with_ticket(app, d.cache_ticket, environ, start_response, extra)
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
