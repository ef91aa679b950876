"""Two routes Django and the gate's radix tree order differently: Django tries
``articles/<slug>/`` first, matchit prefers the static ``articles/new/``
(tests/test_routing_agreement_django.py)."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import path
from ferrogate.django import auth, limit


@auth()
def article(request: HttpRequest, slug: str) -> JsonResponse:
    return JsonResponse({"view": "article", "slug": slug})


@limit("2/minute")
def article_new(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"view": "article_new"})


@limit("2/minute")
def article_feed(request: HttpRequest, slug: str) -> JsonResponse:
    return JsonResponse({"view": "article_feed", "slug": slug})


urlpatterns = [
    path("articles/<slug:slug>/", article, name="article"),
    path("articles/new/", article_new, name="article-new"),
    # Overlaps nothing before it: compiled, on the fast path.
    path("articles/<slug:slug>/feed/", article_feed, name="article-feed"),
]
