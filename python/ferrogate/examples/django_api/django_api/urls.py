from articles import views
from django.urls import include, path
from rest_framework.routers import SimpleRouter

router = SimpleRouter()
router.register("articles", views.ArticleViewSet, basename="article")

urlpatterns = [
    path("health/", views.health, name="health"),
    path("admin/<path:rest>", views.admin, name="admin"),
    path("", include(router.urls)),
]
