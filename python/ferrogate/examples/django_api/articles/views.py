"""An in-memory articles API: a DRF viewset plus two plain views."""

from __future__ import annotations

import threading
from typing import Any

from django.http import HttpRequest, JsonResponse
from ferrogate.django import exempt, policy
from rest_framework import status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

_lock = threading.Lock()
_articles: dict[int, dict[str, Any]] = {i: {"id": i, "title": f"Article {i}"} for i in range(1, 6)}


@exempt
def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@policy(access="deny")
def admin(request: HttpRequest, rest: str) -> JsonResponse:
    return JsonResponse({"articles": len(_articles)})


class ArticleViewSet(viewsets.ViewSet):
    def list(self, request: Request) -> Response:
        page = max(int(request.query_params.get("page", 1) or 1), 1)
        per_page = min(max(int(request.query_params.get("per_page", 20) or 20), 1), 100)
        with _lock:
            items = sorted(_articles.values(), key=lambda a: a["id"])
        start = (page - 1) * per_page
        return Response({"items": items[start : start + per_page], "page": page, "total": len(items)})

    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        with _lock:
            article = _articles.get(int(pk or 0)) if (pk or "").isdigit() else None
        if article is None:
            return Response({"detail": "not found"}, status=status.HTTP_404_NOT_FOUND)
        return Response(article)

    def create(self, request: Request) -> Response:
        title = request.data.get("title") if isinstance(request.data, dict) else None
        if not isinstance(title, str):
            return Response({"detail": "a string 'title' is required"}, status=status.HTTP_400_BAD_REQUEST)
        with _lock:
            new_id = max(_articles, default=0) + 1
            _articles[new_id] = {"id": new_id, "title": title}
            created = dict(_articles[new_id])
        return Response(created, status=status.HTTP_201_CREATED)
