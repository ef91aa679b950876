"""A DRF API as a simplejwt + DRF-throttling user writes it, ported to ferrogate by settings: the
tests in test_drf_migration.py serve it with ``ROOT_URLCONF = "drf_migration_urls"``."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.urls import path
from ferrogate.django import auth, create_access_token, limit
from ferrogate.drf import AnonRateThrottle, ScopedRateThrottle, UserRateThrottle
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView


def _who(request: Request) -> dict[str, Any]:
    user = request.user
    return {
        "user": type(user).__name__,
        "pk": getattr(user, "pk", None),
        "username": user.get_username() if user.is_authenticated else None,
        "auth_is_jwt_claims": request.auth is request._request.jwt_claims,
        "sub": (request.auth or {}).get("sub"),
    }


class Me(APIView):
    """No gate policy: DRF's JWTAuthentication verifies the token itself."""

    throttle_classes: tuple[Any, ...] = ()

    def get(self, request: Request) -> Response:
        return Response(_who(request))


class GatedMe(APIView):
    """The gate verifies first (``@auth``), DRF reuses its claims."""

    throttle_classes: tuple[Any, ...] = ()

    def get(self, request: Request) -> Response:
        return Response(_who(request))


class BurstRateThrottle(UserRateThrottle):
    scope = "burst"


class SustainedRateThrottle(UserRateThrottle):
    scope = "sustained"


class Burst(APIView):
    throttle_classes = (BurstRateThrottle,)

    def get(self, request: Request) -> Response:
        return Response({"ok": True})


class BurstAndSustained(APIView):
    throttle_classes = (BurstRateThrottle, SustainedRateThrottle)

    def get(self, request: Request) -> Response:
        return Response({"ok": True})


class Uploads(APIView):
    permission_classes = (AllowAny,)
    throttle_classes = (ScopedRateThrottle,)
    throttle_scope = "uploads"

    def get(self, request: Request) -> Response:
        return Response({"ok": True})


class Typo(APIView):
    permission_classes = (AllowAny,)
    throttle_classes = (ScopedRateThrottle,)
    throttle_scope = "upload"  # not in DEFAULT_THROTTLE_RATES

    def get(self, request: Request) -> Response:
        return Response({"ok": True})


class Unscoped(APIView):
    permission_classes = (AllowAny,)
    throttle_classes = (ScopedRateThrottle,)

    def get(self, request: Request) -> Response:
        return Response({"ok": True})


class Public(APIView):
    permission_classes = (AllowAny,)
    throttle_classes = (AnonRateThrottle, UserRateThrottle)

    def get(self, request: Request) -> Response:
        return Response({"ok": True})


def issue(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"access": create_access_token("42", scopes=["notes:read"])})


@auth(scopes=["notes:read"])
def notes(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"sub": request.jwt_claims["sub"]})  # type: ignore[attr-defined]


urlpatterns = [
    path("token/", TokenObtainPairView.as_view()),
    path("token/refresh/", TokenRefreshView.as_view()),
    path("me/", Me.as_view()),
    path("gated-me/", auth()(GatedMe.as_view())),
    path("burst/", Burst.as_view()),
    path("both/", BurstAndSustained.as_view()),
    path("uploads/", Uploads.as_view()),
    path("typo/", Typo.as_view()),
    path("unscoped/", Unscoped.as_view()),
    path("public/", Public.as_view()),
    path("issue/", issue),
    path("notes/", notes),
]


def who_plain(request: HttpRequest) -> JsonResponse:
    user = request.user
    return JsonResponse({"pk": getattr(user, "pk", None), "authenticated": user.is_authenticated})


class OwnRate(UserRateThrottle):
    scope = None  # type: ignore[assignment]
    rate = "2/min"


class OwnRateView(APIView):
    throttle_classes = (OwnRate,)

    def get(self, request: Request) -> Response:
        return Response({"ok": True})


class NoneRateView(APIView):
    permission_classes = (AllowAny,)
    throttle_classes = (ScopedRateThrottle,)
    throttle_scope = "unlimited"  # set to None in DEFAULT_THROTTLE_RATES: not throttled, as in DRF

    def get(self, request: Request) -> Response:
        return Response({"ok": True})


urlpatterns += [
    path("who-plain/", auth()(who_plain)),
    path("own-rate/", OwnRateView.as_view()),
    path("none-rate/", NoneRateView.as_view()),
]


@limit("5/minute")
@limit("100/hour", key="ip")
def two_limits(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


urlpatterns += [path("two-limits/", two_limits)]
