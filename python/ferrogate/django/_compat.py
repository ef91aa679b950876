"""The one place ferrogate reads a private Django API, for speed, with a version check and a
fallback to the public API.

Every response through the gate gets two to four headers, and a cached one has its headers read
and changed once more. Through ``response.headers[name] = value`` Django converts and checks each
header (most of what setting one costs); the headers the gate sets are ASCII without line breaks, so
that work finds nothing to do. ``ResponseHeaders`` keeps them in ``_store`` (lower-cased name ->
``(name, value)``), as it has since Django 3.2: within the versions below, and when a probe shows the
layout is still that one, the store is read and updated directly; otherwise the public API is used.
``tests/test_django_compat.py`` runs both on the installed Django, and on the lowest supported
Django when it is given.
"""

from __future__ import annotations

from collections.abc import Iterable

import django
from django.http import HttpResponse
from django.http.response import HttpResponseBase

__all__ = ["STORE_VERSIONS", "PublicHeaders", "StoreHeaders", "header_access"]

#: Django versions whose ``ResponseHeaders._store`` layout has been checked: from the lowest
#: supported (pyproject.toml: django>=4.2) to the newest released when this was written.
STORE_VERSIONS = ((4, 2), (6, 1))


class PublicHeaders:
    """Django's documented header API."""

    @staticmethod
    def items(response: HttpResponseBase) -> list[tuple[str, str]]:
        return list(response.headers.items())

    @staticmethod
    def set_all(response: HttpResponseBase, headers: Iterable[tuple[str, str]]) -> None:
        for name, value in headers:
            response.headers[name] = value


class StoreHeaders:
    """``ResponseHeaders``' own store: no per-header conversion, one dict update for all of them."""

    @staticmethod
    def items(response: HttpResponseBase) -> list[tuple[str, str]]:
        return list(response.headers._store.values())

    @staticmethod
    def set_all(response: HttpResponseBase, headers: Iterable[tuple[str, str]]) -> None:
        response.headers._store.update({name.lower(): (name, value) for name, value in headers})


def store_usable(version: tuple[int, ...] | None = None) -> bool:
    """Whether this Django is one whose store layout is known (``version``: ``django.VERSION``),
    and a probe response shows the layout: a header set through the store reads back through the
    public API, and the store's items are the public items."""
    found = tuple(django.VERSION[:2] if version is None else version[:2])
    low, high = STORE_VERSIONS
    if not low <= found <= high:
        return False
    probe = HttpResponse(content_type="text/plain")
    if not isinstance(getattr(probe.headers, "_store", None), dict):
        return False
    StoreHeaders.set_all(probe, [("X-Ferrogate-Probe", "1")])
    return probe.headers.get("x-ferrogate-probe") == "1" and StoreHeaders.items(probe) == list(probe.items())


_access: type[PublicHeaders] | type[StoreHeaders] | None = None


def header_access() -> type[PublicHeaders] | type[StoreHeaders]:
    """How the middleware reads and sets response headers in this process: decided once."""
    global _access
    found = _access
    if found is None:
        found = _access = StoreHeaders if store_usable() else PublicHeaders
    return found
