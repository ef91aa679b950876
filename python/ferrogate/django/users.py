"""The user a verified token stands for, the way djangorestframework-simplejwt finds it.

The user id comes from ``settings.FERROGATE_USER_ID_CLAIM`` (default ``"sub"``; simplejwt's tokens
carry ``"user_id"``). With ``settings.FERROGATE_USER_LOADER`` (a dotted path to
``f(claims) -> user | None``; :func:`model_user` loads ``get_user_model()`` as simplejwt does) the
user comes from the app, and a missing or inactive one is refused (:class:`UserRejected`);
without it, a :class:`TokenUser` stands for the user without a database query. A token without a
user id never authenticates anyone.
"""

from __future__ import annotations

from typing import Any, cast

from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import ObjectDoesNotExist
from django.db.models.manager import EmptyManager
from django.utils.module_loading import import_string

__all__ = ["TokenUser", "UserRejected", "load_user", "model_user", "user_id_claim"]


class UserRejected(Exception):  # noqa: N818 - a verdict, as Django's PermissionDenied
    """A verified token that must not authenticate: ``code`` is simplejwt's
    (``token_not_valid``, ``user_not_found``, ``user_inactive``)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def _is_user_id(uid: Any) -> bool:
    """A user id is a non-empty string or an int: never a bool (``True == 1``), a float that
    rounds to someone's pk, or a structure."""
    return (isinstance(uid, str) and uid != "") or (isinstance(uid, int) and not isinstance(uid, bool))


def user_id_claim() -> str:
    return str(getattr(settings, "FERROGATE_USER_ID_CLAIM", "sub"))


class TokenUser:
    """The user a verified token stands for when no user loader is configured (as simplejwt's
    ``TokenUser``): no database access. ``id``/``pk`` are the user-id claim as the token carries
    it; ``is_staff``/``is_superuser`` are the token's claims of those names (default False)."""

    is_active = True
    _groups = EmptyManager(Group)
    _user_permissions = EmptyManager(Permission)

    def __init__(self, claims: dict[str, Any], id_claim: str | None = None) -> None:
        claim = id_claim or user_id_claim()
        uid = claims.get(claim)
        if not _is_user_id(uid):
            raise UserRejected("token_not_valid", f"the token has no user id claim {claim!r}")
        self.claims = claims
        self.token = claims
        self.id: str | int = cast(str | int, uid)
        self.pk: str | int = self.id
        username = claims.get("username")
        self.username: str = username if isinstance(username, str) else str(uid)
        self.is_staff: bool = claims.get("is_staff") is True
        self.is_superuser: bool = claims.get("is_superuser") is True

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_anonymous(self) -> bool:
        return False

    @property
    def groups(self) -> EmptyManager:
        return self._groups

    @property
    def user_permissions(self) -> EmptyManager:
        return self._user_permissions

    def get_username(self) -> str:
        return self.username

    def __str__(self) -> str:
        return f"TokenUser {self.id}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TokenUser) and self.id == other.id

    def __hash__(self) -> int:
        return hash(("TokenUser", self.id))

    def get_group_permissions(self, obj: Any = None) -> set[str]:
        return set()

    def get_all_permissions(self, obj: Any = None) -> set[str]:
        return set()

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        return False

    def has_perms(self, perms: Any, obj: Any = None) -> bool:
        return False

    def has_module_perms(self, module: str) -> bool:
        return False

    def save(self) -> None:
        raise NotImplementedError("a TokenUser is not stored")

    def delete(self) -> None:
        raise NotImplementedError("a TokenUser is not stored")


def model_user(claims: dict[str, Any]) -> Any:
    """``get_user_model()`` whose ``FERROGATE_USER_ID_FIELD`` (default ``"pk"``) is the token's
    user id: simplejwt's lookup, for ``FERROGATE_USER_LOADER = "ferrogate.django.users.model_user"``."""
    from django.contrib.auth import get_user_model

    field = str(getattr(settings, "FERROGATE_USER_ID_FIELD", "pk"))
    try:
        return get_user_model()._default_manager.get(**{field: claims[user_id_claim()]})
    except (ObjectDoesNotExist, ValueError, TypeError):
        return None


def load_user(claims: dict[str, Any]) -> Any:
    """The token's user; raises :class:`UserRejected` when the token has no user id, or the loader
    finds no user or an inactive one (a user the app deleted or disabled, as simplejwt refuses)."""
    claim = user_id_claim()
    path = getattr(settings, "FERROGATE_USER_LOADER", None)
    if not path:
        return TokenUser(claims, claim)
    uid = claims.get(claim)
    if not _is_user_id(uid):
        raise UserRejected("token_not_valid", f"the token has no user id claim {claim!r}")
    loader = import_string(path) if isinstance(path, str) else path
    try:
        user = loader(claims)
    except ObjectDoesNotExist:
        user = None
    if user is None:
        raise UserRejected("user_not_found", "the token's user does not exist")
    if not getattr(user, "is_active", True):
        raise UserRejected("user_inactive", "the token's user is inactive")
    return user
