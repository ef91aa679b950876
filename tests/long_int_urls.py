"""An ``int`` route beside a two-segment route: a value past ``sys.get_int_max_str_digits()``
makes Django's ``int()`` raise, so Django moves on to ``pair``
(tests/test_routing_agreement_django.py)."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import path
from ferrogate.django import limit

RAN: list[str] = []


@limit("1/minute")
def item(request: HttpRequest, id: int) -> JsonResponse:
    RAN.append("item")
    return JsonResponse({"view": "item"})


def pair(request: HttpRequest, a: str, b: str) -> JsonResponse:
    RAN.append("pair")
    return JsonResponse({"view": "pair"})


urlpatterns = [
    path("items/<int:id>/", item, name="item"),
    path("<str:a>/<str:b>/", pair, name="pair"),
]
