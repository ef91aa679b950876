"""A custom converter whose regex spans a '/' without being a catch-all (``2024/05``), beside a
route the gate's router would otherwise give its paths to (tests/test_routing_agreement_django.py)."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import path, register_converter
from ferrogate.django import limit

RAN: list[str] = []


class YearMonth:
    regex = "[0-9]{4}/[0-9]{2}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(YearMonth, "span_ym")


def month(request: HttpRequest, ym: str) -> JsonResponse:
    RAN.append("month")
    return JsonResponse({"view": "month", "ym": ym})


@limit("1/minute")
def post(request: HttpRequest, year: int, slug: str) -> JsonResponse:
    RAN.append("post")
    return JsonResponse({"view": "post"})


urlpatterns = [
    path("archive/<span_ym:ym>/", month, name="month"),
    path("archive/<int:year>/<slug:slug>/", post, name="post"),
]
