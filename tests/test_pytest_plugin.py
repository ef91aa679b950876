"""The pytest plugin as users meet it: the example test files of docs/testing.md, run by pytest in a
subprocess with the plugin loaded from the installed package's ``pytest11`` entry point."""

from __future__ import annotations

import re
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "testing.md"


def example(name: str) -> str:
    """The ```py block of docs/testing.md that starts with ``# <name>``."""
    for block in re.findall(r"```py\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.S):
        if block.startswith(f"# {name}\n"):
            return str(block)
    raise AssertionError(f"docs/testing.md has no example {name}")


def test_the_plugin_is_registered_as_a_pytest11_entry_point() -> None:
    found = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert found.get("ferrogate") == "ferrogate.pytest_plugin"


def test_the_flask_example(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_notes=example("test_notes.py"))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:django")
    result.assert_outcomes(passed=4)


def test_the_django_example(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_api=example("test_api.py"))
    pytester.makeini(
        f"""
        [pytest]
        DJANGO_SETTINGS_MODULE = django_project.settings
        pythonpath = {ROOT / "tests"}
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


def test_without_an_app_the_fixture_says_what_it_needs(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_bare="""
        def test_token(ferrogate_token):
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:django")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*ferrogate_token needs the app*"])
    assert sys.executable
