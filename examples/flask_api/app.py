"""A small articles API, protected by ferrogate. Run it with ``python -m ferrogate demo``, or:

flask --app examples/flask_api/app.py run
"""

from __future__ import annotations

import threading
from typing import Any

from flask import Flask, abort, jsonify, request

# The gate's config, embedded so the demo needs no files. Routes use matchit syntax.
GATE_CONFIG: dict[str, Any] = {
    "defaults": {"access": "allow"},
    "routes": [
        {"path": "/health", "methods": ["GET"], "name": "health"},
        {"path": "/articles", "methods": ["GET", "POST"], "name": "articles"},
        {"path": "/articles/{id}", "methods": ["GET", "PUT", "DELETE"], "name": "article"},
        {"path": "/admin/{*rest}", "access": "deny", "name": "admin"},
    ],
}


def create_app() -> Flask:
    app = Flask(__name__)
    lock = threading.Lock()
    articles: dict[int, dict[str, Any]] = {
        i: {"id": i, "title": f"Article {i}", "body": "..."} for i in range(1, 6)
    }

    @app.get("/health")
    def health() -> Any:
        return {"status": "ok"}

    @app.get("/articles")
    def list_articles() -> Any:
        page = max(request.args.get("page", 1, type=int) or 1, 1)
        per_page = min(max(request.args.get("per_page", 20, type=int) or 20, 1), 100)
        with lock:
            items = sorted(articles.values(), key=lambda a: a["id"])
        start = (page - 1) * per_page
        return {
            "items": items[start : start + per_page],
            "page": page,
            "per_page": per_page,
            "total": len(items),
        }

    @app.post("/articles")
    def create_article() -> Any:
        data = request.get_json(silent=True)
        if not isinstance(data, dict) or not isinstance(data.get("title"), str):
            abort(400, description="a JSON object with a string 'title' is required")
        with lock:
            new_id = max(articles, default=0) + 1
            articles[new_id] = {"id": new_id, "title": data["title"], "body": str(data.get("body", ""))}
            created = articles[new_id]
        return jsonify(created), 201, {"Location": f"/articles/{new_id}"}

    @app.route("/articles/<int:article_id>", methods=["GET", "PUT", "DELETE"])
    def article(article_id: int) -> Any:
        with lock:
            if article_id not in articles:
                abort(404)
            if request.method == "DELETE":
                del articles[article_id]
                return "", 204
            if request.method == "PUT":
                data = request.get_json(silent=True) or {}
                articles[article_id].update({k: str(v) for k, v in data.items() if k in ("title", "body")})
            return dict(articles[article_id])

    @app.get("/admin/stats")
    def admin_stats() -> Any:
        return {"articles": len(articles)}

    return app


app = create_app()
