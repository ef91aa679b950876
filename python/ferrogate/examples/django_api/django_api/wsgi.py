"""WSGI entry point: Django behind the ferrogate fast path."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_api.settings")

from ferrogate.django.wsgi import get_wsgi_application

application = get_wsgi_application()
