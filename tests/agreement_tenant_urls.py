"""The per-request URLconf of tests/agreement_urls.py's TenantMiddleware."""

from __future__ import annotations

from agreement_urls import _view
from django.urls import path
from ferrogate.django import policy

urlpatterns = [
    path("shared/", policy(access="deny")(_view("shared_tenant"))),
    path("plain/", _view("tenant_plain")),
]
