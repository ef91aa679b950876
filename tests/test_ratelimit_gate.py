"""Rate limits in the Gate, through the WSGI middleware in front of a real Flask app.

Quotas here are per hour so that the few milliseconds a test takes never refill a request: every
count and header value below is exact.
"""

from __future__ import annotations

import json
import logging
import warnings
from typing import Any

import flask
import pytest
from ferrogate import ConfigError, Gate, InMemoryRateLimitWarning
from ferrogate.ratelimit import detect_worker_processes, warn_if_multiprocess


def make_client(config: dict[str, Any]) -> Any:
    app = flask.Flask(__name__)

    @app.route("/items/<int:item>", methods=["GET", "POST"])
    def item(item: int) -> dict[str, int]:
        return {"item": item}

    @app.route("/login", methods=["POST"])
    def login() -> str:
        return "ok"

    @app.route("/health")
    def health() -> str:
        return "ok"

    @app.route("/search")
    def search() -> str:
        return "ok"

    app.wsgi_app = Gate(config).wsgi(app.wsgi_app)  # type: ignore[method-assign]
    return app.test_client()


def get(client: Any, path: str, ip: str = "198.51.100.1", method: str = "GET", **headers: str) -> Any:
    return client.open(path, method=method, headers=headers, environ_base={"REMOTE_ADDR": ip})


def test_429_with_problem_json_and_headers_at_each_step() -> None:
    c = make_client({"routes": [{"path": "/items/{id}", "name": "items", "limit": "3/hour"}]})
    seen = []
    for _ in range(3):
        r = get(c, "/items/1")
        assert r.status_code == 200
        assert r.headers["RateLimit-Policy"] == '"items";q=3;w=3600'
        seen.append(r.headers["RateLimit"])
    assert seen == ['"items";r=2;t=1200', '"items";r=1;t=2400', '"items";r=0;t=3600']
    r = get(c, "/items/1")
    assert r.status_code == 429
    assert r.headers["Content-Type"] == "application/problem+json"
    assert r.headers["Retry-After"] == "1200"
    assert r.headers["RateLimit"] == '"items";r=0;t=3600'
    body = json.loads(r.data)
    assert body["status"] == 429
    assert body["retry_after"] == 1200
    assert body["limit"] == "items"
    assert "X-RateLimit-Limit" not in r.headers
    # Another client is not affected; an unlimited route gets no headers.
    assert get(c, "/items/1", ip="198.51.100.2").status_code == 200
    assert "RateLimit" not in get(c, "/health").headers


def test_legacy_headers_on_request() -> None:
    c = make_client(
        {"rate_limit": {"legacy_headers": True}, "routes": [{"path": "/health", "limit": "2/hour"}]}
    )
    r = get(c, "/health")
    assert r.headers["X-RateLimit-Limit"] == "2"
    assert r.headers["X-RateLimit-Remaining"] == "1"
    assert int(r.headers["X-RateLimit-Reset"]) > 1_700_000_000
    get(c, "/health")
    r = get(c, "/health")
    assert r.status_code == 429
    assert r.headers["X-RateLimit-Remaining"] == "0"


def test_multi_quota_headers_and_semantics() -> None:
    c = make_client({"routes": [{"path": "/health", "name": "h", "limit": "2/hour; 3/day"}]})
    assert get(c, "/health").headers["RateLimit"] == '"h-1";r=1;t=1800, "h-2";r=2;t=28800'
    assert get(c, "/health").status_code == 200
    for _ in range(5):
        assert get(c, "/health").status_code == 429
    r = get(c, "/health")
    # The day quota saw two hits, not seven.
    assert r.headers["RateLimit"] == '"h-1";r=0;t=3600, "h-2";r=1;t=57600'
    assert r.headers["RateLimit-Policy"] == '"h-1";q=2;w=3600, "h-2";q=3;w=86400'


