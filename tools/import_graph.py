"""The import graphs of the Rust core (src/) and the Python package (python/ferrogate/), checked.

Fails (exit 1) on an import cycle in either, and on a Rust import that goes up the layers or across
features. The layers, bottom to top (docs/architecture.md says why):

1. vocabulary: request facts, responses, header helpers, problem bodies, the clock, the config
   issue collector, the blocking policy, generic bounded containers;
2. `shared`: the Redis client the features that share state use;
3. features: router, auth, ratelimit, cache. None imports another;
4. composition: policy, dispatch, decision, config, gate;
5. the binding layer, `python`.

A module imports from its own layer (vocabulary from vocabulary, composition from composition) or
from below; a feature imports from itself or from below. Tests are left out: a `#[cfg(test)]` module
may build a whole gate to drive one stage.

Usage: python tools/import_graph.py [ROOT]   (ROOT: the repository, default: this one)
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

# Top-level module of src/ -> (rank, group). Same rank and same group: allowed both ways (if no
# cycle); same rank, another group: refused (features do not import each other).
RUST_LAYERS: dict[str, tuple[int, str]] = {
    "http": (1, "vocabulary"),
    "request": (1, "vocabulary"),
    "response": (1, "vocabulary"),
    "json": (1, "vocabulary"),
    "problem": (1, "vocabulary"),
    "clock": (1, "vocabulary"),
    "issues": (1, "vocabulary"),
    "blocking": (1, "vocabulary"),
    "bounded": (1, "vocabulary"),
    "clock_map": (1, "vocabulary"),
    "sharded": (1, "vocabulary"),
    "shared": (2, "shared"),
    "router": (3, "router"),
    "auth": (3, "auth"),
    "ratelimit": (3, "ratelimit"),
    "cache": (3, "cache"),
    "policy": (4, "composition"),
    "dispatch": (4, "composition"),
    "decision": (4, "composition"),
    "config": (4, "composition"),
    "gate": (4, "composition"),
    "python": (5, "python"),
}

# Modules of the Python package by rank: a module imports only from lower ranks or its own
# (without cycles). Unlisted modules are rank 3 (the framework adapters and the tools on them).
PY_RANKS: dict[str, int] = {
    "ferrogate._native": 0,
    "ferrogate.exceptions": 0,
    "ferrogate._http": 0,
    "ferrogate.gate": 1,
    "ferrogate.memo": 1,
    "ferrogate.ratelimit": 1,
    "ferrogate.tokens": 1,
    "ferrogate.wsgi": 1,
    "ferrogate._adapter": 2,
    "ferrogate": 4,
    "ferrogate.__main__": 5,
    "ferrogate.cli": 5,
    "ferrogate.demo": 5,
}
PY_DEFAULT_RANK = 3

Graph = Mapping[str, set[str]]


# --- Rust -------------------------------------------------------------------------------------

_STRIP = re.compile(
    r"""
      //[^\n]*                              # line comment (and doc comment)
    | /\*.*?\*/                             # block comment (not nested; none in src/ are)
    | b?r(?P<h>\#*)".*?"(?P=h)              # raw string
    | b?"(?:\\.|[^"\\])*"                   # string
    | b?'(?:\\.|[^'\\\n])'                  # char literal (a lifetime has no closing quote)
    """,
    re.VERBOSE | re.DOTALL,
)


def _strip(src: str) -> str:
    """Comments, strings and char literals blanked, line count kept."""
    return _STRIP.sub(lambda m: "\n" * m.group(0).count("\n") + " ", src)


def _skip_block(text: str, start: int) -> int:
    """The index after the brace block that opens at or after `start`, or after a `;` first."""
    depth = 0
    i = start
    while i < len(text):
        c = text[i]
        if c == ";" and depth == 0:
            return i + 1
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return i


_CFG_TEST = re.compile(r"#\[cfg\(test\)\]\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)")


def _without_tests(text: str) -> tuple[str, list[str]]:
    """The code without `#[cfg(test)]` modules, and the names of those declared as files."""
    out = []
    test_files = []
    pos = 0
    for m in _CFG_TEST.finditer(text):
        if m.start() < pos:
            continue
        out.append(text[pos : m.start()])
        end = _skip_block(text, m.end())
        if text[m.end() : end].strip() == ";":
            test_files.append(m.group(1))
        pos = end
    out.append(text[pos:])
    return "".join(out), test_files


def _use_items(tree: str) -> Iterable[tuple[str, str]]:
    """`a::{b, c::{d as e, self}}` -> (a::b, b), (a::c::d, e), (a::c, c); a glob names its module."""
    tree = re.sub(r"\s+as\s+", " as ", tree.strip())
    tree = re.sub(r"\s*(::|\{|\}|,)\s*", r"\1", tree)
    brace = tree.find("{")
    if brace < 0:
        path, _, alias = tree.partition(" as ")
        path = path.removesuffix("::*").removesuffix("::self")
        yield path, alias or path.rsplit("::", 1)[-1]
        return
    prefix = tree[:brace].rstrip(":")
    inner = tree[brace + 1 : tree.rfind("}")]
    parts, start, depth = [], 0, 0
    for i, c in enumerate(inner):
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(inner[start:i])
            start = i + 1
    parts.append(inner[start:])
    for p in filter(None, parts):
        for sub, alias in _use_items(p):
            if sub in ("self", "*", ""):
                yield prefix, alias if alias not in ("self", "*", "") else prefix.rsplit("::", 1)[-1]
            else:
                yield (f"{prefix}::{sub}" if prefix else sub), alias


class RustCrate:
    """The modules of a crate (from its files) and the module each path names."""

    def __init__(self, src: Path) -> None:
        self.src = src
        self.files: dict[tuple[str, ...], Path] = {}
        self.test_files: set[tuple[str, ...]] = set()
        for f in sorted(src.rglob("*.rs")):
            parts = f.relative_to(src).with_suffix("").parts
            if parts in (("lib",), ("main",)):
                parts = ()
            elif parts[-1] == "mod":
                parts = parts[:-1]
            self.files[parts] = f
        self.code: dict[tuple[str, ...], str] = {}
        for mod, f in self.files.items():
            text, tests = _without_tests(_strip(f.read_text()))
            self.code[mod] = text
            for t in tests:
                self.test_files.add((*mod[:-1], t) if f.stem not in ("mod", "lib") else (*mod, t))
            for p in re.findall(r'#\[cfg\(test\)\]\s*#\[path\s*=\s*"([^"]+)"\]\s*mod\s+\w+', f.read_text()):
                # `#[path]` modules are tests here; their file name is not their module name.
                self.test_files.add((*mod[:-1], Path(p).stem) if mod else (Path(p).stem,))
        self.reexports = {mod: self._reexports(mod) for mod in self.files}

    def _reexports(self, mod: tuple[str, ...]) -> dict[str, str]:
        """Names a module re-exports (`pub use x::Name`) -> the path they come from."""
        out = {}
        for m in re.finditer(r"\bpub(?:\([^)]*\))?\s+use\s+([^;]+);", self.code[mod]):
            for path, alias in _use_items(m.group(1)):
                out[alias] = path
        return out

    def _absolute(self, mod: tuple[str, ...], path: str) -> list[str] | None:
        segs = path.split("::")
        # The module the file's `super`/`self` is relative to.
        base = list(mod)
        if segs[0] == "crate":
            base, segs = [], segs[1:]
        elif segs[0] in ("self", "super"):
            while segs and segs[0] in ("self", "super"):
                if segs[0] == "super":
                    base.pop()
                segs = segs[1:]
        elif (*mod, segs[0]) in self.files:
            pass  # a child module, named without `self::` (`pub use verifier::Claims` in mod.rs)
        else:
            return None
        return base + segs

    def resolve(self, mod: tuple[str, ...], path: str, depth: int = 0) -> tuple[str, ...] | None:
        """The file-module a path (`crate::a::B`, `super::c`) names, through re-exports."""
        segs = self._absolute(mod, path)
        if segs is None:
            return None
        best: tuple[str, ...] = ()
        for i in range(len(segs), -1, -1):
            if tuple(segs[:i]) in self.files:
                best = tuple(segs[:i])
                break
        rest = segs[len(best) :]
        if rest and depth < 8 and rest[0] in self.reexports.get(best, {}):
            return self.resolve(best, self.reexports[best][rest[0]], depth + 1) or best
        return best

    def graph(self) -> dict[tuple[str, ...], set[tuple[str, ...]]]:
        edges: dict[tuple[str, ...], set[tuple[str, ...]]] = {}
        for mod, code in self.code.items():
            if mod in self.test_files:
                continue
            paths: list[str] = []
            for m in re.finditer(r"\buse\s+([^;]+);", code):
                paths.extend(p for p, _ in _use_items(m.group(1)))
            # Paths written out in code (`crate::http::is_header_name(h)`).
            paths.extend(re.findall(r"\b(?:crate|super|self)(?:::\w+)+", code))
            out = edges.setdefault(mod, set())
            for p in paths:
                target = self.resolve(mod, p)
                if target is None or target == mod or target in self.test_files:
                    continue
                # A module's parent (`mod.rs`) only declares it; an edge to it is one to its
                # re-exports, resolved above, or to the folder's own items.
                out.add(target)
        return edges


def _layer(mod: tuple[str, ...]) -> tuple[int, str] | None:
    return RUST_LAYERS.get(mod[0]) if mod else None


def rust_problems(src: Path) -> list[str]:
    crate = RustCrate(src)
    graph = crate.graph()
    problems = []
    for mod, targets in sorted(graph.items()):
        for t in sorted(targets):
            here, there = _layer(mod), _layer(t)
            if not mod or not t or here is None or there is None:
                if mod and here is None:
                    problems.append(f"src/{'/'.join(mod)}: no layer (add it to RUST_LAYERS)")
                continue
            if there[0] > here[0] or (there[0] == here[0] and there[1] != here[1]):
                problems.append(
                    f"{'::'.join(mod)} ({here[1]}) imports {'::'.join(t)} ({there[1]}): "
                    "imports go down the layers, and not across features"
                )
    named = {"::".join(k) or "crate": {"::".join(t) or "crate" for t in v} for k, v in graph.items()}
    problems.extend(f"import cycle in src/: {c}" for c in cycles(named))
    return sorted(set(problems))


# --- Python -----------------------------------------------------------------------------------


def _py_modules(pkg: Path) -> dict[str, Path]:
    mods = {}
    for f in sorted(pkg.rglob("*.py")):
        rel = f.relative_to(pkg.parent).with_suffix("").parts
        if "examples" in rel:
            continue
        name = ".".join(rel[:-1] if rel[-1] == "__init__" else rel)
        mods[name] = f
    if (pkg / "_native.pyi").exists():
        mods[f"{pkg.name}._native"] = pkg / "_native.pyi"
    return mods


def python_graph(pkg: Path) -> dict[str, set[str]]:
    """Module -> package modules it imports, at any depth of the file (a deferred import in a
    function is a dependency all the same); `if TYPE_CHECKING:` imports count too."""
    mods = _py_modules(pkg)
    graph: dict[str, set[str]] = {}
    for name, f in mods.items():
        if f.suffix == ".pyi":
            # The extension's own imports are made by the Rust binding: the exception classes.
            graph[name] = {m for m in mods if m.endswith(".exceptions")}
            continue
        is_pkg = f.name == "__init__.py"
        tree = ast.parse(f.read_text(), str(f))
        out = graph.setdefault(name, set())
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = name.split(".")
                    up = parts if is_pkg else parts[:-1]
                    up = up[: len(up) - (node.level - 1)]
                    base = ".".join([*up, base] if base else up)
                targets = [f"{base}.{a.name}" for a in node.names] + [base]
            for t in targets:
                # The longest package module the name is, or is inside.
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                # Importing `a.b.c` runs `a.b`'s __init__ first (the root package's aside: it is the
                # public API, which imports the modules, and none of them imports it).
                while t.count(".") >= 1:
                    if t != name and not name.startswith(t + "."):
                        out.add(t)
                    t = t.rpartition(".")[0]
    return graph


def _py_rank(name: str) -> int:
    return PY_RANKS.get(name, PY_DEFAULT_RANK)


def python_problems(pkg: Path) -> list[str]:
    graph = python_graph(pkg)
    problems = [
        f"{m} (rank {_py_rank(m)}) imports {t} (rank {_py_rank(t)}): imports go down"
        for m, ts in sorted(graph.items())
        for t in sorted(ts)
        if _py_rank(t) > _py_rank(m)
    ]
    problems.extend(f"import cycle in the package: {c}" for c in cycles(graph))
    return problems


# --- graphs -----------------------------------------------------------------------------------


def cycles(graph: Graph) -> list[str]:
    """Each strongly connected component of more than one node (Tarjan): its modules, and its
    shortest cycle through the first of them."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    comps: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [
        f"{' -> '.join(_cycle_in(graph, set(c)))} (all of: {', '.join(c)})"
        if len(c) > 2
        else " -> ".join(_cycle_in(graph, set(c)))
        for c in comps
    ]


def _cycle_in(graph: Graph, comp: set[str]) -> list[str]:
    """A shortest cycle from the component's first node, to name in a message."""
    start = min(comp)
    prev: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph.get(v, ())):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return [*reversed(path), start]
                if w in comp and w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return sorted(comp)


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent
    problems = rust_problems(root / "src") + python_problems(root / "python" / "ferrogate")
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
