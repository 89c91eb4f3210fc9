"""Every numba option lives in dsp/numba_settings.py: no kernel sets flags of its own."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from dsp import numba_settings

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = ROOT / "dsp" / "numba_settings.py"
NUMBA_OPTIONS = {
    "fastmath",
    "cache",
    "nogil",
    "parallel",
    "error_model",
    "boundscheck",
    "inline",
    "looplift",
    "nopython",
    "forceobj",
    "locals",
}


def _sources() -> list[Path]:
    return [
        p
        for top in ("dsp", "receiver", "gridsim", "platform_api")
        for p in sorted((ROOT / top).rglob("*.py"))
        if p != SETTINGS
    ]


def test_no_kernel_sets_its_own_numba_options():
    bad = []
    for path in _sources():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names]
                mod = getattr(node, "module", None) or ""
                if mod == "numba" or mod.startswith("numba.") or any(n.split(".")[0] == "numba" for n in names):
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: imports numba directly")
            if isinstance(node, ast.Call):
                for kw in node.keywords:
                    if kw.arg in NUMBA_OPTIONS and isinstance(node.func, (ast.Name, ast.Attribute)):
                        fname = node.func.id if isinstance(node.func, ast.Name) else node.func.attr
                        if fname in {"jit", "njit", "vectorize", "guvectorize", "cfunc", "generated_jit"}:
                            bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: {fname}({kw.arg}=...)")
    assert not bad, "numba options outside dsp/numba_settings.py:\n" + "\n".join(bad)


def test_profiles_are_the_only_choice():
    assert set(numba_settings.FASTMATH) == {"exact", "sums", "reorder"}
    with pytest.raises(ValueError, match="unknown fastmath profile"):
        numba_settings.jit(math="fast")
