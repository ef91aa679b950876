"""docs/configuration.md lists every key the config parser accepts, in the right section.

The keys are not copied from the source: each section is given an unknown key, and the built
extension's ConfigError says which keys it expects there. A key added to a parser without a line
in the reference fails here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import ferrogate
import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
SECRET = "x" * 64
JWT = {"algorithms": ["HS256"], "key": SECRET}
REDIS = {"url": "redis://127.0.0.1:1/0"}

# (section heading in configuration.md, a config with an unknown key `bogus` in that section)
PROBES: list[tuple[str, dict[str, Any]]] = [
    ("Top level", {"bogus": 1}),
    ("Policy keys", {"defaults": {"bogus": 1}}),
    ("Routes", {"routes": [{"path": "/x", "bogus": 1}]}),
    ("paths", {"paths": {"bogus": 1}}),
    ("jwt", {"jwt": {**JWT, "bogus": 1}}),
    ("jwt.revocation", {"jwt": {**JWT, "revocation": {"store": "redis", "bogus": 1}}, "redis": REDIS}),
    ("auth", {"jwt": JWT, "defaults": {"auth": {"bogus": 1}}}),
    ("limits", {"limits": {"a": {"quota": "1/second", "bogus": 1}}}),
    ("limit", {"limits": {"a": {"quota": "1/second"}}, "defaults": {"limit": {"use": "a", "bogus": 1}}}),
    ("rate_limit", {"rate_limit": {"bogus": 1}}),
    ("client_ip", {"client_ip": {"bogus": 1}}),
    ("cache", {"cache": {"bogus": 1}}),
    ("Route cache", {"defaults": {"cache": {"bogus": 1}}}),
    ("redis", {"redis": {**REDIS, "bogus": 1}}),
]

_EXPECTED = re.compile(r"unknown key \(expected one of: ([^)]*)\)")


def accepted_keys(config: dict[str, Any]) -> list[str]:
    with pytest.raises(ferrogate.ConfigError) as caught:
        ferrogate.Gate(config)
    for path, message in caught.value.issues:
        m = _EXPECTED.search(message)
        if path.endswith("bogus") and m:
            return [k.strip() for k in m.group(1).split(",")]
    raise AssertionError(f"no unknown-key issue in {caught.value.issues}")


def section(text: str, heading: str) -> str:
    """The text under `## heading` (or `###`), up to the next heading of any level."""
    m = re.search(rf"^#{{2,3}} {re.escape(heading)}\n(.*?)(?=^#{{1,3}} |\Z)", text, re.S | re.M)
    assert m, f"configuration.md has no section {heading!r}"
    return m.group(1)


@pytest.mark.parametrize(("heading", "config"), PROBES, ids=[h for h, _ in PROBES])
def test_every_key_is_in_the_reference(heading: str, config: dict[str, Any]) -> None:
    text = section((DOCS / "configuration.md").read_text(encoding="utf-8"), heading)
    keys = accepted_keys(config)
    if heading in ("Routes", "limit"):
        # Their policy / limit-option keys are listed once, in their own sections.
        keys = [k for k in keys if k not in ("access", "exempt", "limit", "auth", "cache")]
    missing = [k for k in keys if f"`{k}`" not in text and f"`{k} " not in text and f" {k}," not in text]
    assert not missing, f"docs/configuration.md, section {heading!r}, does not list: {missing}"


def test_every_flask_config_key_is_documented() -> None:
    pytest.importorskip("flask")
    from ferrogate import flask as ext

    text = (DOCS / "flask.md").read_text(encoding="utf-8")
    names = [*ext.CONFIG_KEYS, *(f"FERROGATE_{s.upper()}" for s in ext.SECTION_KEYS)]
    missing = [k for k in names if f"`{k}`" not in text]
    assert not missing, f"docs/flask.md does not list: {missing}"
