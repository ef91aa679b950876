"""``GateMiddleware``: the gate in front of any WSGI app, the fast path.

The gate decides each request in one Rust call. Refused requests are answered here with an RFC 9457
``application/problem+json`` body and never reach the app; forwarded ones reach it with the matched
route in ``environ["ferrogate.route"]`` and its params in ``environ["ferrogate.params"]``.

The app's response iterable is returned untouched, so streaming responses, ``close()`` and
``wsgi.file_wrapper`` behave exactly as without the middleware, except for a response the cache
stores, which is buffered (bounded) and sent as one chunk.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ferrogate._native import WsgiGate

__all__ = ["GateMiddleware"]


class _Passthrough:
    """Chunks already read from the app, then the rest of its iterable; ``close()`` reaches the app.
    The native fast path uses it when a response it started buffering for the cache turns out not
    to be storable (or too large)."""

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


class GateMiddleware(WsgiGate):
    """Wraps ``app`` so that ``gate`` sees every request first: ``GateMiddleware(app, gate)``.

    The per-request work is native (``ferrogate._native.WsgiGate``): the check, the refusal, the
    environ keys and, only when the gate adds response headers, a ``start_response`` wrapper. A
    dry-run rate limit that would have refused is logged at INFO on the ``ferrogate`` logger.
    ``defer_refusals=True`` hands refused requests to the app with the decision in
    ``environ["ferrogate.refused"]`` (the Flask extension uses it for app-rendered refusals).
    """

    __slots__ = ()
