"""A small articles API, protected end to end by ferrogate's Flask extension.

Reading is public and cached; writing needs a bearer token with the ``articles:write`` scope;
everything is rate limited per client; ``/admin`` is closed. Run it with
``python -m ferrogate demo``, or ``flask --app ferrogate.examples.flask_api.app run`` and a token
from ``flask --app ferrogate.examples.flask_api.app ferrogate token --scope articles:write``.
"""

from __future__ import annotations

import threading
from typing import Any

from ferrogate.flask import FerroGate, current_claims
from flask import Blueprint, Flask, abort, jsonify, request

# Development-only secret: a real deployment verifies tokens from its identity provider
# (FERROGATE_JWT = {"algorithms": ["RS256"], "jwks_url": ...}).
DEMO_SECRET = "demo-secret-for-the-example-api-only!"

CONFIG: dict[str, Any] = {
    "FERROGATE_JWT": {"algorithms": ["HS256"], "key": DEMO_SECRET, "realm": "articles"},
    "FERROGATE_DEFAULTS": {"limit": "100/minute"},
    "FERROGATE_CACHE": {"default_ttl": 30},
}

gate = FerroGate()
admin = Blueprint("admin", __name__, url_prefix="/admin")


@admin.get("/stats")
def admin_stats() -> Any:
    return {"articles": len(_articles)}


gate.policy(access="deny")(admin)

_lock = threading.Lock()
_articles: dict[int, dict[str, Any]] = {}


def _reset() -> None:
    with _lock:
        _articles.clear()
        _articles.update(
            {i: {"id": i, "title": f"Article {i}", "body": "...", "author": "seed"} for i in range(1, 6)}
        )


def create_app(*, protected: bool = True) -> Flask:
    """The app; ``protected=False`` leaves the gate out (the load test's baseline)."""
    _reset()
    app = Flask(__name__)
    app.config.update(CONFIG)

    @app.get("/health")
    @gate.exempt
    def health() -> Any:
        return {"status": "ok"}

    @app.get("/articles")
    @gate.cache(ttl=30)
    def list_articles() -> Any:
        page = max(request.args.get("page", 1, type=int) or 1, 1)
        per_page = min(max(request.args.get("per_page", 20, type=int) or 20, 1), 100)
        with _lock:
            items = sorted(_articles.values(), key=lambda a: a["id"])
        start = (page - 1) * per_page
        return {
            "items": items[start : start + per_page],
            "page": page,
            "per_page": per_page,
            "total": len(items),
        }

    @app.post("/articles")
    @gate.auth(scopes=["articles:write"])
    @gate.limit("5/minute", key="sub")
    def create_article() -> Any:
        data = request.get_json(silent=True)
        if not isinstance(data, dict) or not isinstance(data.get("title"), str):
            abort(400, description="a JSON object with a string 'title' is required")
        with _lock:
            new_id = max(_articles, default=0) + 1
            _articles[new_id] = {
                "id": new_id,
                "title": data["title"],
                "body": str(data.get("body", "")),
                "author": current_claims["sub"],
            }
            created = dict(_articles[new_id])
        return jsonify(created), 201, {"Location": f"/articles/{new_id}"}

    @app.get("/articles/<int:article_id>")
    @gate.cache(ttl=30)
    def read_article(article_id: int) -> Any:
        with _lock:
            article = _articles.get(article_id)
        if article is None:
            abort(404)
        return dict(article)

    @app.route("/articles/<int:article_id>", methods=["PUT", "DELETE"])
    @gate.auth(scopes=["articles:write"])
    def change_article(article_id: int) -> Any:
        with _lock:
            if article_id not in _articles:
                abort(404)
            if request.method == "DELETE":
                del _articles[article_id]
                return "", 204
            data = request.get_json(silent=True) or {}
            _articles[article_id].update({k: str(v) for k, v in data.items() if k in ("title", "body")})
            return dict(_articles[article_id])

    @app.get("/me")
    @gate.auth()
    def me() -> Any:
        return {"sub": current_claims["sub"], "scope": current_claims.get("scope", "")}

    app.register_blueprint(admin)
    if protected:
        gate.init_app(app)
    return app


app = create_app()
