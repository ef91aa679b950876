"""Flask rules are read through werkzeug's public API (``Rule.rule``, ``Rule.get_converter``,
``parse_converter_args``, ``Map.iter_rules``): what that reads is what werkzeug built for itself.

Checked on the installed werkzeug (the newest, 3.1) and, when ``FERROGATE_FLASK_LOWEST`` names a
directory with the lowest supported Flask (``pip install --target DIR 'flask==2.3.*'
'werkzeug==2.3.*'``), on that one too; CI runs the first only.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Compared with werkzeug's private fields, in a test only: they are what werkzeug matches with.
PARITY = textwrap.dedent(
    """
    import importlib.metadata
    from flask import Flask
    from ferrogate.flask import rule_converters, rule_parts, werkzeug_to_matchit

    app = Flask("parity")
    rules = [
        "/", "/a/", "/a/<int(min=1, fixed_digits=3):x>/b<y>", "/files/<path:rest>",
        "/u/<uuid:u>/<float(signed=True):f>", "/s/<string(length=3):s>", "/c/<any(a, b):k>/",
        "/x/<p>/<q>.json", "/odd/{braces}/<v>", "/p/<path:rest>/tail",
    ]
    for i, rule in enumerate(rules):
        app.add_url_rule(rule, f"e{i}", lambda **kw: "")
    for rule in app.url_map.iter_rules():
        trace = list(rule._trace)
        trace = trace[1:] if trace and trace[0] == (False, "|") else trace
        assert rule_parts(rule) == trace, (rule.rule, rule_parts(rule), trace)
        public, private = rule_converters(rule), rule._converters
        assert public.keys() == private.keys(), rule.rule
        for name in public:
            assert type(public[name]) is type(private[name]), (rule.rule, name)
            assert vars(public[name]) == vars(private[name]), (rule.rule, name)
        werkzeug_to_matchit(rule)
    print("ok", importlib.metadata.version("werkzeug"))
    """
)


def _run(pythonpath: list[str]) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(pythonpath)}
    out = subprocess.run([sys.executable, "-c", PARITY], env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_public_reading_matches_werkzeugs_own_on_this_werkzeug() -> None:
    assert _run([str(ROOT / "python")]).startswith("ok 3.")


LOWEST = os.environ.get("FERROGATE_FLASK_LOWEST")


@pytest.mark.skipif(not LOWEST, reason="FERROGATE_FLASK_LOWEST names no directory with Flask 2.3")
def test_public_reading_matches_werkzeugs_own_on_the_lowest_flask() -> None:
    assert _run([str(LOWEST), str(ROOT / "python")]).startswith("ok 2.3")
