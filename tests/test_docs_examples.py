"""Every code block in README.md and docs/ is checked, so the documentation cannot drift from the code.

- ```` ```python ```` blocks are whole programs: each runs in a fresh interpreter (no settings, no
  state shared with pytest-django or another block) and must exit 0. They must use ferrogate.
- ```` ```py ```` blocks are fragments (a ``settings.py`` excerpt, a snippet that needs a Redis or
  an identity provider): they must parse, and their ``import`` lines must run, so every name they
  import from ferrogate exists.
- ```` ```toml ```` blocks are gate configs: parsed with tomllib and built into a ``ferrogate.Gate``.
  Values that would reach outside the machine are replaced by local stand-ins first (a JWKS URL by
  a local key of the configured algorithm, a Redis URL by the test's own redis-server, TLS file
  paths dropped), so every other key is validated as written.
- Any other language (``text``, ``console``, ``http``, ...) is shown, not checked.

CONTRIBUTING.md says how to write a block that passes.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from jwt_keys import pair_for

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

_FENCE = re.compile(r"^(?P<indent> {0,8})(?P<fence>`{3,}|~{3,})(?P<info>[^`\n]*)$")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    lang: str
    code: str

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks_in(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown file, dedented, with the line their fence opens on."""
    out: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence = len(m["indent"]), m["fence"]
        info = m["info"].strip()
        lang = info.split()[0].lstrip("{.").rstrip("}") if info else ""
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            line = lines[i]
            body.append(line[indent:] if line[:indent].strip() == "" else line.lstrip())
            i += 1
        out.append(Block(path, start + 1, lang.lower(), "\n".join(body) + "\n"))
        i += 1
    return out


ALL = [b for p in SOURCES for b in blocks_in(p)]
PYTHON = [b for b in ALL if b.lang == "python"]
FRAGMENTS = [b for b in ALL if b.lang == "py"]
TOML = [b for b in ALL if b.lang == "toml"]


def _ids(blocks: list[Block]) -> list[str]:
    return [b.id for b in blocks]


def test_the_docs_have_examples() -> None:
    # A broken fence regex would otherwise pass every test below by collecting nothing.
    assert len(PYTHON) >= 20, _ids(PYTHON)
    assert len(TOML) >= 6, _ids(TOML)
    assert all(b.lang != "python3" for b in ALL), "write ```python"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # pytest-django's settings module is the tests' own; a docs example configures its own.
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.pop("FERROGATE_WORKERS", None)
    env["PYTHONWARNINGS"] = "error::DeprecationWarning:ferrogate"
    return env


@pytest.mark.parametrize("block", PYTHON, ids=_ids(PYTHON))
def test_python_example_runs(block: Block, tmp_path: Path) -> None:
    assert "ferrogate" in block.code, f"{block.id}: a ```python example must use ferrogate"
    script = tmp_path / f"{block.path.stem}_{block.line}.py"
    script.write_text(block.code, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, (
        f"{block.id} failed (exit {proc.returncode})\n--- code ---\n{block.code}\n"
        f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
    )


@pytest.mark.parametrize("block", FRAGMENTS, ids=_ids(FRAGMENTS))
def test_fragment_parses_and_imports(block: Block) -> None:
    tree = ast.parse(block.code, filename=block.id)
    imports = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    code = compile(ast.Module(body=imports, type_ignores=[]), block.id, "exec")
    exec(code, {"__name__": "docs_fragment"})


def _stand_ins(config: dict[str, Any], redis_url: str) -> dict[str, Any]:
    """The config with what would leave this machine replaced; everything else as written."""
    jwt = config.get("jwt")
    if isinstance(jwt, dict) and ("jwks_url" in jwt or jwt.get("discovery")):
        jwt.pop("jwks_url", None)
        jwt.pop("discovery", None)
        algs = [a for a in jwt.get("algorithms", []) if isinstance(a, str)]
        if algs and all(a.startswith("HS") for a in algs):
            jwt["key"] = "a-local-stand-in-secret-of-64-bytes-for-the-docs-examples-0123456"
        else:
            jwt["keys"] = sorted({pair_for(a).public_pem for a in algs if not a.startswith("HS")})
    redis = config.get("redis")
    if isinstance(redis, dict):
        redis["url"] = redis_url
        for k in ("tls_ca_file", "tls_cert_file", "tls_key_file"):
            redis.pop(k, None)
    rate_limit = config.get("rate_limit")
    if isinstance(rate_limit, dict) and "://" in str(rate_limit.get("storage", "")):
        rate_limit["storage"] = redis_url
    return config


def _needs_redis(config: dict[str, Any]) -> bool:
    return "redis" in config or "://" in str(config.get("rate_limit", {}).get("storage", ""))


@pytest.mark.parametrize("block", TOML, ids=_ids(TOML))
def test_toml_example_is_a_valid_gate_config(block: Block, request: pytest.FixtureRequest) -> None:
    import warnings

    import ferrogate

    config = tomllib.loads(block.code)
    redis_url = "redis://127.0.0.1:1/0"
    if _needs_redis(config):
        redis_url = request.getfixturevalue("redis_server").url
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ferrogate.InMemoryRateLimitWarning)
        gate = ferrogate.Gate(_stand_ins(config, redis_url))
    assert gate.routes() is not None


@pytest.mark.parametrize("name", ["README.md", "CONTRIBUTING.md", "CHANGELOG.md"])
def test_top_level_links_resolve(name: str) -> None:
    # docs/ is checked by `make docs` (strict, links and anchors); these files are not in the site.
    text = (ROOT / name).read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    missing = [t for t in targets if "://" not in t and not (ROOT / t).exists()]
    assert not missing, f"{name}: links to missing files {missing}"
