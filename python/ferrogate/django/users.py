"""The user a verified token stands for, without touching the database unless asked to."""

from __future__ import annotations

from typing import Any

from django.utils.module_loading import import_string

__all__ = ["TokenUser", "load_user"]


class TokenUser:
    """The user a verified token stands for when no user loader is configured (like
    djangorestframework-simplejwt's ``TokenUser``): no database access."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False

    def __init__(self, claims: dict[str, Any]) -> None:
        self.claims = claims
        self.pk = self.id = claims.get("sub")
        self.username = str(self.pk or "")

    def __str__(self) -> str:
        return f"TokenUser {self.username}"

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        return False

    def has_perms(self, perms: Any, obj: Any = None) -> bool:
        return False

    def has_module_perms(self, module: str) -> bool:
        return False


def load_user(claims: dict[str, Any]) -> Any:
    """``settings.FERROGATE_USER_LOADER`` (a dotted path to ``f(claims) -> user``) or a TokenUser."""
    from django.conf import settings

    path = getattr(settings, "FERROGATE_USER_LOADER", None)
    if path:
        return import_string(path)(claims)
    return TokenUser(claims)
