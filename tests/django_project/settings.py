"""Settings for the Django test project."""

SECRET_KEY = "test-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "django_project.urls"
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "rest_framework",
    "ferrogate.django",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "ferrogate.django.GateMiddleware",
    "django_project.views.CountingMiddleware",
    "django.middleware.common.CommonMiddleware",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
JWT_SECRET = "django-test-secret-long-enough-for-hs256"
FERROGATE = {
    "defaults": {"access": "allow"},
    "jwt": {"algorithms": ["HS256"], "key": JWT_SECRET, "realm": "django-tests"},
}
REST_FRAMEWORK = {
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_AUTHENTICATION_CLASSES": ["ferrogate.drf.JWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["ferrogate.drf.GateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"user": "3/min", "anon": "100/day", "burst": "1/second"},
}

# simplejwt's defaults (its tokens name the user in `user_id`), for the benchmark's peer stack and
# the migration tests. Set here, not by override_settings: simplejwt's token classes keep the
# settings object they imported.
SIMPLE_JWT = {"SIGNING_KEY": JWT_SECRET, "ALGORITHM": "HS256"}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
