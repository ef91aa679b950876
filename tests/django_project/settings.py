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
FERROGATE = {"defaults": {"access": "allow"}}
REST_FRAMEWORK = {"UNAUTHENTICATED_USER": None}
