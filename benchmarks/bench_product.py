"""The product at the chain's speed (issue [3/8]): the chain alone, the full replay, the live
service and the simulator, measured side by side in one run of ``python -m
benchmarks.bench_receiver`` (its stages ``chain``, ``large``, ``profile``, ``service`` and
``simulate``).

- chain: :func:`benchmarks.bench_dsp.throughput` (the receive chain alone, 36 inputs, one core)
  in a spawned process pinned to one core.
- large: ``gla replay`` (``python -m receiver.cli replay``, 2 workers) of a 600-s, 36-input,
  48 kHz PCM_24 capture of the large scenario, run as a user runs it: the command in a
  subprocess, timed by the clock from just before it starts to its exit (start-up included).
  Its process tree (parent and workers) is sampled from /proc (:mod:`benchmarks.proctree`):
  peak summed resident set, and each process's CPU seconds; the start-up and each process's
  CPU at its first block come from ``--timings`` (:mod:`receiver.timings`).
- service: ``gla receive`` (2 workers) fed a capture over ZeroMQ at real time by a
  :class:`receiver.sources.CaptureSender` in this process (its CPU is not the service's): the
  service's process tree's CPU seconds per stream second, and burst end to bundle latency.

:func:`replay_to_chain_ratio` is how much of the chain's speed the replay keeps on 2 cores.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FS = 48000.0


def replay_to_chain_ratio(replay_rtf: float, chain_rtf: float, cores: int = 2) -> float:
    """The replay's real-time factor on ``cores`` cores over ``cores`` x the chain's on one:
    1.0 means the product keeps all of the chain's speed."""
    if not chain_rtf or chain_rtf <= 0 or cores <= 0:
        raise ValueError(f"chain real-time factor {chain_rtf} on {cores} cores: cannot compare")
    return round(replay_rtf / (cores * chain_rtf), 3)


def cpu_fraction(cpu_s: float, stream_s: float, cores: int) -> float:
    """CPU seconds per stream second, as a fraction of a machine of ``cores`` cores."""
    if stream_s <= 0 or cores <= 0:
        raise ValueError(f"{stream_s} s of stream on {cores} cores: no CPU fraction")
    return cpu_s / stream_s / cores


@contextlib.contextmanager
def one_thread_env():
    """BLAS one thread for a child started inside (the affinity a child sets holds only for
    threads made after it, and numpy's BLAS starts its threads when a spawned child imports it)."""
    keys = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update(dict.fromkeys(keys, "1"))
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# ----------------------------------------------------------------------------------- chain
def _chain_child(seconds: float, repeats: int, work_dir: str, q) -> None:
    try:
        from benchmarks.bench_dsp import throughput

        q.put(throughput(seconds, repeats=repeats, work_dir=Path(work_dir)))
    except Exception as e:  # (reported by the parent)
        q.put({"error": f"{type(e).__name__}: {e}"})


