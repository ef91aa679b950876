"""WSGI layers inside the gate that answer some paths themselves, beside Flask.

A ``DispatcherMiddleware`` or a ``SharedDataMiddleware`` wrapped around ``app.wsgi_app`` before
``init_app`` sits between the gate and Flask: for the paths under its mounts it answers itself,
and no Flask rule or ``before_request`` hook ever sees them. Such a path gets the ``defaults``
policy, never the policy of a Flask rule that happens to match it too (a ``/<path:page>``
catch-all beside a metrics app mounted at ``/metrics``). The Flask adapter sends the rules a mount
may overlap to its resolver, which answers "no Flask rule" for a path such a layer serves. A path
that falls through to Flask after all (a file the shared-data layer does not have) is checked
again in Flask's hook under the rule Flask resolves, as every unconfirmed early decision is.

Each layer is read as it reads a request: a dispatcher compares its mount points with the raw
``PATH_INFO`` (WSGI text), a shared-data layer its exports with the decoded path, and serves a
path only when it has an allowed file for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.middleware.shared_data import SharedDataMiddleware
from werkzeug.wsgi import get_path_info

from ferrogate._adapter import patterns_overlap
from ferrogate.exceptions import ConfigError

#: The attributes WSGI middlewares keep the app they wrap in (werkzeug's, Sentry's: ``app``;
#: engine.io's: ``wsgi_app``; WhiteNoise's: ``application``; OpenTelemetry's: ``wsgi``).
_WRAPPED = ("app", "wsgi_app", "application", "wsgi")


@dataclass(frozen=True)
class Mounts:
    """What the layers between the gate and Flask serve themselves."""

    #: Dispatcher mount points, as the dispatcher compares them: WSGI text.
    dispatch: tuple[str, ...] = ()
    #: Shared-data layers, asked whether they have a file for a path.
    shared: tuple[SharedDataMiddleware, ...] = ()
    #: Layers the walk could not see through (no wrapped app it knows where to find).
    opaque: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.dispatch or self.shared)

    @property
    def signature(self) -> tuple[Any, ...]:
        """Changes when a mount or an export is added or removed."""
        return (self.dispatch, tuple(tuple(k for k, _ in s.exports) for s in self.shared), self.opaque)

    def serves(self, environ: Mapping[str, Any]) -> bool:
        """Whether one of these layers answers the request itself."""
        raw = str(environ.get("PATH_INFO", ""))
        if self.dispatch and _dispatched(self.dispatch, raw):
            return True
        return any(_has_file(layer, environ) for layer in self.shared)

    def overlapping(self, pattern: str) -> str | None:
        """The first mount or export whose paths the gate's ``pattern`` may match, if any."""
        for m in self.dispatch:
            # The dispatcher takes its mount point and every path below it (a "/" mount: only
            # "/"); rule patterns are decoded text, so compare the mount decoded too.
            for text in {m, _decoded(m)}:
                if _overlaps(pattern, text, below=text != "/"):
                    return m
        for layer in self.shared:
            for key, _ in layer.exports:
                root = str(key).rstrip("/")
                # An export takes every path below it ("/": every path), and its own path.
                if not root or _overlaps(pattern, root, below=True):
                    return str(key)
        return None


def _overlaps(pattern: str, mount: str, *, below: bool) -> bool:
    if mount == "" or not mount.startswith("/") or any(ch in mount for ch in "{}*"):
        return True  # not a path matchit can compare: assume it may take anything
    return patterns_overlap(pattern, mount) or (below and patterns_overlap(pattern, mount + "/{*rest}"))


def _decoded(wsgi_text: str) -> str:
    """A WSGI-text (latin-1) mount point as the decoded path it stands for."""
    try:
        return wsgi_text.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return wsgi_text


def _dispatched(points: tuple[str, ...], path: str) -> bool:
    """As ``DispatcherMiddleware`` does: the path itself or any ancestor of it at a ``/``."""
    found = set(points)
    script = path
    while "/" in script:
        if script in found:
            return True
        script = script.rsplit("/", 1)[0]
    return script in found


def _has_file(layer: SharedDataMiddleware, environ: Mapping[str, Any]) -> bool:
    """As ``SharedDataMiddleware`` does: the first export with a file for the path, allowed."""
    path = get_path_info(dict(environ))
    for search_path, loader in layer.exports:
        filename, opened = loader(None) if search_path == path else (None, None)
        if opened is None:
            prefix = search_path if search_path.endswith("/") else search_path + "/"
            if not path.startswith(prefix):
                continue
            filename, opened = loader(path[len(prefix) :])
        if opened is not None:
            return filename is not None and layer.is_allowed(filename)
    return False


def mounts_inside(layer: Any, flask_app: Any) -> Mounts:
    """The layers from ``layer`` (what the gate wraps) down to Flask's own entry point, each
    reached through the attribute it keeps its wrapped app in."""
    flask_entry = type(flask_app).wsgi_app.__get__(flask_app)
    dispatch: list[str] = []
    shared: list[SharedDataMiddleware] = []
    seen: set[int] = set()
    outer: Any = None
    while layer != flask_entry and layer is not flask_app:
        if layer is None or id(layer) in seen:
            return Mounts(tuple(dispatch), tuple(shared), (_name(outer),))
        seen.add(id(layer))
        outer = layer
        if isinstance(layer, DispatcherMiddleware):
            for point, mounted in layer.mounts.items():
                if _leads_to(mounted, flask_entry, flask_app):
                    raise ConfigError(
                        f"Flask is mounted at {point!r} inside the gate: the gate would see the whole "
                        "path and Flask's rules only the path below the mount. Call init_app before "
                        "mounting the app, or put ferrogate.wsgi's gate around the dispatcher",
                        [("app.wsgi_app", f"Flask is a DispatcherMiddleware mount ({point!r})")],
                    )
            dispatch.extend(str(m) for m in layer.mounts)
        elif isinstance(layer, SharedDataMiddleware):
            shared.append(layer)
        layer = _wrapped(layer)
    return Mounts(tuple(dispatch), tuple(shared))


def _wrapped(layer: Any) -> Any:
    for attr in _WRAPPED:
        inner = getattr(layer, attr, None)
        if callable(inner):
            return inner
    return None


def _leads_to(layer: Any, flask_entry: Any, flask_app: Any) -> bool:
    seen: set[int] = set()
    while layer is not None and id(layer) not in seen:
        if layer == flask_entry or layer is flask_app:
            return True
        seen.add(id(layer))
        if isinstance(layer, DispatcherMiddleware) and any(
            _leads_to(m, flask_entry, flask_app) for m in layer.mounts.values()
        ):
            return True
        layer = _wrapped(layer)
    return False


def _name(layer: Any) -> str:
    return getattr(layer, "__qualname__", None) or type(layer).__qualname__
