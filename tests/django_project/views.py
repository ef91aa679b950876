from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.utils.decorators import method_decorator
from django.views import View
from ferrogate.django import auth, cache, exempt, limit, policy
from rest_framework import viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

CALLS: dict[str, int] = {"middleware": 0, "views": 0}


class CountingMiddleware:
    """Counts requests that got past the gate into the rest of the Django stack."""

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> Any:
        CALLS["middleware"] += 1
        return self.get_response(request)


def _seen(request: HttpRequest, **extra: Any) -> JsonResponse:
    CALLS["views"] += 1
    return JsonResponse(
        {
            "route": request.META.get("ferrogate.route"),
            "claims": getattr(request, "jwt_claims", None),
            **extra,
        }
    )


def item(request: HttpRequest, pk: int) -> JsonResponse:
    return _seen(request, pk=pk)


@policy(access="deny")
def admin(request: HttpRequest, rest: str) -> JsonResponse:
    return _seen(request, rest=rest)


@exempt
def health(request: HttpRequest) -> JsonResponse:
    return _seen(request, ok=True)


@policy(access="deny")
def legacy(request: HttpRequest, year: str) -> JsonResponse:
    return _seen(request, year=year)


def legacy_open(request: HttpRequest, slug: str) -> JsonResponse:
    return _seen(request, slug=slug)


@method_decorator(policy(access="deny"), name="dispatch")
class SecretView(View):
    def get(self, request: HttpRequest) -> JsonResponse:
        return _seen(request, secret=True)


class OpenView(View):
    def get(self, request: HttpRequest) -> JsonResponse:
        return _seen(request, open=True)


async def async_item(request: HttpRequest, pk: int) -> JsonResponse:
    return _seen(request, pk=pk, mode="async")


@policy(access="deny")
async def async_admin(request: HttpRequest) -> JsonResponse:
    return _seen(request)


def stream(request: HttpRequest) -> StreamingHttpResponse:
    def gen() -> Iterator[bytes]:
        yield b"a;"
        yield b"b"

    return StreamingHttpResponse(gen(), content_type="text/plain")


def api_ping(request: HttpRequest) -> HttpResponse:
    return _seen(request, ping=True)


@limit("1/minute")
def limited(request: HttpRequest) -> JsonResponse:
    return _seen(request)


@limit("1/minute", key=lambda request: request.headers.get("X-User", "anon"))
def per_user(request: HttpRequest) -> JsonResponse:
    return _seen(request)


@auth(scopes=["notes:read"])
def notes(request: HttpRequest) -> JsonResponse:
    return _seen(request, notes=[])


@auth(optional=True)
async def whoami(request: HttpRequest) -> JsonResponse:
    claims = getattr(request, "jwt_claims", None)
    return JsonResponse({"sub": claims["sub"] if claims else None})


class NoteViewSet(viewsets.ViewSet):
    def list(self, request: Request) -> Response:
        return Response({"user": str(request.user), "auth": request.auth})


class BurstView(APIView):
    throttle_scope = "burst"

    def get(self, request: Request) -> Response:
        return Response({"ok": True})


@cache(ttl=60)
def cached_item(request: HttpRequest, pk: int) -> JsonResponse:
    if request.method == "POST":
        return JsonResponse({"updated": pk})
    return _seen(request, pk=pk)


# -- benchmark views: the same JSON payload bare, behind ferrogate, and behind the peer stack --

_PAYLOAD = {"items": [{"id": i, "title": f"Article {i}"} for i in range(10)]}


def bench_bare(request: HttpRequest) -> JsonResponse:
    return JsonResponse(_PAYLOAD)


@auth()
@limit("1000000000/hour", key="sub")
@cache(ttl=60)
def bench_ferrogate(request: HttpRequest) -> JsonResponse:
    return JsonResponse(_PAYLOAD)


def _peer_view() -> Any:
    from django.views.decorators.cache import cache_page
    from rest_framework.decorators import (
        api_view,
        authentication_classes,
        permission_classes,
        throttle_classes,
    )
    from rest_framework.permissions import IsAuthenticated
    from rest_framework.throttling import UserRateThrottle
    from rest_framework_simplejwt.authentication import JWTStatelessUserAuthentication

    class BigThrottle(UserRateThrottle):
        rate = "1000000000/hour"

    @api_view(["GET"])
    @authentication_classes([JWTStatelessUserAuthentication])
    @permission_classes([IsAuthenticated])
    @throttle_classes([BigThrottle])
    def view(request: Request) -> Response:
        return Response(_PAYLOAD)

    return cache_page(60)(view)


bench_peer = _peer_view()