def chain_speed(seconds: float, repeats: int, work_dir: Path) -> dict:
    """The chain alone on one core (bench_dsp's throughput: median of ``repeats`` passes over a
    ``seconds``-long 36-input capture), in a spawned process that pins itself to one core."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_chain_child, args=(seconds, repeats, str(work_dir), q))
    with one_thread_env():
        p.start()
    res = q.get()
    p.join()
    if "error" in res:
        raise RuntimeError(f"chain throughput: {res['error']}")
    return res


# ------------------------------------------------------------------------------- capture
def make_capture(folder: Path, seconds: float, scenario: str = "large") -> dict:
    """``gla simulate --scenario large --duration SECONDS --out FOLDER`` (a subprocess); the
    capture's stem (``FOLDER/SCENARIO``) is the result's ``stem``."""
    cmd = [sys.executable, "-m", "receiver.cli", "simulate", "--scenario", scenario]
    cmd += ["--duration", f"{seconds:g}", "--out", str(folder), "--no-progress", "--show", "0"]
    t = time.perf_counter()
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit status {r.returncode}: {r.stderr[-2000:]}")
    stem = Path(folder) / Path(scenario).name.removesuffix(".toml")
    return {"command": " ".join(["gla", *cmd[3:]]), "wall_s": round(time.perf_counter() - t, 1), "stem": str(stem)}


def capture_info(stem: Path) -> dict:
    from receiver.contracts.capture import read_capture_meta

    m = read_capture_meta(stem)
    return {
        "stem": str(stem),
        "seconds": m.n_frames / m.fs_hz,
        "inputs": m.n_channels,
        "fs_hz": m.fs_hz,
        "subtype": m.subtype,
        "bytes": m.audio_path.stat().st_size,
    }


# ------------------------------------------------------------------------------- helpers
def _env() -> dict:
    env = dict(os.environ, GLA_TIMINGS="1")
    env.pop("GLA_TIMINGS_T0", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # Python's compiled modules, as in an install
    return env


def _marks(stderr: str) -> dict[int, dict[str, dict[str, float]]]:
    """pid -> phase -> {t, unix, cpu} of every ``gla-timings`` line (:mod:`receiver.timings`)."""
    from receiver.timings import PREFIX

    out: dict[int, dict[str, dict[str, float]]] = {}
    for line in stderr.splitlines():
        if not line.startswith(PREFIX):
            continue
        f = line.split()
        pid = int(f[f.index("pid") + 1])
        out.setdefault(pid, {})[f[1]] = {
            "t": float(f[2]),
            "unix": float(f[f.index("unix") + 1]),
            "cpu": float(f[f.index("cpu") + 1]),
        }
    return out


def _wait(pid: int) -> tuple[int, float, float]:
    """Reap ``pid``: (exit status, CPU seconds of it and the children it reaped, their largest
    peak resident set in MB)."""
    _, status, ru = os.wait4(pid, 0)
    return os.waitstatus_to_exitcode(status), ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024


def _processes(sampler, marks: dict, root: int, tree_cpu_s: float) -> list[dict]:
    """Each process of a replay or service: role, CPU seconds, start-up CPU (at its first
    block), peak resident set. The parent's CPU is the exact total of the tree (wait4) less
    the workers' last samples."""
    roles = {root: "parent"}
    for pid, m in marks.items():
        for phase in m:
            if phase.startswith("worker") and phase.endswith("_started"):
                roles[pid] = phase.removesuffix("_started")
    rows = []
    for pid, p in sorted(sampler.procs.items()):
        role = roles.get(pid, p.name)
        first = marks.get(pid, {}).get("first_block" if pid == root else f"{role}_first_block")
        rows.append(
            {
                "role": role,
                "pid": pid,
                "cpu_s": round(p.cpu_s, 3),
                "startup_cpu_s": round(first["cpu"], 3) if first else None,
                "peak_rss_mb": round(p.hwm_mb, 1),
            }
        )
    others = sum(r["cpu_s"] for r in rows if r["pid"] != root)
    for r in rows:
        if r["pid"] == root:
            r["cpu_s"] = round(max(r["cpu_s"], tree_cpu_s - others), 3)
    return rows


def _bundles(archive: Path) -> list:
    from receiver.contracts.bundle import Bundle

    return [
        Bundle.model_validate_json(line)
        for f in sorted(archive.glob("*.jsonl"))
        for line in f.read_text().splitlines()
        if line.strip()
    ]


# -------------------------------------------------------------------------------- replay
def replay_once(stem: Path, out_dir: Path, workers: int = 2) -> dict:
    """One ``gla replay STEM --workers 2 --out DIR`` timed as a user runs it (see the module
    docstring)."""
    from benchmarks.proctree import TreeSampler

    info = capture_info(stem)
    cmd = [sys.executable, "-m", "receiver.cli", "replay", str(stem), "--workers", str(workers)]
    cmd += ["--out", str(out_dir), "--no-progress", "--show", "0", "--timings"]
    out_dir.mkdir(parents=True, exist_ok=True)
    so, se = out_dir / "stdout.txt", out_dir / "stderr.txt"
    with open(so, "w") as fo, open(se, "w") as fe:
        t0 = time.time()
        p = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=fo, stderr=fe)
        with TreeSampler(p.pid) as sampler:
            rc, tree_cpu, max_rss = _wait(p.pid)
            wall = time.time() - t0
        p.returncode = rc
    err = se.read_text()
    if rc != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit status {rc}: {err[-2000:]}")
    marks = _marks(err)
    first = marks.get(p.pid, {}).get("first_block")
    if first is None:
        raise RuntimeError(f"{' '.join(cmd)}: no first_block timing line in its output")
    startup = first["unix"] - t0
    return {
        "command": " ".join(["gla", *cmd[3:]]),
        "capture_s": info["seconds"],
        "inputs": info["inputs"],
        "workers": workers,
        "wall_s": round(wall, 3),
        "realtime_factor": round(info["seconds"] / wall, 2),
        "startup_s": round(startup, 3),
        "processing_s": round(wall - startup, 3),
        "tree_cpu_s": round(tree_cpu, 3),
        "peak_rss_mb": round(sampler.peak_rss_sum_mb, 1),
        "rss_hwm_sum_mb": round(sampler.hwm_sum_mb(), 1),
        "largest_process_rss_mb": round(max_rss, 1),
        "processes": _processes(sampler, marks, p.pid, tree_cpu),
        "samples": sampler.samples,
        "stdout_tail": so.read_text().splitlines()[:1],
    }


