"""A typed converter beside a catch-all: Django sends ``items/abc/`` to the catch-all, and the
gate must never count it under the ``int`` route (tests/test_routing_agreement_django.py)."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import path
from ferrogate.django import limit


@limit("3/minute")
def by_pk(request: HttpRequest, pk: int) -> JsonResponse:
    return JsonResponse({"pk": pk})


@limit("100/minute")
def catch(request: HttpRequest, rest: str) -> JsonResponse:
    return JsonResponse({"rest": rest})


urlpatterns = [
    path("items/<int:pk>/", by_pk, name="by-pk"),
    path("<path:rest>", catch, name="catch"),
]
