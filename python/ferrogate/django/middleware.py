"""``GateMiddleware`` for Django: sync and async capable, one Rust call per request."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase

from ferrogate._adapter import body_for, invalid_token_answer, policy_of, refusal_answer, store_response
from ferrogate._native import CacheTicket, Decision
from ferrogate.django import state
from ferrogate.django._compat import header_access
from ferrogate.django.urls import fallback_key

logger = logging.getLogger("ferrogate")

__all__ = ["GateMiddleware"]

GetResponse = Callable[[HttpRequest], HttpResponseBase]
AsyncGetResponse = Callable[[HttpRequest], Awaitable[HttpResponseBase]]


def _refusal(d: Decision, request: HttpRequest) -> HttpResponse:
    status, headers, body = refusal_answer(d, request.method, request.META, state.on_refused())
    response = HttpResponse(body, status=status)
    for k, v in headers:
        response.headers[k] = v
    return response


def _forwarded(d: Decision, request: HttpRequest) -> None:
    """A decision taken here (not by the WSGI fast path, which adds its own headers and stores its
    own responses on the way out): the request carries it, and ``_finish`` applies it."""
    d.forward_into(request.META)
    request._ferrogate_headers = d.headers
    request._ferrogate_ticket = d.cache_ticket


def _attach_user(request: HttpRequest) -> HttpResponse | None:
    """With ``settings.FERROGATE_USER_LOADER``, ``request.user`` becomes the token's user. Called
    from ``process_view``, after every middleware's ``process_request`` (Django's
    ``AuthenticationMiddleware`` sets a session user there), so the view sees the token's user.
    A user the loader cannot find, an inactive one, or a token without a user id is answered 401
    here, as simplejwt does, before the view runs."""
    claims = getattr(request, "jwt_claims", None)
    if claims is None or not state.user_loader_set():
        return None
    from ferrogate.django.users import UserRejected, load_user

    try:
        request.user = request._ferrogate_user = load_user(claims)
    except UserRejected as e:
        return _user_rejected(request, e)
    return None


def _user_rejected(request: HttpRequest, e: Any) -> HttpResponse:
    realm = (state.gate_config().get("jwt") or {}).get("realm", "api")
    headers, body = invalid_token_answer(realm, e.detail, code=e.code)
    response = HttpResponse(body_for(request.method, body), status=401)
    for k, v in headers:
        response[k] = v
    return response


def _gate_headers(response: HttpResponseBase, headers: Sequence[tuple[str, str]]) -> None:
    if headers:
        header_access().set_all(response, _one_per_name(headers))


def _one_per_name(headers: Sequence[tuple[str, str]]) -> Sequence[tuple[str, str]]:
    """Django keeps one value per header name: a name the gate sends twice (two limits' ``RateLimit``
    and ``RateLimit-Policy`` items) becomes one comma-separated list, which is what the two lines
    mean in HTTP (RFC 9110 §5.3)."""
    names = [k.lower() for k, _ in headers]
    if len(set(names)) == len(names):
        return headers
    merged: dict[str, tuple[str, str]] = {}
    for k, v in headers:
        key = k.lower()
        merged[key] = (k, f"{merged[key][1]}, {v}") if key in merged else (k, v)
    return list(merged.values())


def _store_django_response(ticket: CacheTicket, response: HttpResponseBase) -> None:
    """Hands a finished response to the cache; streaming responses are never stored."""

    def read() -> tuple[list[tuple[str, str]], bytes]:
        headers = header_access().items(response)
        if response.cookies:
            # Django keeps cookies apart from headers: show them to the rules (they forbid storing).
            headers += [("set-cookie", c.output(header="").strip()) for c in response.cookies.values()]
        return headers, response.content

    streamed = getattr(response, "streaming", False)
    # Apply only what the cache changed: the gate's own headers (cache status, ETag) to add and
    # the tags header to take away.
    add, remove = store_response(ticket, response.status_code, streamed, read)
    current = response.headers
    for name in remove:
        if name in current:
            del current[name]
    _gate_headers(response, add)


class GateMiddleware:
    """Checks every request with the gate compiled from ``settings.FERROGATE`` and the URLconf.

    Place it near the top of ``MIDDLEWARE`` (after ``SecurityMiddleware``): requests it refuses then
    cost no session, authentication or database work. Behind :func:`ferrogate.django.wsgi.
    get_wsgi_application`, the request was already checked before Django built it; the middleware
    then only finishes the job (response headers, ``process_view`` fallbacks).
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: GetResponse | AsyncGetResponse) -> None:
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def _check(self, request: HttpRequest) -> HttpResponse | None:
        meta = request.META
        d = meta.get("ferrogate.decision")
        if d is None:
            d = state.check(meta)
            if not d.forward:
                return _refusal(d, request)
            _forwarded(d, request)
        request.jwt_claims = meta.get("ferrogate.claims")
        return None

    @staticmethod
    def _finish(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        ticket = getattr(request, "_ferrogate_ticket", None)
        if ticket is not None:
            _store_django_response(ticket, response)
        _gate_headers(response, getattr(request, "_ferrogate_headers", ()))
        return response

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self.__acall__(request)
        refused = self._check(request)
        if refused is not None:
            return refused
        response = self.get_response(request)
        return self._finish(request, response)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        # In memory the check is a microsecond of CPU: running it inline beats a thread hop. With
        # Redis it may wait on a round trip (up to the timeout), which must not block the loop.
        on_redis = state.compiled().gate.uses_redis
        if on_redis:
            refused = await sync_to_async(self._check, thread_sensitive=False)(request)
        else:
            refused = self._check(request)
        if refused is not None:
            return refused
        response = await self.get_response(request)
        if on_redis and getattr(request, "_ferrogate_ticket", None) is not None:
            # Storing may write to the shared cache tier.
            return await sync_to_async(self._finish, thread_sensitive=False)(request, response)
        return self._finish(request, response)

    def process_view(
        self, request: HttpRequest, view_func: Callable[..., Any], view_args: Any, view_kwargs: Any
    ) -> HttpResponse | None:
        """Confirms that Django resolved the route the gate enforced (one comparison) and otherwise
        checks the request again under the resolved view's policy, before the view runs. Routes
        the fast path could not express (``re_path``, per-request URLconfs) are checked here."""
        meta = request.META
        match = request.resolver_match
        key = fallback_key(match.route, match.func) if match is not None else None
        compiled = state.compiled()
        early = meta.get("ferrogate.decision")
        if compiled.confirmed(early, key):
            return _attach_user(request)
        if key is not None and key not in compiled.index_of and policy_of(view_func):
            # A view with a policy the gate's table lacks (a URLconf it never compiled): closed.
            logger.error(
                "ferrogate: view %s has a policy but its route %r is not in the gate's table "
                "(only ROOT_URLCONF is compiled; a per-request URLconf's views with a policy are "
                "refused); refused",
                getattr(view_func, "__qualname__", view_func),
                match.route if match is not None else None,
            )
            return _unknown_view(request)
        d = compiled.recheck(early, key, meta, lambda ck: ck.fn(request))
        if not d.forward:
            return _refusal(d, request)
        _forwarded(d, request)
        request.jwt_claims = d.claims
        return _attach_user(request)


def _unknown_view(request: HttpRequest) -> HttpResponse:
    body = json.dumps(
        {
            "type": "about:blank",
            "title": "Forbidden",
            "status": 403,
            "detail": "this view's gateway policy is not in the gate's route table",
        }
    ).encode()
    response = HttpResponse(
        body_for(request.method, body), status=403, content_type="application/problem+json"
    )
    return response
