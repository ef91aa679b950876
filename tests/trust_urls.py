"""A URLconf of two unnamed class-based views with inline limits (tests/test_redis_trust_limits.py):
Django labels both ``View.as_view.<locals>.view``."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views import View
from ferrogate.django import limit


@limit("1/hour")
class One(View):
    def get(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse("one")


@limit("1/hour")
class Two(View):
    def get(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse("two")


urlpatterns = [path("one/", One.as_view()), path("two/", Two.as_view())]
