"""`gla bench` from a clone and from an installed wheel: each benchmark's ``main`` is called by
import (its worker processes can pickle its functions), results land in ``--out`` and nowhere
else, and a ``--quick`` run never replaces the committed full results (JSON or plots)."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

from receiver.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]

#: every benchmark of `gla bench`: each quick run takes 8-70 s (numba's cache warm)
ALL = ("dsp", "platform", "reliability", "receiver", "theft", "theft-ieee")


def _checksums(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


ROOT_RESULTS = ROOT / "benchmarks" / "results"


def _benchmarks() -> list[str]:
    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    (which,) = [a for a in sub.choices["bench"]._actions if a.dest == "which"]
    return [c for c in which.choices if c != "all"]


def _gla_bench(name: str, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "receiver.cli", "bench", name, "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_gla_bench_names_the_known_benchmarks():
    assert sorted(_benchmarks()) == sorted(ALL)


#: quick runs kept out of every CI run for its time (GLA_BENCH_ALL=1 runs them): `receiver` is run
#: the same way by tests/test_bench_receiver.py, `platform` by the installed-wheel test below and by
#: .ci/run, `reliability` from the installed wheel when GLA_BENCH_ALL=1
LONG = {"receiver", "reliability", "dsp", "theft", "theft-ieee"}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(
            n,
            marks=pytest.mark.skipif(
                n in LONG and not os.environ.get("GLA_BENCH_ALL"), reason="a long quick run: GLA_BENCH_ALL=1 runs it"
            ),
        )
        for n in _benchmarks()
    ],
)
def test_gla_bench_quick_writes_into_out_only(name, tmp_path):
    before = _checksums(ROOT_RESULTS)
    out = tmp_path / "results"
    r = _gla_bench(name, out)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert "PicklingError" not in r.stderr
    written = sorted(p.name for p in out.rglob("*.json"))
    assert written, f"gla bench {name} --quick wrote no JSON into {out}: {r.stdout[-2000:]}"
    for p in out.rglob("*.json"):
        doc = json.loads(p.read_text())
        if isinstance(doc, dict):  # a result (theft's trials file is a list of records)
            assert "--quick" in doc["command"].split(), p
    assert _checksums(ROOT_RESULTS) == before, "a quick run changed benchmarks/results"
    assert "BENCHMARKS.md not regenerated" in r.stdout


def _venv_with_the_wheel(tmp_path: Path) -> Path:
    """A fresh venv with the wheel built from this tree installed (no dependencies: those of the
    running interpreter are reused). Returns the venv's bin folder."""
    src = tmp_path / "src"
    skip = shutil.ignore_patterns(
        ".git", ".venv", "__pycache__", "*.nbi", "*.nbc", "build", "dist", "out", "captures", "bench-results", "*_cache"
    )
    shutil.copytree(ROOT, src, ignore=skip)
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(src)],
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("gla_receiver-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    if sys.prefix != sys.base_prefix:  # the running interpreter is itself a venv: reuse its packages
        (purelib,) = (venv / "lib").glob("python*/site-packages")
        paths = [p for p in site.getsitepackages() if Path(p).is_dir()]
        (purelib / "zz_reuse_deps.pth").write_text("\n".join(paths) + "\n")  # after the wheel's own files
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--no-deps", "-q", str(wheel)]
    subprocess.run(pip, check=True, capture_output=True)
    return venv / "bin"


def test_an_installed_wheel_runs_gla_bench_outside_the_clone(tmp_path):
    """A newcomer's first commands from the installed wheel, outside the clone: ``gla --version``,
    ``gla replay`` of the committed capture, its sidecar through the SigMF validator, and a quick
    benchmark, which writes into --out and never into the installed package."""
    bin_dir = _venv_with_the_wheel(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    v = subprocess.run([str(bin_dir / "gla"), "--version"], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert v.returncode == 0 and v.stdout.startswith("gla "), v.stderr
    where = subprocess.run(
        [str(bin_dir / "python"), "-c", "import benchmarks, receiver; print(benchmarks.__file__, receiver.__file__)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(ROOT) not in where and str(tmp_path / "venv") in where, where
    pkg = Path(where.split()[0]).parent
    before = _checksums(pkg)
    rp = subprocess.run(
        [str(bin_dir / "gla"), "replay", str(ROOT / "captures" / "demo_small"), "--out", "rp", "--show", "0"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert rp.returncode == 0, rp.stderr[-3000:]
    assert "4/4 messages decoded" in rp.stdout and "0 bundles matched nothing sent" in rp.stdout, rp.stdout
    sigmf_check = (
        "import sys, json, sigmf; from sigmf import validate; "
        "validate.validate(json.load(open(sys.argv[1]))); print('valid')"
    )
    ok = subprocess.run(
        [str(bin_dir / "python"), "-c", sigmf_check, str(ROOT / "captures" / "demo_small.sigmf-meta")],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and "valid" in ok.stdout, ok.stderr[-2000:]
    name = "reliability" if os.environ.get("GLA_BENCH_ALL") else "platform"
    r = subprocess.run(
        [str(bin_dir / "gla"), "bench", name, "--quick", "--out", "res"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    # (reliability needs a capture of the clone, captures/demo_small: it simulates one instead)
    command = json.loads((elsewhere / "res" / f"{name}.json").read_text())["command"]
    assert f"bench_{name}" in command and "--quick" in command.split(), command
    after = {k: h for k, h in _checksums(pkg).items() if "__pycache__" not in k}
    assert after == {k: h for k, h in before.items() if "__pycache__" not in k}, "gla bench wrote into the package"
    assert not (pkg / "results").exists()


def test_a_quick_run_aimed_at_full_results_writes_into_quick(tmp_path):
    """A folder holding a full run's result (its command has no --quick) is never written by a
    quick run: it goes to the folder's quick/ subfolder."""
    full = tmp_path / "full"
    full.mkdir()
    (full / "platform.json").write_text(json.dumps({"command": "python benchmarks/bench_platform.py"}) + "\n")
    before = _checksums(full)
    r = _gla_bench("platform", full)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert f"{full} holds full results: this quick run writes into {full / 'quick'}" in r.stdout
    assert {k: h for k, h in _checksums(full).items() if not k.startswith("quick/")} == before
    command = json.loads((full / "quick" / "platform.json").read_text())["command"]
    assert "--quick" in command.split()
