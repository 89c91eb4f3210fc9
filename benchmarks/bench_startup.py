"""Start-up of the receiver's commands: from the command to the first block processed.

    python -m benchmarks.bench_startup                # 5 runs each, a 4-s 36-input capture
    python -m benchmarks.bench_startup --runs 3 --no-write

``gla replay`` (``python -m receiver.cli replay``, 2 workers) of a short capture of the large
scenario (36 inputs, 48 kHz, PCM_24 RF64), and ``gla receive`` (2 workers) of the same capture
streamed to it over ZeroMQ as fast as it takes it, each started as a subprocess with
``--timings`` (:mod:`receiver.timings`): the start-up is the time from just before the process
is started to its ``first_block`` line, the moment the first block has been through every
worker's chains and is back in the parent. Each command runs once first, unmeasured: a second
run is what is measured (numba's on-disk cache and Python's compiled modules warm, the files in
the page cache), the median of ``--runs``. The phases (imports, pipeline with the workers
forked, first block; seconds from the process's start), the parent's CPU seconds at the first
block and the kernels every run loaded and compiled (numba's cache log: none compiled) are
reported beside it.

Writes ``replay_startup_s``, ``receive_startup_s`` and ``startup`` (runs and phases) into
benchmarks/results/receiver.json (``--no-write``: print only). ``python -m
benchmarks.bench_receiver`` runs it as its ``startup`` stage.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.common import default_results, machine, write_json

ROOT = Path(__file__).resolve().parents[1]
RESULTS = default_results()
PREFIX = "gla-timings:"


def make_capture(out_stem: Path, seconds: float = 4.0) -> Path:
    """A short capture of the large scenario (36 inputs): its stem."""
    from gridsim.simulate import run_scenario

    res = run_scenario("large", out_stem, duration_s=seconds, progress=False)
    return res.audio_path.with_suffix("")


def _marks(stderr: str, pid: int) -> dict[str, dict[str, float]]:
    """The ``gla-timings`` lines of process ``pid``: phase -> {t, unix, cpu}."""
    out = {}
    for line in stderr.splitlines():
        if not line.startswith(PREFIX):
            continue
        f = line.split()
        if int(f[f.index("pid") + 1]) == pid:
            out[f[1]] = {"t": float(f[2]), "unix": float(f[f.index("unix") + 1]), "cpu": float(f[f.index("cpu") + 1])}
    return out


def _run(cmd: list[str], timeout_s: float = 300.0) -> dict:
    """Run ``cmd`` (a ``gla`` command with --timings) from the repository root: the start-up
    (launch to first_block, s), the parent's phases and its CPU seconds at the first block."""
    env = dict(os.environ, GLA_TIMINGS="1")
    env.pop("GLA_TIMINGS_T0", None)
    # Python's own cache of compiled modules on, as in a default install (a second run reads
    # them; a harness may turn it off for its own runs)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["NUMBA_DEBUG_CACHE"] = "1"  # (one line per kernel loaded, on stdout: a compile shows as "data saved")
    t0 = time.time()
    p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = p.communicate(timeout=timeout_s)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit status {p.returncode}: {err[-2000:]}")
    m = _marks(err, p.pid)
    if "first_block" not in m:
        raise RuntimeError(f"{' '.join(cmd)}: no first_block timing line in its output")
    return {
        "startup_s": m["first_block"]["unix"] - t0,
        "phases_s": {k: v["t"] for k, v in m.items()},
        "parent_cpu_s": m["first_block"]["cpu"],
        "numba_kernels_loaded": out.count("[cache] data loaded"),
        "numba_kernels_compiled": out.count("[cache] data saved"),
    }


def _summary(runs: list[dict]) -> dict:
    phases = sorted({k for r in runs for k in r["phases_s"]}, key=lambda k: runs[0]["phases_s"].get(k, 0.0))
    return {
        "startup_s_median": round(statistics.median(r["startup_s"] for r in runs), 3),
        "startup_s_runs": [round(r["startup_s"], 3) for r in runs],
        "parent_cpu_s_median": round(statistics.median(r["parent_cpu_s"] for r in runs), 3),
        # every process of a run (a compile in a measured run would mean numba's cache missed)
        "numba_kernels_loaded": [r["numba_kernels_loaded"] for r in runs],
        "numba_kernels_compiled": [r["numba_kernels_compiled"] for r in runs],
        "phases_s_median": {
            k: round(statistics.median(r["phases_s"][k] for r in runs if k in r["phases_s"]), 3) for k in phases
        },
    }