def test_shared_named_limit_across_routes_and_cost() -> None:
    c = make_client(
        {
            "limits": {"api": {"quota": "10/hour"}},
            "routes": [
                {"path": "/items/{id}", "limit": "api"},
                {"path": "/search", "limit": {"use": "api", "cost": 4}},
            ],
        }
    )
    assert get(c, "/items/1").headers["RateLimit"] == '"api";r=9;t=360'
    assert get(c, "/search").headers["RateLimit"] == '"api";r=5;t=1800'
    assert get(c, "/search").headers["RateLimit"] == '"api";r=1;t=3240'
    assert get(c, "/search").status_code == 429
    assert get(c, "/items/2").headers["RateLimit"] == '"api";r=0;t=3600'
    assert get(c, "/items/3").status_code == 429


def test_inline_limits_count_per_route() -> None:
    c = make_client({"defaults": {"limit": "1/hour"}, "routes": [{"path": "/search"}, {"path": "/health"}]})
    assert get(c, "/search").status_code == 200
    assert get(c, "/health").status_code == 200
    assert get(c, "/search").status_code == 429
    assert get(c, "/nowhere").status_code == 404  # unmatched requests have their own count
    assert get(c, "/nowhere").status_code == 429


def test_dry_run_counts_reports_and_never_refuses(caplog: pytest.LogCaptureFixture) -> None:
    c = make_client({"routes": [{"path": "/search", "limit": {"quota": "2/hour", "dry_run": True}}]})
    with caplog.at_level(logging.INFO, logger="ferrogate"):
        codes = [get(c, "/search").status_code for _ in range(5)]
    assert codes == [200] * 5
    would = [r for r in caplog.records if "would have refused" in r.getMessage()]
    assert len(would) == 3


def test_exemptions_route_method_cidr() -> None:
    c = make_client(
        {
            "defaults": {"limit": {"quota": "1/hour", "exempt_ips": ["10.0.0.0/8", "2001:db8::/32"]}},
            "routes": [{"path": "/health", "limit": False}, {"path": "/items/{id}"}],
        }
    )
    assert all(get(c, "/health").status_code == 200 for _ in range(5))
    for _ in range(5):
        assert get(c, "/items/1", ip="10.1.2.3").status_code == 200
        assert get(c, "/items/1", ip="2001:db8::5").status_code == 200
    assert get(c, "/items/1").status_code == 200
    # OPTIONS (CORS preflight) is exempt by default; GET is limited.
    assert get(c, "/items/1", method="OPTIONS").status_code == 200
    assert get(c, "/items/1").status_code == 429


def test_exempt_methods_can_be_changed() -> None:
    c = make_client(
        {"routes": [{"path": "/items/{id}", "limit": {"quota": "1/hour", "exempt_methods": ["GET"]}}]}
    )
    assert all(get(c, "/items/1").status_code == 200 for _ in range(3))
    assert get(c, "/items/1", method="POST").status_code == 200
    assert get(c, "/items/1", method="POST").status_code == 429


def test_api_key_header_and_compound_keys() -> None:
    c = make_client(
        {"routes": [{"path": "/search", "limit": {"quota": "1/hour", "key": ["header:X-Api-Key", "ip"]}}]}
    )
    assert get(c, "/search", **{"X-Api-Key": "a"}).status_code == 200
    assert get(c, "/search", **{"X-Api-Key": "a"}).status_code == 429
    assert get(c, "/search", **{"X-Api-Key": "b"}).status_code == 200
    assert get(c, "/search", ip="198.51.100.9", **{"X-Api-Key": "a"}).status_code == 200
    # No key at all: keyed by the address, so leaving the header out is no way around the limit.
    assert get(c, "/search").status_code == 200
    assert get(c, "/search").status_code == 429


