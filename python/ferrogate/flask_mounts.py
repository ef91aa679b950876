"""WSGI apps mounted inside the gate, beside Flask.

A ``DispatcherMiddleware`` (or a ``SharedDataMiddleware``) wrapped around ``app.wsgi_app`` before
``init_app`` sits between the gate and Flask: for the paths under its mounts it answers itself,
and no Flask rule or ``before_request`` hook ever sees them. Such a path gets the ``defaults``
policy, never the policy of a Flask rule that happens to match it too (a ``/<path:page>``
catch-all beside a metrics app mounted at ``/metrics``). The Flask adapter sends the rules a mount
may overlap to its resolver, which answers "no Flask rule" for a mounted path. A mounted path that
falls through to Flask after all (a file the shared-data layer does not have) is checked again in
Flask's hook under the rule Flask resolves, as every unconfirmed early decision is.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.middleware.shared_data import SharedDataMiddleware

from ferrogate._adapter import patterns_overlap


def mounts_inside(layer: Any, flask_entry: Any) -> tuple[str, ...]:
    """The mount points of the dispatchers between the gate and Flask's own entry point: the
    chain of WSGI layers from ``layer``, each reached through its ``app`` attribute (werkzeug's
    middlewares and most others keep the app they wrap there)."""
    found: list[str] = []
    seen: set[int] = set()
    while layer is not None and layer != flask_entry and id(layer) not in seen:
        seen.add(id(layer))
        if isinstance(layer, DispatcherMiddleware):
            found.extend(str(m) for m in layer.mounts)
        elif isinstance(layer, SharedDataMiddleware):
            found.extend(str(prefix).rstrip("/") or "/" for prefix, _ in layer.exports)
        layer = getattr(layer, "app", None)
    return tuple(found)


def is_mounted(mounts: Iterable[str], path: str) -> bool:
    """Whether a dispatcher with these mounts sends ``path`` to a mounted app: as
    ``DispatcherMiddleware`` does, the path itself or any ancestor of it at a ``/`` is a mount."""
    points = set(mounts)
    if not points:
        return False
    script = path
    while "/" in script:
        if script in points:
            return True
        script = script.rsplit("/", 1)[0]
    return script in points


def overlapping_mount(pattern: str, mounts: Iterable[str]) -> str | None:
    """The first mount whose paths the gate's ``pattern`` may match, if any."""
    for m in mounts:
        if m == "" or not m.startswith("/") or any(ch in m for ch in "{}*"):
            # Not a path matchit can compare: assume it may take anything.
            return m
        # The mount takes its own path and every path below it (a "/" mount: only "/").
        if patterns_overlap(pattern, m) or (m != "/" and patterns_overlap(pattern, m + "/{*rest}")):
            return m
    return None
