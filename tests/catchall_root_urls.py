"""A catch-all listed before its own root: Django's ``path`` converter never matches an empty
value, so ``/docs/`` is ``docs_index``'s, never ``docs_page``'s
(tests/test_routing_agreement_django.py)."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import path
from ferrogate.django import limit


@limit("2/minute")
def docs_page(request: HttpRequest, page: str) -> JsonResponse:
    return JsonResponse({"view": "docs_page", "page": page})


def docs_index(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"view": "docs_index"})


urlpatterns = [
    path("docs/<path:page>", docs_page, name="docs-page"),
    path("docs/", docs_index, name="docs-index"),
]