def test_a_limit_not_keyed_on_the_address_still_exempts_and_falls_back_by_address() -> None:
    """The client address is worked out only when a limit needs it: for its exemptions, and for a
    request missing the key's header."""
    c = make_client(
        {
            "client_ip": {"trusted_proxies": ["10.0.0.0/8"]},
            "routes": [
                {
                    "path": "/search",
                    "limit": {"quota": "1/hour", "key": "header:X-Api-Key", "exempt_ips": ["192.0.2.0/24"]},
                }
            ],
        }
    )
    # Exempt through a trusted proxy's forwarding header, whatever the key says.
    for _ in range(3):
        r = get(c, "/search", ip="10.0.0.1", **{"X-Api-Key": "a", "X-Forwarded-For": "192.0.2.5"})
        assert r.status_code == 200
    assert get(c, "/search", ip="198.51.100.1", **{"X-Api-Key": "a"}).status_code == 200
    assert get(c, "/search", ip="198.51.100.2", **{"X-Api-Key": "a"}).status_code == 429, (
        "keyed on the header"
    )
    # Without the header: one bucket per address.
    assert get(c, "/search", ip="198.51.100.3").status_code == 200
    assert get(c, "/search", ip="198.51.100.4").status_code == 200
    assert get(c, "/search", ip="198.51.100.3").status_code == 429


def test_spoofed_forwarding_headers_from_an_untrusted_peer_change_nothing() -> None:
    c = make_client(
        {"client_ip": {"trusted_proxies": ["10.0.0.0/8"]}, "routes": [{"path": "/search", "limit": "1/hour"}]}
    )
    assert get(c, "/search", ip="203.0.113.7", **{"X-Forwarded-For": "1.1.1.1"}).status_code == 200
    for fake in ("2.2.2.2", "3.3.3.3, 10.0.0.1", "garbage"):
        r = get(c, "/search", ip="203.0.113.7", **{"X-Forwarded-For": fake, "Forwarded": f"for={fake}"})
        assert r.status_code == 429, fake


def test_headers_are_ignored_without_trusted_proxies() -> None:
    c = make_client({"routes": [{"path": "/search", "limit": "1/hour"}]})
    assert get(c, "/search", ip="10.0.0.1", **{"X-Forwarded-For": "1.1.1.1"}).status_code == 200
    assert get(c, "/search", ip="10.0.0.1", **{"X-Forwarded-For": "2.2.2.2"}).status_code == 429


def test_trusted_proxy_chain_right_most_untrusted_hop() -> None:
    c = make_client(
        {
            "client_ip": {"trusted_proxies": ["10.0.0.0/8", "192.168.0.0/16"]},
            "routes": [{"path": "/search", "limit": "1/hour"}],
        }
    )
    chain = "6.6.6.6, 198.51.100.7, 192.168.1.1"
    assert get(c, "/search", ip="10.0.0.2", **{"X-Forwarded-For": chain}).status_code == 200
    # The client forging a different left part is still 198.51.100.7.
    chain2 = "7.7.7.7, 198.51.100.7, 192.168.1.1"
    assert get(c, "/search", ip="10.0.0.3", **{"X-Forwarded-For": chain2}).status_code == 429
    assert get(c, "/search", ip="10.0.0.2", **{"X-Forwarded-For": "198.51.100.8"}).status_code == 200


def test_rfc7239_forwarded_and_hop_count() -> None:
    c = make_client(
        {
            "client_ip": {"trusted_hops": 1, "header": "forwarded"},
            "routes": [{"path": "/search", "limit": "1/hour"}],
        }
    )
    fwd = 'for=6.6.6.6, for="[2001:db8:cafe::17]:4711"'
    assert get(c, "/search", ip="10.0.0.2", Forwarded=fwd).status_code == 200
    # Same /64, other host: same key.
    fwd2 = 'for=5.5.5.5, for="[2001:db8:cafe::99]"'
    assert get(c, "/search", ip="10.0.0.2", Forwarded=fwd2).status_code == 429
    fwd3 = 'for="[2001:db8:cafd::1]"'
    assert get(c, "/search", ip="10.0.0.2", Forwarded=fwd3).status_code == 200


