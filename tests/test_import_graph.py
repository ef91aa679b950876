"""The layering of src/ and the package's imports stay true (tools/import_graph.py), and the check
can fail: each rule is shown a graph that breaks it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "tools" / "import_graph.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["import_graph"] = module
    spec.loader.exec_module(module)
    return module


graph = _tool()


def _crate(tmp_path: Path, files: dict[str, str]) -> Path:
    src = tmp_path / "src"
    for name, text in files.items():
        path = src / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return src


def test_this_repository_keeps_its_layers() -> None:
    assert graph.rust_problems(ROOT / "src") == []
    assert graph.python_problems(ROOT / "python" / "ferrogate") == []


def test_a_feature_importing_another_is_refused(tmp_path: Path) -> None:
    src = _crate(
        tmp_path,
        {
            "lib.rs": "pub mod auth;\npub mod cache;\n",
            "auth/mod.rs": "pub mod verifier;\n",
            "auth/verifier.rs": "use crate::cache::bounded::Bounded;\n",
            "cache/mod.rs": "pub mod bounded;\n",
            "cache/bounded.rs": "pub struct Bounded;\n",
        },
    )
    assert graph.rust_problems(src) == [
        "auth::verifier (auth) imports cache::bounded (cache): imports go down the layers, and not across features"
    ]


def test_an_upward_import_through_a_reexport_is_refused(tmp_path: Path) -> None:
    # `crate::gate::Request` names gate/mod.rs, which re-exports it from request.rs: fine. A
    # stage reaching up for the gate itself is not.
    src = _crate(
        tmp_path,
        {
            "lib.rs": "pub mod gate;\npub mod request;\npub mod ratelimit;\n",
            "request.rs": "pub struct Request;\n",
            "gate/mod.rs": "pub use crate::request::Request;\npub struct Gate;\n",
            "ratelimit/mod.rs": "use crate::gate::{Gate, Request};\n",
        },
    )
    assert graph.rust_problems(src) == [
        "ratelimit (ratelimit) imports gate (composition): imports go down the layers, and not across features"
    ]


def test_a_cycle_inside_a_feature_is_refused_and_tests_do_not_count(tmp_path: Path) -> None:
    src = _crate(
        tmp_path,
        {
            "lib.rs": "pub mod cache;\n",
            "cache/mod.rs": "pub mod stage;\npub mod ticket;\n",
            "cache/stage.rs": (
                "use super::ticket::Ticket;\n"
                '/* use super::nothing; */ const S: &str = "use crate::gate;";\n'
                "#[cfg(test)]\nmod tests {\n    use crate::gate::Gate;\n    fn f() { let _ = '{'; }\n}\n"
            ),
            "cache/ticket.rs": "pub struct Ticket(std::sync::Arc<super::stage::Stage>);\n",
        },
    )
    assert graph.rust_problems(src) == ["import cycle in src/: cache::stage -> cache::ticket -> cache::stage"]


def test_a_module_outside_the_layers_is_named(tmp_path: Path) -> None:
    src = _crate(tmp_path, {"lib.rs": "pub mod misc;\n", "misc.rs": "use crate::lib;\n"})
    assert graph.rust_problems(src) == ["src/misc: no layer (add it to RUST_LAYERS)"]


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {"a.py": "from ferrogate import b\n", "b.py": "def f():\n    from ferrogate.a import x\n"},
            ["import cycle in the package: ferrogate.a -> ferrogate.b -> ferrogate.a"],
        ),
        (
            # A package's __init__ runs when a submodule of it is imported.
            {
                "d/__init__.py": "from ferrogate import e\n",
                "d/s.py": "",
                "e.py": "from ferrogate.d.s import y\n",
            },
            ["import cycle in the package: ferrogate.d -> ferrogate.e -> ferrogate.d"],
        ),
        (
            {"gate.py": "from ferrogate.flask import FerroGate\n", "flask.py": ""},
            ["ferrogate.gate (rank 1) imports ferrogate.flask (rank 3): imports go down"],
        ),
    ],
)
def test_package_cycles_and_upward_imports_are_refused(
    tmp_path: Path, files: dict[str, str], expected: list[str]
) -> None:
    pkg = tmp_path / "ferrogate"
    for name, text in {"__init__.py": "", **files}.items():
        path = pkg / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert graph.python_problems(pkg) == expected
