"""The layout of the code base: tests test the product (dsp, receiver, platform_api, gridsim), not
the benchmarks. A benchmark is a driver of the product; a test that needs one of its pieces means
the piece belongs in the product (gridsim holds the simulators), or the test runs the benchmark as
a subprocess."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
FORBIDDEN = "benchmarks"


def _imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every import in ``tree``, at any depth (function bodies included)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            if node.module == FORBIDDEN.split(".")[0]:  # `from benchmarks import x` is benchmarks.x
                found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
        elif (
            isinstance(node, ast.Call)
            and _called_name(node.func) in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
    return found


def _called_name(func: ast.expr) -> str | None:
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


def _is_benchmark(module: str) -> bool:
    return module == FORBIDDEN or module.startswith(FORBIDDEN + ".")


@pytest.mark.parametrize("path", sorted(TESTS.glob("*.py")), ids=lambda p: p.name)
def test_no_test_imports_a_benchmark_module(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    bad = [f"{path.name}:{line}: {mod}" for line, mod in _imported_modules(tree) if _is_benchmark(mod)]
    assert not bad, "tests import no benchmark module (move the piece to the product, e.g. gridsim):\n" + "\n".join(bad)


def test_the_check_sees_every_form_of_import():
    src = """
import benchmarks.theft_eval
from benchmarks import bench_dsp as B
from benchmarks.bench_sensitivity import trial_awgn
def f():
    import benchmarks
    importlib.import_module("benchmarks.theft_ieee_check")
import gridsim.lv
from gridsim import trials
"""
    mods = [m for _, m in _imported_modules(ast.parse(src))]
    assert sorted(m for m in mods if _is_benchmark(m)) == sorted(
        [
            "benchmarks.theft_eval",
            "benchmarks",
            "benchmarks.bench_dsp",
            "benchmarks.bench_sensitivity",
            "benchmarks",
            "benchmarks.theft_ieee_check",
        ]
    )
    assert "gridsim.lv" in mods and "gridsim" in mods


def test_gridsim_imports_without_pandapower():
    """pandapower is a test extra: ``import gridsim`` (and its LV subpackage) must not need it."""
    import subprocess

    code = (
        "import sys, gridsim, gridsim.lv, gridsim.lv.ieee; "
        "sys.exit(1 if any(m == 'pandapower' or m.startswith('pandapower.') for m in sys.modules) else 0)"
    )
    subprocess.run([sys.executable, "-c", code], cwd=TESTS.parent, check=True)