@pytest.mark.parametrize(
    "client_ip",
    [{"trusted_hops": 1}, {"trusted_proxies": ["10.0.0.0/8"], "trust_unix_socket": True}],
)
def test_a_proxy_on_a_unix_socket_still_tells_clients_apart(client_ip: dict[str, Any]) -> None:
    # gunicorn behind nginx on a unix socket: REMOTE_ADDR is empty. Every client used to share one
    # bucket there.
    c = make_client({"client_ip": client_ip, "routes": [{"path": "/search", "limit": "1/hour"}]})
    xff = "X-Forwarded-For"
    assert get(c, "/search", ip="", **{xff: "6.6.6.6, 198.51.100.7"}).status_code == 200
    assert get(c, "/search", ip="", **{xff: "198.51.100.8"}).status_code == 200
    assert get(c, "/search", ip="", **{xff: "198.51.100.7"}).status_code == 429


def test_unix_socket_peers_are_not_trusted_unless_configured() -> None:
    c = make_client(
        {"client_ip": {"trusted_proxies": ["10.0.0.0/8"]}, "routes": [{"path": "/search", "limit": "1/hour"}]}
    )
    assert get(c, "/search", ip="", **{"X-Forwarded-For": "198.51.100.7"}).status_code == 200
    # The header was not read: the second client shares the unknown peer's bucket.
    assert get(c, "/search", ip="", **{"X-Forwarded-For": "198.51.100.8"}).status_code == 429
    with pytest.raises(ConfigError, match="trust_unix_socket"):
        Gate({"client_ip": {"trusted_hops": 1, "trust_unix_socket": True}})


def test_ipv6_keyed_by_64_by_default_and_configurable() -> None:
    c = make_client({"routes": [{"path": "/search", "limit": "1/hour"}]})
    assert get(c, "/search", ip="2001:db8:1:2::1").status_code == 200
    assert get(c, "/search", ip="2001:db8:1:2:ffff::2").status_code == 429
    assert get(c, "/search", ip="2001:db8:1:3::1").status_code == 200
    c = make_client({"client_ip": {"ipv6_prefix": 128}, "routes": [{"path": "/search", "limit": "1/hour"}]})
    assert get(c, "/search", ip="2001:db8:1:2::1").status_code == 200
    assert get(c, "/search", ip="2001:db8:1:2::2").status_code == 200


def test_config_errors_name_key_and_value() -> None:
    with pytest.raises(ConfigError) as ei:
        Gate(
            {
                "limits": {"api": {"quota": "10/fortnight"}},
                "client_ip": {"trusted_proxies": ["10.0.0.0/33"]},
                "routes": [
                    {"path": "/a", "limit": "nope"},
                    {"path": "/b", "limit": {"quota": "1/minute", "cost": 2}},
                    {"path": "/c", "limit": "5/minuets"},
                ],
            }
        )
    keys = [k for k, _ in ei.value.issues]
    assert keys == [
        "client_ip.trusted_proxies[0]",
        "limits.api.quota",
        "routes[0].limit",
        "routes[1].limit.cost",
        "routes[2].limit",
    ]
    text = str(ei.value)
    assert '"10/fortnight"' in text
    assert '"5/minuets"' in text
    assert "known: none" in text


def test_storage_values() -> None:
    # A Redis URL is accepted without connecting (an unreachable Redis is an outage, not a
    # start-up error); anything else is named.
    assert Gate({"rate_limit": {"storage": "redis://localhost:1/0"}}).redis_stats() is not None
    assert Gate({"rate_limit": {"storage": "memory"}}).redis_stats() is None
    with pytest.raises(ConfigError, match=r"rate_limit\.storage"):
        Gate({"rate_limit": {"storage": "memcached"}})


def test_explain_shows_the_limit() -> None:
    g = Gate({"limits": {"api": "5/minute"}, "routes": [{"path": "/a", "limit": "api"}, {"path": "/b"}]})
    assert g.explain("GET", "/a")["policy"]["limit"] == "api (shared)"
    assert g.explain("GET", "/b")["policy"]["limit"] == "off"


