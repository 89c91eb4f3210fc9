"""Computing Platform: the import structure of ``platform_api``.

The graph is built from the source with :mod:`ast` (every ``import`` statement, at module level
or inside a function), so a cycle closed by a lazy import inside a function counts as a cycle.
``platform_api`` must not import the receiver's or the simulator's internals: only the contract
modules it shares with them (the air interface and the bundle format), listed in ``CONTRACTS``.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "platform_api"

#: The modules of ``receiver`` and ``dsp`` that platform_api may import (the bundle format and the
#: air interface). When the contract modules move (``receiver.contracts.*``, ``dsp.air.*``), switch
#: this list and nothing else.
CONTRACTS = (
    "receiver.contracts.bundle",
    "dsp.air.messages",
    "dsp.air.params",
    "dsp.air.frame",
    "dsp.air.crc",
    "dsp.air.bits",
)

#: Top-level packages platform_api must not import at all.
FORBIDDEN = ("numba", "gridsim", "benchmarks")

#: Top-level packages of which only the ``CONTRACTS`` modules may be imported.
RESTRICTED = ("receiver", "dsp")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(name: str) -> bool:
    """Whether ``name`` is a module or package of this repository (by its files)."""
    p = ROOT.joinpath(*name.split("."))
    return p.with_suffix(".py").is_file() or (p / "__init__.py").is_file()


def _imports(path: Path) -> set[str]:
    """The absolute names of the modules ``path`` imports (``from m import n`` is ``m.n`` when
    that is a module of the repository, else ``m``)."""
    mod = _module_name(path)
    pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            subs = [f"{name}.{a.name}" for a in node.names if _is_module(f"{name}.{a.name}")]
            out.update(subs)
            if len(subs) < len(node.names):
                out.add(name)
    return out


def import_graph() -> dict[str, set[str]]:
    """platform_api module -> the modules it imports (every module, not only platform_api's)."""
    return {_module_name(p): _imports(p) for p in sorted((ROOT / PACKAGE).rglob("*.py"))}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (or a module importing itself),
    by Tarjan's algorithm over the edges inside the graph."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in graph:
                continue
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
            if len(comp) > 1 or v in graph[v]:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _top(name: str) -> str:
    return name.split(".", 1)[0]


def _allowed(name: str) -> bool:
    if _top(name) in FORBIDDEN:
        return False
    if _top(name) in RESTRICTED:
        return name in CONTRACTS
    return True


def test_the_graph_sees_the_imports_it_should():
    g = import_graph()
    assert "platform_api.main" in g and "platform_api.services.ingest" in g
    assert "platform_api.models" in g["platform_api.services.ingest"]
    assert "receiver.contracts.bundle" in g["platform_api.services.ingest"]
    assert "platform_api.api.routes.bundles" in g["platform_api.api.main"]  # from .routes import bundles
    # the checker finds a cycle, also through a function-level import
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a", "x"}, "d": {"d"}}) == [["a", "b", "c"], ["d"]]
    assert not _allowed("gridsim.traffic") and not _allowed("dsp.fec.viterbi") and not _allowed("receiver.service")
    assert not _allowed("numba") and not _allowed("dsp") and _allowed("dsp.air.messages") and _allowed("sqlalchemy")


def test_platform_api_has_no_import_cycle():
    found = cycles(import_graph())
    assert found == [], "import cycles in platform_api:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_platform_api_imports_only_the_contract_modules_of_receiver_and_dsp():
    bad = sorted((mod, name) for mod, names in import_graph().items() for name in names if not _allowed(name))
    assert bad == [], "platform_api imports beyond the contracts:\n" + "\n".join(f"{m}: {n}" for m, n in bad)
