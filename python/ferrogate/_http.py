"""The HTTP GET the Rust core uses to fetch JWKS and OIDC discovery documents.

urllib, so https, proxies and the system's CA store behave as in any Python app. Redirects are
followed, but never from https to http (a downgrade would let anyone on the path serve keys);
bodies over 1 MiB are refused.
"""

from __future__ import annotations

import urllib.request
from typing import Any

__all__ = ["fetch"]

_MAX_BODY = 1 << 20


class _NoDowngrade(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        if req.full_url.startswith("https://") and not newurl.startswith("https://"):
            raise OSError(f"refusing a redirect from https to {newurl.split(':', 1)[0]}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_opener = urllib.request.build_opener(_NoDowngrade)


def fetch(url: str, timeout: float) -> tuple[bytes, str | None]:
    if not url.startswith(("http://", "https://")):
        raise ValueError("only http and https URLs are fetched")
    request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "ferrogate"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        if response.status != 200:
            raise OSError(f"HTTP {response.status}")
        body: bytes = response.read(_MAX_BODY + 1)
        if len(body) > _MAX_BODY:
            raise ValueError("response larger than 1 MiB")
        cache_control: str | None = response.headers.get("Cache-Control")
        return body, cache_control