def replay_speed(stem: Path, work: Path, runs: int = 3, workers: int = 2) -> dict:
    """``runs`` timed replays of ``stem`` (one after the other); the median by the clock is the
    figure, the largest peak resident set the memory. The bundles of the last run are scored
    against the capture's truth file when it has one."""
    from receiver.replay import _read_truth_for, score_against_truth

    done = [replay_once(stem, work / f"replay{k}", workers) for k in range(runs)]
    by_wall = sorted(done, key=lambda r: r["wall_s"])
    med = by_wall[len(by_wall) // 2]
    out = {
        **{k: v for k, v in med.items() if k not in ("processes", "stdout_tail")},
        "realtime_factor_runs": [r["realtime_factor"] for r in done],
        "startup_s_runs": [r["startup_s"] for r in done],
        "peak_rss_mb": max(r["peak_rss_mb"] for r in done),
        "peak_rss_mb_runs": [r["peak_rss_mb"] for r in done],
        "rss_hwm_sum_mb": max(r["rss_hwm_sum_mb"] for r in done),
        "processes": med["processes"],
        "summary_line": med["stdout_tail"][0] if med["stdout_tail"] else None,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "memory_how": "peak of the summed resident sets of the parent and its workers, sampled from /proc "
        "every 0.1 s (forked workers' shared pages counted in each); rss_hwm_sum_mb: the sum of each "
        "process's own kernel-kept peak (VmHWM), an upper bound sampling cannot miss",
    }
    from receiver.contracts.capture import read_capture_meta

    meta = read_capture_meta(stem)
    truth = _read_truth_for(meta.meta_path)
    bundles = _bundles(work / f"replay{runs - 1}" / "bundles")
    out["bundles"] = len(bundles)
    if truth is not None:
        out["score"] = score_against_truth(bundles, truth, float(meta.fs_hz), meta.n_frames)
    return out


# ------------------------------------------------------------------------------- service
def _free_port() -> int:
    with socket.socket() as so:
        so.bind(("127.0.0.1", 0))
        return so.getsockname()[1]


def _wait_mark(path: Path, pid: int, phase: str, proc: subprocess.Popen, timeout_s: float = 120.0) -> None:
    t_end = time.monotonic() + timeout_s
    while time.monotonic() < t_end:
        if phase in _marks(path.read_text()).get(pid, {}):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"gla receive exited ({proc.returncode}) before {phase}: {path.read_text()[-2000:]}")
        time.sleep(0.05)
    raise RuntimeError(f"gla receive: no {phase} timing line within {timeout_s:g} s")


