"""What ``gla bench`` runs: each benchmark's ``main(argv)`` called by import, all writing into one
results folder (``--out``).

Why by import: a benchmark run as ``__main__`` (``runpy``) has its functions named
``__main__.f``, which worker processes cannot find (``PicklingError``). Why one folder: the results
committed in ``benchmarks/results`` are written only by an explicit full run into that folder
(``gla bench --out benchmarks/results`` from a clone); a ``--quick`` run aimed at a folder that
holds full results writes into its ``quick/`` subfolder instead, so it never replaces them (plots
included). Paths come from ``--out`` (relative to the current directory), never from where the
package is installed.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable
from pathlib import Path

from benchmarks.common import COMMITTED


def _dir(out: Path) -> list[str]:
    return ["--out", str(out)]


#: name -> (module, its --out arguments for a results folder)
BENCHMARKS: dict[str, tuple[str, Callable[[Path], list[str]]]] = {
    "dsp": ("benchmarks.bench_dsp", _dir),
    "receiver": ("benchmarks.bench_receiver", _dir),
    "platform": ("benchmarks.bench_platform", lambda out: ["--out", str(out / "platform.json")]),
    "theft": ("benchmarks.theft_eval", _dir),
    "theft-ieee": ("benchmarks.theft_ieee_check", _dir),
    "reliability": ("benchmarks.bench_reliability", lambda out: ["--out", str(out / "reliability.json")]),
}


def holds_full_results(folder: Path) -> bool:
    """Whether ``folder`` holds results of a full run: it is the committed results folder, or a
    JSON result in it names a command without ``--quick``."""
    folder = Path(folder)
    if not folder.is_dir():
        return False
    if folder.resolve() == COMMITTED.resolve():
        return True
    for p in folder.glob("*.json"):
        try:
            doc = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        cmd = doc.get("command") if isinstance(doc, dict) else None
        if isinstance(cmd, str) and "--quick" not in cmd.split():
            return True
    return False


def quick_folder(out: Path, quick: bool) -> Path:
    """Where a run aimed at ``out`` writes: ``out`` itself, except a quick run aimed at full
    results, which goes to ``out/quick`` (a smoke run never replaces measured figures)."""
    out = Path(out)
    if quick and holds_full_results(out):
        return out / "quick"
    return out


def run(which: list[str], out: Path, quick: bool) -> int:
    """Run the named benchmarks into ``out``; BENCHMARKS.md is regenerated only after a full run
    of all of them into the committed results folder. Returns the first non-zero exit code."""
    dest = quick_folder(out, quick)
    if dest != Path(out):
        print(f"{out} holds full results: this quick run writes into {dest}", flush=True)
    dest.mkdir(parents=True, exist_ok=True)
    for name in which:
        module, out_args = BENCHMARKS[name]
        argv = [*(["--quick"] if quick else []), *out_args(dest)]
        print(f"== benchmark {name} ==", flush=True)
        main = importlib.import_module(module).main
        saved = sys.argv
        sys.argv = [module, *argv]  # the results' provenance: python -m <module> <argv>
        try:
            code = main(argv)
        except SystemExit as e:
            code = e.code
        finally:
            sys.argv = saved
        if isinstance(code, int) and code != 0:
            return code
        if isinstance(code, str):
            print(code, file=sys.stderr)
            return 1
    print(f"results in {dest}", flush=True)
    if set(which) == set(BENCHMARKS) and not quick and dest.resolve() == COMMITTED.resolve():
        from benchmarks.report import main as report

        return report()
    print("BENCHMARKS.md not regenerated: only a full run of all benchmarks into benchmarks/results does that")
    return 0
