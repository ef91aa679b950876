"""View decorators: marker attributes read when the URLconf is compiled, like ``csrf_exempt``.

They work on function views and, through ``method_decorator(..., name="dispatch")`` or directly on
the class, on class-based views. Arguments are validated when the decorator runs, so a malformed one
fails at import, naming the view.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from ferrogate._adapter import add_policy, describe, validate_fragment

__all__ = ["exempt", "policy"]

F = TypeVar("F", bound=Callable[..., Any])


def policy(**fragment: Any) -> Callable[[F], F]:
    """Sets gate policy keys on a view: ``@policy(access="deny")``."""

    def decorate(view: F) -> F:
        validate_fragment(fragment, describe(view))
        return add_policy(view, fragment)

    return decorate


def exempt(view: F) -> F:
    """No gate checks at all for this view."""
    return add_policy(view, {"exempt": True})
