"""A URLconf with every shape that used to route one way in the gate and another in Django
(tests/test_routing_agreement_django.py)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.urls import path, re_path, register_converter
from ferrogate.django import auth, cache, policy

RAN: list[str] = []


class Anything:
    """A custom converter whose regex matches '/' (as users write them)."""

    regex = r"[\S]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(Anything, "anything")


def _view(name: str) -> Any:
    def view(request: HttpRequest, **kwargs: Any) -> JsonResponse:
        RAN.append(name)
        return JsonResponse({"view": name, **{k: str(v) for k, v in kwargs.items()}})

    view.__name__ = view.__qualname__ = name
    return view


class TenantMiddleware:
    """Per-request URLconfs, as django-hosts and django-tenants set them."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> Any:
        if request.headers.get("X-Tenant"):
            request.urlconf = "agreement_tenant_urls"
        return self.get_response(request)


urlpatterns = [
    path("files/<anything:p>", policy(access="deny")(_view("files_all"))),
    path("files/<str:a>/<str:b>", _view("files_pair")),
    path("articles/<slug:slug>/", policy(access="deny")(_view("article"))),
    path("articles/new/", _view("article_new")),
    path("docs/help/<str:topic>", cache(ttl=60, public=True)(_view("docs_help"))),
    path("docs/<path:page>", auth(scopes=["staff"])(_view("docs_all"))),
    re_path(r"^raw/(?P<x>[\S]+)$", policy(access="deny")(_view("raw_all"))),
    path("raw/<str:a>/<str:b>", _view("raw_pair")),
    re_path(r"^blob/(?P<name>\w+)\.(?P<ext>\w+)$", cache(ttl=60, public=True)(_view("blob"))),
    path("shared/", _view("shared_main")),
]
