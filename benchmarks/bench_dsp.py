"""Receive-chain benchmarks of issue [2/6]: sensitivity, comb, false alarms, throughput.

    python -m benchmarks.bench_dsp            # full run (~20-30 min on 2 cores)
    python -m benchmarks.bench_dsp --quick    # smoke run (~2 min): fewer trials, shorter stretches

Writes benchmarks/results/sensitivity.json, benchmarks/results/throughput.json and the plots
benchmarks/results/fer.png, benchmarks/results/throughput.png, benchmarks/results/comb.png
(``--out DIR`` elsewhere).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks import bench_sensitivity as S
from benchmarks.common import default_results, machine, write_json

RESULTS = default_results()
FS = 48000.0


# ------------------------------------------------------------------------------------- comb
def comb_figures(seconds: float, seed: int = 11) -> dict:
    """Harmonic suppression with the simulator's drifting grid, and the loss of a burst's energy."""
    from dsp.air import frame as F
    from dsp.air import params as P
    from dsp.rx.comb import HarmonicComb
    from dsp.tx import burst, modulator
    from gridsim.channel import ChannelConfig, Layout, SubstationChannel

    cfg = ChannelConfig(enable_noise=False, enable_impulses=False, enable_interferers=False, freq_steps_per_hour=30.0)
    chan = SubstationChannel(cfg, Layout(1, 1), seed=seed)
    n = int(seconds * FS)
    x = chan.render(0, n)[:, 0]
    theta = np.cumsum(2 * np.pi * chan.grid_frequency(0, n) / FS)
    comb = HarmonicComb()
    y = comb.process(x)
    seg = slice(int(1.0 * FS), n)
    sup = {}
    for h in range(11, 61):  # every harmonic in 660..3600 Hz
        ref = np.exp(-1j * h * theta[seg])
        sup[h] = 20 * math.log10(abs(np.mean(y[seg] * ref)) / abs(np.mean(x[seg] * ref)))
    # signal loss: bursts on every channel, T0 from the same drifting grid, through a fresh comb
    plan = P.ChannelPlan.default()
    rng = np.random.default_rng(seed)
    losses = []
    for ch in plan.channels:
        fr = F.build_frame(F.Header(kind=4, hub_id=1, counter=1), bytes(rng.integers(0, 256, 21, dtype=np.uint8)))
        t0 = 1.0 / float(chan.grid_frequency(int(1.2 * FS), 1)[0])
        first, s = modulator.modulate(
            burst.burst_chips(fr, ch.index, 0),
            fs_hz=FS,
            fc_hz=ch.fc_hz,
            t_start_s=1.2,
            grid_period_s=t0,
            clock_ppm=float(rng.uniform(-100, 100)),
        )
        sig = np.zeros(first + s.size + int(0.5 * FS))
        sig[first : first + s.size] = s
        c2 = HarmonicComb()
        # the comb follows the real grid: feed it the grid plus the burst and subtract the grid's output
        xin = chan.render(0, sig.size)[:, 0]
        out = c2.process(xin + sig) - HarmonicComb().process(xin)
        e_in = float(np.sum(sig**2))
        losses.append(-10 * math.log10(float(np.sum(out**2)) / e_in))
    return {
        "harmonic_suppression_db": {str(k): round(v, 2) for k, v in sup.items()},
        "harmonic_suppression_db_min": round(-max(sup.values()), 2),
        "signal_loss_db_per_channel": [round(v, 3) for v in losses],
        "signal_loss_db": round(max(losses), 3),
        "f0_range_hz": [float(chan.grid_frequency(0, n).min()), float(chan.grid_frequency(0, n).max())],
        "comb_lock_s": 0.25,
    }


# ---------------------------------------------------------------------------- false alarms
def _fa_worker(args) -> tuple[int, int, float, int]:
    hours, seed = args
    from dsp.air import params as P
    from dsp.rx.chain import InputChain
    from gridsim.channel import ChannelConfig, Layout, SubstationChannel

    chan = SubstationChannel(ChannelConfig(), Layout(1, 1), seed=seed)  # harmonics, noise, impulses, tones
    plan = P.ChannelPlan.default()
    chains = [InputChain(plan, i) for i in range(3)]
    n_total = int(hours * 3600 * FS)
    block = int(10 * FS)
    for pos in range(0, n_total, block):
        x = chan.render(pos, min(block, n_total - pos))
        for i, c in enumerate(chains):
            c.process(x[:, i])
    dets = sum(c.flush().stats.detections for c in chains)
    blanked = sum(int(c.chan.blanked.sum()) for c in chains)
    gated = sum(d.state.gated for c in chains for d in c.dets)
    return dets, 3, blanked / 1500.0, gated


def false_alarms(hours_per_worker: float, workers: int, processes: int | None = None) -> dict:
    """``workers`` seed streams (seeds 1000, 1001, ...) of ``hours_per_worker`` each, 3 inputs per
    stream, run by ``processes`` processes (default: one per stream); the result does not depend
    on ``processes``."""
    with mp.get_context("fork").Pool(processes or workers) as pool:
        res = pool.map(_fa_worker, [(hours_per_worker, 1000 + w) for w in range(workers)])
    dets = sum(r[0] for r in res)
    input_hours = sum(r[1] for r in res) * hours_per_worker
    return {
        "false_detections": dets,
        "input_hours": input_hours,
        "false_detections_per_input_hour": round(dets / input_hours, 4),
        "hours_per_stream": hours_per_worker,
        "streams": workers,
        "seeds": [1000 + w for w in range(workers)],
        "blanked_s_per_input_hour": round(sum(r[2] for r in res) / input_hours, 2),
        "crossings_turned_down_by_the_second_cfar_stage": sum(r[3] for r in res),
    }


# ------------------------------------------------------------------------------- throughput
def _pin_one_core() -> int | None:
    """Pin this process to its first allowed core; returns that core (None where pinning is not possible)."""
    try:
        core = sorted(os.sched_getaffinity(0))[0]
        os.sched_setaffinity(0, {core})
        return core
    except (AttributeError, OSError):
        return None


def _steal_s(core: int | None) -> float:
    """Seconds the hypervisor has taken ``core`` away from this virtual machine since boot (the
    'steal' column of /proc/stat); NaN where there is no such count. A pass during which the
    core was stolen measures the host's other guests as well as the chain."""
    if core is None:
        return float("nan")
    try:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith(f"cpu{core} "):
                    return int(line.split()[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        pass
    return float("nan")


_CANARY = np.random.default_rng(5).standard_normal(1 << 15).astype(np.float32)


def _canary() -> float:
    """Seconds for a fixed workload that is none of this project's code: numpy's sort of the same
    2^15 random float32 values (one thread, ~1 ms). Run after every block of a pass, off its
    clock: when the host's other guests slow the core down (on a shared virtual machine they
    do, by up to 2x within a minute, with no steal counted), the canary slows down at the same
    moments as the chain, and shows which passes measured the host rather than the chain."""
    t = time.perf_counter()
    np.sort(_CANARY, kind="quicksort")
    return time.perf_counter() - t


def _timed_pass(x: np.ndarray, plan, rows: np.ndarray, core: int | None = None) -> dict:
    """One timed pass of the whole chain over the capture ``x`` (samples, inputs), fresh chains:
    wall and CPU seconds, seconds per stage, frames decoded, and the seconds the hypervisor took
    the pinned ``core`` away meanwhile."""
    from dsp.rx.chain import InputChain, deinterleave

    stage = {"de-interleave": 0.0, "comb": 0.0, "channelizer": 0.0, "detector": 0.0, "demod+decode": 0.0}
    chains = [InputChain(plan, i) for i in range(x.shape[1])]
    decoded = 0
    canary = []  # seconds of each canary (see _canary), off the pass's clock
    steal0 = _steal_s(core)
    t_all = time.perf_counter()
    cpu_all = time.process_time()
    for pos in range(0, x.shape[0], int(FS)):
        t = time.perf_counter()
        rows = deinterleave(x[pos : pos + int(FS)], rows)
        stage["de-interleave"] += time.perf_counter() - t
        for i, chain in enumerate(chains):
            t = time.perf_counter()
            y = chain.process_comb(rows[i])  # the comb with the chain's lock gate, as InputChain.process
            t1 = time.perf_counter()
            bb = chain.chan.process(y)
            t2 = time.perf_counter()
            stage["comb"] += t1 - t
            stage["channelizer"] += t2 - t1
            # detector + demodulation through the chain's own bookkeeping
            d0 = chain.det_time_s
            out = chain.process_baseband(bb)
            t3 = time.perf_counter()
            stage["detector"] += chain.det_time_s - d0
            stage["demod+decode"] += (t3 - t2) - (chain.det_time_s - d0)
            decoded += sum(1 for r in out.bursts if r.crc_ok)
        canary.append(_canary())
    for chain in chains:
        t = time.perf_counter()
        d0 = chain.det_time_s
        decoded += sum(1 for r in chain.flush().bursts if r.crc_ok)
        stage["demod+decode"] += time.perf_counter() - t - (chain.det_time_s - d0)
        stage["detector"] += chain.det_time_s - d0
    wall, cpu, off = time.perf_counter() - t_all, time.process_time() - cpu_all, sum(canary)
    return {
        "wall": wall - off,
        "cpu": cpu - off,
        "stage": stage,
        "decoded": decoded,
        "steal": (_steal_s(core) - steal0) * (wall - off) / wall,
        "canary": float(np.median(canary)),
    }


def throughput(seconds: float, inputs: int = 36, repeats: int = 5, work_dir: Path = RESULTS) -> dict:
    """Whole chain on a 36-input capture of the large scenario (bursts included), one core, run as
    the receiver's workers run it: 1-s blocks of the interleaved capture, each de-interleaved into
    one row per input (dsp.rx.chain.deinterleave), then every input's chain, all 36 alive. The
    median of five passes, fresh chains each: passes on this shared machine spread by up to 30 %
    (other jobs take the core), and five make the median steadier than three did."""
    from dsp.air import params as P
    from dsp.rx.chain import InputChain, deinterleave
    from gridsim.simulate import run_scenario

    tmp = work_dir / "_throughput_capture"  # the capture, deleted at the end
    res = run_scenario("large", tmp, duration_s=seconds, progress=False)
    import soundfile as sf

    x, _ = sf.read(str(res.audio_path), dtype="float32")  # the capture's 24-bit samples, exactly
    x = np.ascontiguousarray(x[:, :inputs] / np.float32(0.25))
    plan = P.ChannelPlan.default()
    core = _pin_one_core()
    # compile / load every kernel before the clock starts, the demodulator's too: run inputs
    # until one burst has been demodulated (a stretch without one never reaches them)
    for i in range(x.shape[1]):
        warm = InputChain(plan, i)
        if warm.process(np.ascontiguousarray(x[:, i])).bursts + warm.flush().bursts:
            break
    rows = deinterleave(x[: int(FS)])
    runs = [_timed_pass(x, plan, rows, core) for _ in range(repeats)]
    runs.sort(key=lambda r: r["wall"])
    med = runs[len(runs) // 2]  # the median run by the clock; its stage times
    samples = x.shape[0] * x.shape[1]
    rtf = (x.shape[0] / FS) / med["wall"]  # seconds of 36-input signal processed per second, one core
    # the same by this process's CPU time: what the chain costs when it has the core to itself
    # (the clock figure above also counts the time other jobs on a shared machine took the core)
    out = {
        "realtime_factor_36in_48k_1core": round(rtf, 2),
        "cpu_realtime_factor_36in_48k_1core": round((x.shape[0] / FS) / med["cpu"], 2),
        "best_pass_realtime_factor_36in_48k_1core": round((x.shape[0] / FS) / runs[0]["wall"], 2),
        "realtime_factor_runs": [round((x.shape[0] / FS) / r["wall"], 2) for r in runs],
        # per pass, in the order above: the share of its wall time the hypervisor gave the
        # pinned core to other guests (the host's load, not the chain's)
        "steal_fraction_runs": [round(r["steal"] / r["wall"], 3) for r in runs],
        # per pass: the canary's median time, after each of its blocks (see _canary)
        "canary_us_runs": [round(r["canary"] * 1e6, 1) for r in runs],
        "inputs": inputs,
        "seconds": seconds,
        "block_s": 1.0,
        "msamples_per_s": round(samples / med["wall"] / 1e6, 2),
        "decoded_frames": med["decoded"],
        "ns_per_input_sample": round(med["wall"] / samples * 1e9, 2),
        "stage_msamples_per_s": {k: round(samples / v / 1e6, 1) if v > 0 else None for k, v in med["stage"].items()},
        "stage_ns_per_input_sample": {k: round(v / samples * 1e9, 2) for k, v in med["stage"].items()},
        "how": f"the median of {repeats} passes over 1-s blocks of the interleaved 36-input capture: "
        "de-interleave, then each input's chain (comb, channelizer with impulse blanker, detector "
        "bank, demodulation and decoding of complete bursts); all 36 chains alive, as in a "
        "receiver worker; flush at the end",
    }
    for f in tmp.parent.glob(tmp.name + "*"):
        f.unlink()
    return out


def nojit_throughput(seconds: float) -> dict:
    """The same chain with NUMBA_DISABLE_JIT=1 on a short stretch (a subprocess, one core)."""
    code = f"""
import time, numpy as np, json
from dsp.air import params as P
from dsp.rx.chain import InputChain
fs = 48000.0; n = int({seconds} * fs)
rng = np.random.default_rng(0)
x = np.sqrt(2) * np.cos(2 * np.pi * 60.01 * np.arange(n) / fs) + 1e-4 * rng.standard_normal(n)
c = InputChain(P.ChannelPlan.default())
t = time.perf_counter(); c.process(x); c.flush(); w = time.perf_counter() - t
print(json.dumps({{"wall_s": w, "seconds": {seconds}}}))
"""
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    r = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=str(Path(__file__).resolve().parents[1]),
    )
    d = json.loads(r.stdout.strip().splitlines()[-1])
    rtf_1in = d["seconds"] / d["wall_s"]
    return {
        "numba_disabled_realtime_factor_36in_48k_1core": round(rtf_1in / 36, 5),
        "numba_disabled_stretch_s": seconds,
        "numba_disabled_inputs_measured": 1,
    }


# ------------------------------------------------------------------------------------ plots
def plot_fer(sens: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, label, style in (
        ("ideal", "ideal coherent soft Viterbi (256-bit frames)", "k--"),
        ("awgn", "whole chain, white noise", "o-"),
        ("substation", "whole chain, substation channel", "s-"),
    ):
        pts = [p for p in sens["curves"][key] if p["fer"] > 0]
        if pts:
            (line,) = ax.semilogy([p["ebn0_db"] for p in pts], [p["fer"] for p in pts], style, label=label)
            zero = [p for p in sens["curves"][key] if p["fer"] == 0]
            if zero:  # no error in n trials: drawn at the one-sided 95 % upper bound 3 / n
                ax.semilogy(
                    [p["ebn0_db"] for p in zero],
                    [3.0 / p["trials"] for p in zero],
                    "v",
                    color=line.get_color(),
                    label=f"{label}: no error, 95 % upper bound",
                )
    ax.axhline(1e-2, color="grey", lw=0.5)
    ax.set_xlabel("Eb/N0 (dB, information bit, data part)")
    ax.set_ylabel("frame error rate")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    ax.set_title("Sensitivity: " + sens["command"])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_comb(comb: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = sorted(int(k) for k in comb["harmonic_suppression_db"])
    v = [-comb["harmonic_suppression_db"][str(k)] for k in h]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.bar([k * 60 for k in h], v, width=40)
    ax.axhline(60, color="r", lw=1, label="target 60 dB")
    ax.set_xlabel("harmonic frequency (Hz)")
    ax.set_ylabel("suppression (dB)")
    ax.legend()
    ax.set_title("Tracking comb on the simulator's drifting grid")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _commit() -> str:
    """The checked-out commit (short hash), with '+' when the tree has changes (results aside): a run's code."""
    root = Path(__file__).resolve().parents[1]
    try:
        h = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)benchmarks/results"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return h + ("+" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def append_history(thr: dict, path: Path) -> list[dict]:
    """One line per full throughput run (JSON lines): its passes and their canaries, so that runs
    in quiet and in busy windows of a shared machine can be read side by side. Returns all lines."""
    rec = {
        "date": thr["date"],
        "commit": _commit(),
        "realtime_factor": thr["realtime_factor_36in_48k_1core"],
        "passes": thr["realtime_factor_runs"],
        "canary_us": thr.get("canary_us_runs"),
        "steal_fraction": thr.get("steal_fraction_runs"),
        "stage_ns": thr.get("stage_ns_per_input_sample"),
        "viterbi_mbit_s_median": (thr.get("viterbi") or {}).get("viterbi_mbit_s_median"),
    }
    with open(path, "a") as f:
        f.write(json.dumps(rec) + "\n")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_throughput(thr: dict, path: Path, history: list[dict] | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    st = thr["stage_msamples_per_s"]
    fig, axs = plt.subplots(1, 2 if history else 1, figsize=(12 if history else 7, 3.8), squeeze=False)
    ax = axs[0, 0]
    names = list(st) + ["whole chain"]
    vals = [st[k] or 0 for k in st] + [thr["msamples_per_s"]]
    ax.barh(names, vals)
    ax.axvline(86.4, color="r", lw=1, label="50x real time for 36 inputs")
    ax.set_xlabel("input Msamples/s on one core")
    ax.legend()
    ax.set_title(
        f"Throughput: {thr['realtime_factor_36in_48k_1core']}x real time for 36 inputs (median pass)", fontsize=9
    )
    if history:
        ax = axs[0, 1]
        this = history[-1]["commit"]
        for h in history:
            if not h.get("canary_us"):
                continue
            mine = h["commit"] == this
            ax.scatter(
                h["canary_us"], h["passes"], s=14, alpha=0.9 if mine else 0.35, color="C1" if mine else "C7", label=None
            )
        ax.scatter([], [], color="C1", s=14, label=f"this code ({this})")
        ax.scatter([], [], color="C7", s=14, alpha=0.35, label="earlier code")
        ax.axhline(50, color="r", lw=1, label="target 50x")
        ax.set_xlabel("canary in the same pass, us (numpy sort; slower = busier host)")
        ax.set_ylabel("pass, x real time")
        ax.set_title("Every pass of every run: the chain slows down with the host", fontsize=9)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: few trials, short stretches")
    ap.add_argument("--skip", nargs="*", default=[], choices=["sensitivity", "comb", "false", "throughput"])
    ap.add_argument(
        "--fa-hours",
        type=float,
        default=None,
        help="false alarms: simulated hours per seed stream (2 streams of 3 inputs; default 0.5, --quick 0.02)",
    )
    ap.add_argument(
        "--processes",
        type=int,
        default=None,
        help="processes for the false-alarm streams (default: one per stream; 1 on a shared machine)",
    )
    ap.add_argument(
        "--out",
        type=Path,
        default=RESULTS,
        help="folder of the JSON files, plots and run history (default benchmarks/results; "
        "--quick aimed at full results: its quick/ subfolder)",
    )
    args = ap.parse_args(argv)
    q = args.quick
    from benchmarks.runner import quick_folder

    out = quick_folder(args.out, q)  # a quick run never replaces full results (plots included)
    workers = max(1, min(2, os.cpu_count() or 1))
    command = "python -m benchmarks.bench_dsp" + (" --quick" if q else "")
    out.mkdir(parents=True, exist_ok=True)
    sens_path, thr_path = out / "sensitivity.json", out / "throughput.json"
    sens = json.loads(sens_path.read_text()) if sens_path.exists() else {}
    thr = json.loads(thr_path.read_text()) if thr_path.exists() else {}

    def say(*a):
        print(*a, flush=True)

    if "sensitivity" not in args.skip:
        pts_a = [3.0, 3.5, 4.0, 4.5] if not q else [3.5]
        pts_b = [3.5, 4.0, 4.5, 5.5] if not q else [5.0]
        n_max, e_max = (400, 30) if not q else (16, 16)  # 400 trials: FER 1e-2 to +-0.5 % (1 sigma)
        t = time.perf_counter()
        prog = (lambda kind, e, n, k: print(f"  {kind} {e} dB: {k} errors in {n}", flush=True)) if not q else None
        awgn = S.measure("awgn", pts_a, n_max, e_max, workers, progress=prog)
        say("awgn", awgn)
        sub = S.measure("substation", pts_b, n_max, e_max, workers, progress=prog)
        say("substation", sub)
        ideal = [
            {"ebn0_db": e, "fer": S.ideal_fer(e, 20000 if not q else 2000), "trials": 20000 if not q else 2000}
            for e in (2.0, 2.5, 3.0, 3.5, 4.0, 4.5)
        ]
        say("ideal", ideal)
        sens = {
            "awgn_ebn0_db_at_fer_1e-2": S.ebn0_at_fer(awgn),
            "ideal_ebn0_db_at_fer_1e-2": S.ebn0_at_fer(ideal),
            "substation_ebn0_db_at_fer_1e-2": S.ebn0_at_fer(sub),
            "curves": {"awgn": awgn, "substation": sub, "ideal": ideal},
            "eb_definition": "energy per information bit of the data part; the preamble (0.47 dB) is not counted",
            **{
                k: v
                for k, v in sens.items()
                if k
                in (
                    "harmonic_suppression_db_min",
                    "signal_loss_db",
                    "false_detections_per_input_hour",
                    "comb",
                    "false_alarms",
                )
            },
            "wall_s": round(time.perf_counter() - t, 1),
        }
    if "comb" not in args.skip:
        comb = comb_figures(20.0 if not q else 6.0)
        say("comb", {k: v for k, v in comb.items() if k != "harmonic_suppression_db"})
        sens.update(
            harmonic_suppression_db_min=comb["harmonic_suppression_db_min"],
            signal_loss_db=comb["signal_loss_db"],
            comb=comb,
        )
        plot_comb(comb, out / "comb.png")
    if "false" not in args.skip:
        fa_hours = args.fa_hours if args.fa_hours is not None else (0.5 if not q else 0.02)
        fa = false_alarms(fa_hours, 2, args.processes)
        fa["command"] = " ".join(["python -m benchmarks.bench_dsp"] + list(sys.argv[1:] if argv is None else argv))
        fa["date"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        say("false alarms", fa)
        sens.update(false_detections_per_input_hour=fa["false_detections_per_input_hour"], false_alarms=fa)
    if not {"sensitivity", "comb", "false"} <= set(args.skip):  # something in sensitivity.json ran
        if not {"sensitivity", "comb"} <= set(args.skip):  # the false-alarm block has its own command and date
            sens.update(
                command=command + (" --skip " + " ".join(args.skip) if args.skip else ""),
                date=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            )
        sens.update(machine=machine())
        write_json(sens_path, sens)
        if "curves" in sens:
            plot_fer(sens, out / "fer.png")
    if "throughput" not in args.skip:
        t1 = throughput(20.0 if not q else 4.0, work_dir=out)
        say("throughput", t1)
        t2 = nojit_throughput(1.0 if not q else 0.3)
        say("nojit", t2)
        from benchmarks import bench_viterbi

        v = bench_viterbi.run(quick=q)
        thr = {
            **t1,
            **t2,
            "viterbi": v,
            "command": command + (" --skip " + " ".join(args.skip) if args.skip else ""),
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": machine(),
        }
        write_json(thr_path, thr)
        history = append_history(thr, out / "throughput_runs.jsonl") if not q else None
        plot_throughput(thr, out / "throughput.png", history)
    say(f"wrote {sens_path} and {thr_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