@pytest.mark.parametrize(
    ("argv", "env", "modules", "expected"),
    [
        (["gunicorn", "-w", "4", "app:app"], {}, {}, ("gunicorn", 4)),
        (["/usr/bin/gunicorn", "--workers=3", "app:app"], {}, {}, ("gunicorn", 3)),
        (["gunicorn", "-w2", "app:app"], {}, {}, ("gunicorn", 2)),
        (["gunicorn", "app:app"], {"GUNICORN_CMD_ARGS": "--workers 5"}, {}, ("gunicorn", 5)),
        (["gunicorn", "app:app"], {"WEB_CONCURRENCY": "6"}, {}, ("gunicorn", 6)),
        (["gunicorn", "app:app"], {}, {}, ("gunicorn", 1)),
        (["python", "app.py"], {}, {"gunicorn": object()}, ("gunicorn", 1)),
        (["uwsgi"], {}, {"uwsgi": type("U", (), {"numproc": 8})()}, ("uWSGI", 8)),
        (["python", "app.py"], {"FERROGATE_WORKERS": "3"}, {}, ("FERROGATE_WORKERS", 3)),
        (["python", "app.py"], {"WEB_CONCURRENCY": "6"}, {}, None),
        (["flask", "run"], {}, {}, None),
    ],
)
def test_worker_process_detection(
    argv: list[str], env: dict[str, str], modules: dict[str, object], expected: tuple[str, int] | None
) -> None:
    assert detect_worker_processes(env, argv, modules) == expected


def test_multiprocess_warning_names_the_redis_setting(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ferrogate"), pytest.warns(InMemoryRateLimitWarning) as w:
        msg = warn_if_multiprocess(2, environ={}, argv=["gunicorn", "-w", "4"], modules={})
    assert msg is not None
    assert 'storage = "redis://host:6379/0"' in str(w[0].message)
    assert "4 worker processes" in msg
    assert "4x" in msg
    assert any("redis://" in r.getMessage() for r in caplog.records)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warn_if_multiprocess(0, environ={}, argv=["gunicorn", "-w", "4"], modules={}) is None
        assert warn_if_multiprocess(2, environ={}, argv=["gunicorn", "-w", "1"], modules={}) is None


def test_gate_construction_warns_under_gunicorn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.argv", ["gunicorn", "--workers", "4", "app:app"])
    with pytest.warns(InMemoryRateLimitWarning):
        Gate({"routes": [{"path": "/a", "limit": "1/second"}]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Gate({"routes": [{"path": "/a"}]})  # no limits: nothing to say


def test_the_documented_config_builds() -> None:
    import pathlib
    import re
    import tomllib

    page = (pathlib.Path(__file__).parent.parent / "docs" / "rate-limiting.md").read_text()
    doc = page[page.index("## Gate config") :]
    block = re.search(r"```toml\n(.*?)```", doc, re.S)
    assert block is not None
    gate = Gate(tomllib.loads(block.group(1)))
    assert gate.memory_rate_limiters == 3  # api and login (shared) and the /reports inline one
    assert gate.explain("GET", "/search")["policy"]["limit"] == "api (shared)"
    assert gate.explain("GET", "/health")["policy"]["limit"] == "off"


def test_a_route_name_of_any_text_cannot_break_the_ratelimit_headers() -> None:
    """A route's own limit is named after the route, and a route name comes from the app (a Django
    URL name may be any text): the header carries it as a structured-field string, printable ASCII
    only, so a line break can neither fail the response nor inject a header."""
    gate = Gate({"routes": [{"path": "/", "name": "caf\u00e9\r\nX-Evil: 1", "limit": "5/minute"}]})
    d = gate.check({"REQUEST_METHOD": "GET", "PATH_INFO": "/", "REMOTE_ADDR": "192.0.2.1"})
    headers = dict(d.headers)
    assert headers["ratelimit-policy"] == '"caf___X-Evil: 1";q=5;w=60'
    assert all(" " <= ch <= "~" for value in headers.values() for ch in value)
