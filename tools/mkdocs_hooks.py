"""MkDocs hooks (mkdocs.yml `hooks:`): nav entries whose page does not exist yet are left out.

The migration guides are written alongside the features they describe; until a page exists the
strict build leaves its nav entry out instead of failing on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _prune(items: list[Any], docs: Path) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if isinstance(item, dict):
            (title, target), *_ = item.items()
            if isinstance(target, list):
                kept = _prune(target, docs)
                if kept:
                    out.append({title: kept})
            elif "://" in str(target) or (docs / str(target)).exists():
                out.append(item)
        elif "://" in str(item) or (docs / str(item)).exists():
            out.append(item)
    return out


def on_config(config: Any, **kwargs: Any) -> Any:
    if config.nav:
        config.nav = _prune(config.nav, Path(config.docs_dir))
    return config
