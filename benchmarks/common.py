"""Shared helpers of the benchmarks: the machine description and JSON output."""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

#: the package's own results folder: the committed full results in a clone (not in a wheel)
COMMITTED = Path(__file__).resolve().parent / "results"


def default_results() -> Path:
    """Where a benchmark run alone (``python -m benchmarks.NAME``) writes by default: the committed
    results folder in a clone (where a maintainer regenerates them), else ``./bench-results`` in
    the current directory, never into an installed package (site-packages)."""
    root = COMMITTED.parent.parent
    if (root / "pyproject.toml").exists() and (root / "benchmarks" / "__init__.py").exists():
        return COMMITTED
    return Path.cwd() / "bench-results"


def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu": cpu, "python": platform.python_version(), "system": platform.system()}


#: what every result file names: how to reproduce it, when, and where
PROVENANCE = ("command", "date", "machine")


def own_command() -> str:
    """This process's command line, as a benchmark is run (``python -m benchmarks.NAME ...``)."""
    argv = list(sys.argv)
    first = Path(argv[0]) if argv else Path("python")
    if first.suffix == ".py" and first.parent.name == "benchmarks":
        head = f"python -m benchmarks.{first.stem}"
    elif argv and argv[0].startswith("benchmarks."):  # run by `gla bench` through runpy
        head = f"python -m {argv[0]}"
    else:
        head = " ".join(["python", *argv[:1]])
    return " ".join([head, *map(shlex.quote, argv[1:])])


def write_json(path: Path, obj: dict | list) -> None:
    """Write ``obj`` as JSON, atomically. A result (a dict) always names its command, date and
    machine (:data:`PROVENANCE`): what its writer left out is filled in here (this process's
    command line, now, this machine), never left unnamed."""
    if isinstance(obj, dict) and not all(obj.get(k) for k in PROVENANCE):
        obj = {
            **obj,
            "command": obj.get("command") or own_command(),
            "date": obj.get("date") or time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": obj.get("machine") or machine(),
        }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=float) + "\n")
    tmp.replace(path)