def replay_startup(stem: Path, runs: int = 5, workers: int = 2) -> dict:
    """``gla replay STEM --workers 2`` started ``runs`` times after one unmeasured run."""
    cmd = [sys.executable, "-m", "receiver.cli", "replay", str(stem), "--workers", str(workers)]
    cmd += ["--no-progress", "--show", "0", "--timings"]
    _run(cmd)
    return _summary([_run(cmd) for _ in range(runs)])


def _free_port() -> int:
    with socket.socket() as so:
        so.bind(("127.0.0.1", 0))
        return so.getsockname()[1]


def _receive_once(stem: Path, cfg_path: Path, data_dir: Path, seconds: float) -> dict:
    from receiver.sources import CaptureSender

    meta = json.loads(stem.with_suffix(".sigmf-meta").read_text())
    sender = CaptureSender(stem, "tcp://127.0.0.1:*", duration_s=seconds + 1.0, send_timeout_ms=60000)
    cfg = {
        "receiver": {"id": "rx-startup", "substation_id": "s", "workers": 2, "data_dir": str(data_dir)},
        "input": {
            "endpoint": sender.endpoint,
            "n_channels": meta["global"]["core:num_channels"],
            "channels": [
                {k: c[k] for k in ("index", "bus", "feeder", "phase")}
                for c in meta["global"].get("gla:channels", meta.get("gla:channels"))
            ],
        },
        "http": {"listen": f"127.0.0.1:{_free_port()}"},
    }
    cfg_path.write_text(_toml(cfg))
    th = threading.Thread(target=sender.run, daemon=True)  # queued at the socket until the receiver connects
    th.start()
    try:
        cmd = [sys.executable, "-m", "receiver.cli", "receive", "--config", str(cfg_path)]
        return _run(cmd + ["--max-seconds", str(seconds), "--timings"])
    finally:
        th.join(timeout=30)


def _toml(d: dict) -> str:
    """The receiver's configuration as TOML (tables of strings, numbers and a list of tables)."""
    lines = []
    for section, kv in d.items():
        lines.append(f"[{section}]")
        for k, v in kv.items():
            if isinstance(v, list):
                items = ", ".join("{ " + ", ".join(f"{a} = {json.dumps(b)}" for a, b in x.items()) + " }" for x in v)
                lines.append(f"{k} = [{items}]")
            else:
                lines.append(f"{k} = {json.dumps(v)}")
    return "\n".join(lines) + "\n"


def receive_startup(stem: Path, runs: int = 5, seconds: float = 2.0) -> dict:
    """``gla receive`` of ``stem`` streamed over ZeroMQ (``seconds`` of it), ``runs`` times after
    one unmeasured run."""
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        out = []
        for k in range(runs + 1):
            r = _receive_once(stem, tmp / "receiver.toml", tmp / f"data{k}", seconds)
            if k:
                out.append(r)
    return _summary(out)


def run(runs: int = 5, seconds: float = 4.0, capture: Path | None = None) -> dict:
    """Both start-ups on a ``seconds``-long 36-input capture (made here unless given)."""
    with tempfile.TemporaryDirectory() as td:
        stem = capture or make_capture(Path(td) / "large", seconds)
        rp = replay_startup(stem, runs)
        rc = receive_startup(stem, runs)
        n_inputs = json.loads(Path(str(stem) + ".sigmf-meta").read_text())["global"]["core:num_channels"]
    return {
        "replay_startup_s": rp["startup_s_median"],
        "receive_startup_s": rc["startup_s_median"],
        "replay": rp,
        "receive": rc,
        "inputs": n_inputs,
        "workers": 2,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "note": "command start (just before the process is started) to the first block back from every "
        "worker, second run (numba's cache warm); median of the runs",
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=4.0, help="length of the capture simulated for it")
    ap.add_argument("--capture", type=Path, default=None, help="use this capture (stem) instead of simulating one")
    ap.add_argument("--no-write", action="store_true", help="print the figures only")
    args = ap.parse_args(argv)
    res = run(args.runs, args.seconds, args.capture)
    print(json.dumps(res, indent=1))
    if not args.no_write:
        path = RESULTS / "receiver.json"
        out = json.loads(path.read_text()) if path.exists() else {}
        cmd = "python -m benchmarks.bench_startup" + (f" --runs {args.runs}" if args.runs != 5 else "")
        now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        stages = dict(out.get("stage_runs") or {})
        stages["startup"] = {"command": cmd, "date": now, "machine": machine()}
        out.update(
            replay_startup_s=res["replay_startup_s"],
            receive_startup_s=res["receive_startup_s"],
            startup=res,
            stage_runs=stages,
        )
        write_json(path, out)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