def service_realtime(stem: Path, work: Path, stream_s: float, workers: int = 2, tail_s: float = 4.0) -> dict:
    """``gla receive`` (``workers`` workers) fed the first ``stream_s`` of capture ``stem`` at
    real time over ZeroMQ (0.1-s messages, the GLA framing) by a sender in this process.

    CPU: the service's process tree (parent and workers; /proc) from just before the first
    message to just after the last, per stream second and as a fraction of the machine. Latency:
    a bundle's creation time (``created_utc``, when it was handed to the spool) minus the wall
    time of its burst's last sample (the sender paces sample k at about t0 + k / fs); bursts
    ending in the last 3 s of the stream are not counted (the detector releases them only at
    the stop). After the stream, ``tail_s`` of silence, then SIGTERM (a clean stop)."""
    from benchmarks.bench_startup import _toml
    from benchmarks.common import machine
    from benchmarks.proctree import TreeSampler
    from receiver.sources import CaptureSender

    info = capture_info(stem)
    meta = json.loads(Path(str(stem) + ".sigmf-meta").read_text())
    port = _free_port()
    data = work / "service-data"
    cfg = {
        "receiver": {"id": "rx-bench", "substation_id": "s", "workers": workers, "data_dir": str(data)},
        "input": {
            "endpoint": f"tcp://127.0.0.1:{port}",
            "n_channels": info["inputs"],
            "channels": [
                {k: c[k] for k in ("index", "bus", "feeder", "phase")}
                for c in meta["global"].get("gla:channels", meta.get("gla:channels"))
            ],
        },
        "http": {"listen": f"127.0.0.1:{_free_port()}"},
    }
    work.mkdir(parents=True, exist_ok=True)
    cfg_path = work / "receiver.toml"
    cfg_path.write_text(_toml(cfg))
    sender = CaptureSender(
        stem, f"tcp://127.0.0.1:{port}", realtime=True, block_s=0.1, duration_s=stream_s, send_timeout_ms=60000
    )
    cmd = [sys.executable, "-m", "receiver.cli", "receive", "--config", str(cfg_path), "--timings"]
    so, se = work / "service.stdout.txt", work / "service.stderr.txt"
    with open(so, "w") as fo, open(se, "w") as fe:
        p = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=fo, stderr=fe)
        try:
            with TreeSampler(p.pid) as sampler:
                _wait_mark(se, p.pid, "pipeline", p)
                time.sleep(0.5)
                cpu0 = sampler.cpu_now()
                by_pid0 = sampler.cpu_by_pid()
                t0 = time.time()
                rep = sender.run()
                t1 = time.time()
                cpu1 = sampler.cpu_now()
                by_pid1 = sampler.cpu_by_pid()
                time.sleep(tail_s)
                os.kill(p.pid, signal.SIGTERM)
                rc, tree_cpu, _ = _wait(p.pid)
            p.returncode = rc
        finally:
            if p.returncode is None:
                p.kill()
                p.wait()
    err = se.read_text()
    if rc != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit status {rc}: {err[-2000:]}")
    stream = rep.frames / FS
    cores = machine()["cores"] or 1
    lat = _latencies(_bundles(data / "archive"), stem, t0, stream)
    procs = _processes(sampler, _marks(err), p.pid, tree_cpu)
    for r in procs:  # each process's share of the streaming window
        r["cpu_s_while_streaming"] = round(by_pid1.get(r["pid"], 0.0) - by_pid0.get(r["pid"], 0.0), 3)
    return {
        "command": " ".join(["gla", *cmd[3:]]),
        "inputs": info["inputs"],
        "workers": workers,
        "stream_s": round(stream, 2),
        "sending_wall_s": round(t1 - t0, 2),
        "cpu_s_while_streaming": round(cpu1 - cpu0, 3),
        "cpu_s_per_stream_s": round((cpu1 - cpu0) / stream, 4),
        "cpu_fraction_of_machine": round(cpu_fraction(cpu1 - cpu0, stream, cores), 5),
        "cores": cores,
        "tree_cpu_s_whole_run": round(tree_cpu, 3),
        "processes": procs,
        "peak_rss_mb": round(sampler.peak_rss_sum_mb, 1),
        **lat,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "how": "CPU: the service's process tree from /proc, first message to last (the sender's CPU is "
        "this benchmark's, not counted); latency: burst end (its last sample's wall time at real-time "
        "pacing) to the bundle's created_utc; bursts ending in the last 3 s of the stream not counted",
    }


def _latencies(bundles: list, stem: Path, t0: float, stream_s: float, tail_s: float = 3.0) -> dict:
    """Burst end to bundle for every bundle with a clean frame (see :func:`service_realtime`)."""
    import numpy as np

    truth_path = Path(str(stem) + ".truth.json")
    if not truth_path.exists():  # (a capture without its truth: no burst ends to measure from)
        return {"bundles": len(bundles), "latency_bundles": 0, "latency_median_s": None, "latency_max_s": None}
    truth = json.loads(truth_path.read_text())["transmissions"]
    ends_by_frame: dict[str, list[float]] = {}
    for t in truth:
        ends_by_frame.setdefault(t["frame_hex"], []).append(t0 + t["end_sample"] / FS)
    lat = []
    for b in bundles:
        created = b.created_utc.timestamp() if isinstance(b.created_utc, datetime) else float(b.created_utc)
        # an alert is sent twice with the same sealed frame: the latest sending ended before the bundle
        ends = [e for e in ends_by_frame.get(b.frame_hex or "", []) if e <= created]
        if ends and max(ends) - t0 <= stream_s - tail_s:
            lat.append(created - max(ends))
    return {
        "bundles": len(bundles),
        "latency_bundles": len(lat),
        "latency_median_s": round(float(np.median(lat)), 3) if lat else None,
        "latency_p95_s": round(float(np.percentile(lat, 95)), 3) if lat else None,
        "latency_max_s": round(max(lat), 3) if lat else None,
        "latency_s_all": sorted(round(x, 3) for x in lat),
    }
