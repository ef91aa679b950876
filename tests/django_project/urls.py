from __future__ import annotations

from django.urls import include, path, re_path

from django_project import views

api = [
    path("ping/", views.api_ping, name="api-ping"),
]

urlpatterns = [
    path("items/<int:pk>/", views.item, name="item"),
    path("admin/<path:rest>", views.admin, name="admin"),
    path("health/", views.health, name="health"),
    re_path(r"^legacy/(?P<year>[0-9]{4})/$", views.legacy, name="legacy"),
    re_path(r"^legacy/(?P<slug>[a-z]+)/$", views.legacy_open, name="legacy-open"),
    path("secret/", views.SecretView.as_view(), name="secret"),
    path("open/", views.OpenView.as_view(), name="open"),
    path("async/items/<int:pk>/", views.async_item, name="async-item"),
    path("async/admin/", views.async_admin, name="async-admin"),
    path("stream/", views.stream, name="stream"),
    path("api/v1/", include(api)),
    path("limited/", views.limited, name="limited"),
    path("per-user/", views.per_user, name="per-user"),
    path("notes/", views.notes, name="notes"),
    path("bench/bare/", views.bench_bare, name="bench-bare"),
    path("bench/ferrogate/", views.bench_ferrogate, name="bench-ferrogate"),
    path("bench/peer/", views.bench_peer, name="bench-peer"),
    path("cached/<int:pk>/", views.cached_item, name="cached-item"),
    path("whoami/", views.whoami, name="whoami"),
    path("drf/notes/", views.NoteViewSet.as_view({"get": "list"}), name="drf-notes"),
    path("drf/burst/", views.BurstView.as_view(), name="drf-burst"),
]
