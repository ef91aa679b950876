"""A griffe extension for the API reference (mkdocs.yml): reST roles in docstrings become links.

The docstrings are written for ``help()`` and IDEs, with Sphinx-style roles
(``:class:`~ferrogate.ConfigError```, ``:meth:`Gate.revoke_token```); mkdocstrings renders
Markdown, where they would show as raw text. Each becomes an optional autorefs cross-reference:
a link to the rendered object where there is one, plain code otherwise.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:class|meth|func|exc|data|attr|mod|obj):`(~?)([\w.]+)(?:\(\))?`")


def _link(m: re.Match[str]) -> str:
    tilde, target = m.group(1), m.group(2)
    shown = target.rsplit(".", 1)[-1] if tilde else target
    if target.startswith("ferrogate."):
        # Optional: a target the reference does not render stays code, without a warning.
        return f'<autoref identifier="{target}" optional><code>{shown}</code></autoref>'
    return f"`{shown}`"


class SphinxRoles(griffe.Extension):
    def on_object(self, *, obj: griffe.Object, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _ROLE.sub(_link, obj.docstring.value)
