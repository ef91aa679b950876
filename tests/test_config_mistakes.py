"""Config mistakes a newcomer makes are refused at start-up, never read as something else."""

from __future__ import annotations

from typing import Any

import pytest
from ferrogate import ConfigError, Gate, RateLimiter
from ferrogate.flask import FerroGate
from flask import Flask

SECRET = "config-mistakes-secret-long-enough-for-hs256"


@pytest.mark.parametrize("quota", ["10/ms", "10/millisecond", "5/hs", "5/ds", "10/msec"])
def test_quota_units_that_are_not_units_are_refused(quota: str) -> None:
    with pytest.raises(ConfigError, match="unknown unit"):
        RateLimiter(quota)
    with pytest.raises(ConfigError):
        Gate({"routes": [{"path": "/a", "limit": quota}]})


@pytest.mark.parametrize(("quota", "seconds"), [("10/s", 1), ("10/m", 60), ("10/mins", 60), ("10/hrs", 3600)])
def test_real_units_and_their_plurals_still_read(quota: str, seconds: int) -> None:
    assert RateLimiter(quota).hit("k").reset_after <= seconds


@pytest.mark.parametrize("key", ["sub", "claim:tenant", ["sub", "claim:org"]])
def test_a_token_key_on_a_route_without_auth_is_a_config_error(key: Any) -> None:
    jwt = {"algorithms": ["HS256"], "key": SECRET}
    with pytest.raises(ConfigError) as e:
        Gate({"jwt": jwt, "routes": [{"path": "/a", "limit": {"quota": "1/second", "key": key}}]})
    assert e.value.issues[0][0] == "routes[0].limit"
    assert "no auth" in e.value.issues[0][1]
    # With auth (required or optional), or with a part the request supplies, it builds.
    Gate({"jwt": jwt, "routes": [{"path": "/a", "auth": "optional", "limit": {"quota": "1/s", "key": key}}]})
    both = [key, "ip"] if isinstance(key, str) else [*key, "ip"]
    Gate({"jwt": jwt, "routes": [{"path": "/a", "limit": {"quota": "1/s", "key": both}}]})
    # A named limit and the defaults are checked the same way.
    with pytest.raises(ConfigError, match=r"defaults\.limit"):
        Gate({"jwt": jwt, "limits": {"u": {"quota": "1/s", "key": key}}, "defaults": {"limit": "u"}})


def test_flask_decorator_order_does_not_matter_but_a_missing_auth_does() -> None:
    app = Flask(__name__)
    app.config["FERROGATE_JWT"] = {"algorithms": ["HS256"], "key": SECRET}
    gate = FerroGate(app)

    @app.get("/mine")
    @gate.auth()
    @gate.limit("10/minute", key="sub")
    def mine() -> Any:
        return {}

    @app.get("/theirs")
    @gate.limit("10/minute", key="sub")
    @gate.auth()
    def theirs() -> Any:
        return {}

    assert app.test_client().get("/mine").status_code == 401
    assert app.test_client().get("/theirs").status_code == 401


@pytest.mark.parametrize("limits_on", [True, False], ids=["limits-on", "limits-switched-off"])
def test_flask_limit_by_sub_on_a_view_without_auth_fails_at_start_up(limits_on: bool) -> None:
    """Also with FERROGATE_RATELIMIT_ENABLED = False: a test run must refuse what production would."""
    app = Flask(__name__)
    app.config["FERROGATE_JWT"] = {"algorithms": ["HS256"], "key": SECRET}
    app.config["FERROGATE_RATELIMIT_ENABLED"] = limits_on
    gate = FerroGate()

    @app.get("/oops")
    @gate.limit("10/minute", key="sub")
    def oops() -> Any:
        return {}

    with pytest.raises(ConfigError, match="no auth"):
        gate.init_app(app)
