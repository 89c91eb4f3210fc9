"""Receiver benchmarks: feeder/phase identification against crosstalk, message success on the
demo scenario, the kill test, start-up (bench_startup), and the product beside the chain, in
one run (benchmarks/bench_product.py): the receive chain alone on one core, ``gla replay`` of a
600-s 36-input capture of the large scenario on 2 cores (by the clock, start-up included, with
the peak resident set of its process tree), where its time goes (per stage: stage_profile.py;
per process), ``gla receive`` fed 36 inputs at real time (CPU as a fraction of the machine,
burst end to bundle latency), and the simulator's real-time factor on one core.

    python -m benchmarks.bench_receiver                      # full (15 min with --skip phase at load
                                                             # 2-8; the phase stage ~50 min at load 8)
    python -m benchmarks.bench_receiver --capture STEM       # reuse a 600-s capture of the large scenario
    python -m benchmarks.bench_receiver --quick              # smoke (~3 min), into a temporary directory
    python -m benchmarks.bench_receiver --skip phase kill    # stages: phase demo chain large profile
                                                             # service simulate startup kill

Writes receiver.json and the plots confusion.png, replay_stages.png and replay_processes.png
into benchmarks/results (``--out DIR`` elsewhere). A --quick run never writes there unless
given ``--out``: it writes into a new temporary directory and names it.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from benchmarks.common import default_results, machine, write_json

RESULTS = default_results()
FS = 48000.0


SLOTS_PER_TRIAL = 8  # slots in one rendered stretch (rendering the channel is most of a trial's cost)
BURSTS_PER_TRIAL = SLOTS_PER_TRIAL * 3  # a burst on each of the three channels in every slot


def _phase_trial(args) -> list[tuple[float, int, int, str]]:
    """``SLOTS_PER_TRIAL`` slots (4 s) with a burst on each of the three channels in every one, each
    burst on a random phase of a random feeder of a two-feeder bus (random code, level, clock
    offset, carrier phase and start within the slot's +-0.2 s), with
    crosstalk exactly ``margin`` dB below on the other phases of the same feeder and margin + 10 dB
    below on the other feeder's phases. The stretch runs through the receiver as the service runs
    it: the chains of ``receiver.pipeline`` in 1-s blocks, then the Grouper.
    Returns [(margin, true input, inferred input or -1, outcome)] per burst."""
    margin_db, seed = args
    from dsp.air import frame as F
    from dsp.air import params as P
    from dsp.tx import burst, modulator
    from gridsim.channel import ChannelConfig, Injection, Layout, SubstationChannel
    from receiver.grouping import Grouper, InputInfo
    from receiver.pipeline import _Chains

    rng = np.random.default_rng(seed)
    plan = P.ChannelPlan.default()
    cfg = ChannelConfig(
        crosstalk_same_feeder_db=(-margin_db, -margin_db),
        crosstalk_other_feeder_db=(-margin_db - 10, -margin_db - 10),
        impulse_rate_per_feeder_per_s=0.05,
    )
    layout = Layout(1, 2)
    chan = SubstationChannel(cfg, layout, seed=int(seed))
    sent: list[tuple[str, int]] = []
    injections: list[Injection] = []
    for k, ch in [(k, ch) for k in range(SLOTS_PER_TRIAL) for ch in range(3)]:
        code = int(rng.integers(4))
        fr = F.build_frame(
            F.Header(kind=4, hub_id=int(rng.integers(2**31)), counter=1),
            bytes(rng.integers(0, 256, 21, dtype=np.uint8)),
        )
        t_start = 0.5 + P.SLOT_S * k + float(rng.uniform(-0.2, 0.2))
        f0 = float(chan.grid_frequency(int(t_start * FS), 1)[0])
        first, s = modulator.modulate(
            burst.burst_chips(fr, ch, code),
            fs_hz=FS,
            fc_hz=plan.channel(ch).fc_hz,
            t_start_s=t_start,
            grid_period_s=1 / f0,
            clock_ppm=float(rng.uniform(-100, 100)),
            phase_rad=float(rng.uniform(0, 2 * np.pi)),
        )
        feeder, phase = int(rng.integers(2)), int(rng.integers(3))
        level = float(rng.uniform(-100.0, -94.0))  # Eb/N0 ~ 9..15 dB on the true input
        injections.append(
            Injection(first, s, 0, feeder, phase, level, float(rng.uniform(3500, 4600)), int(seed) + len(injections))
        )
        sent.append((fr.hex(), layout.input_index(0, feeder, "ABC"[phase])))
    n = max(j.start_sample + j.samples.size for j in injections) + int(2.5 * FS)
    inputs = [InputInfo(i, b, f, "ABC"[p]) for i, (b, f, p) in enumerate(layout.inputs)]
    g = Grouper(plan, inputs, receiver_id="bench", substation_id="s")
    chains = _Chains(plan, list(range(layout.n_inputs)), FS)
    bundles = []
    for a in range(0, n, int(FS)):
        bundles += g.add_output(chains.run(0, a, chan.render(a, min(int(FS), n - a), injections)))
    bundles += g.add_output(chains.run(0, n, None, flush=True))
    bundles += g.flush()
    out = []
    for frame_hex, true_in in sent:
        mine = [b for b in bundles if b.crc_ok and b.frame_hex == frame_hex]
        if not mine or not mine[0].inferred:
            out.append((margin_db, true_in, -1, "missed"))
            continue
        inf = mine[0].inferred
        got = layout.input_index(inf.location.bus, inf.location.feeder, inf.location.phase)
        outcome = "ambiguous" if inf.ambiguous else "right" if got == true_in else "wrong"
        out.append((margin_db, true_in, got, outcome))
    return out


def phase_id(trials_per_margin: dict[float, int], workers: int) -> dict:
    """``trials_per_margin``: bursts to send per crosstalk margin (rounded up to whole trials)."""
    jobs = [
        (m, 10_000 * int(m * 10) + k) for m, n in trials_per_margin.items() for k in range(-(-n // BURSTS_PER_TRIAL))
    ]
    res = []
    with mp.get_context("fork").Pool(workers) as pool:
        for r in tqdm(pool.imap_unordered(_phase_trial, jobs), total=len(jobs), desc="phase id", unit="trial"):
            res += r
    per: dict[str, dict[str, Any]] = {}
    confusion = np.zeros((6, 7), int)  # true input (0..5) x inferred (0..5, 6 = ambiguous/missed)
    for m, t, g, outcome in res:
        d = per.setdefault(str(m), {"trials": 0, "right": 0, "wrong": 0, "ambiguous": 0, "missed": 0})
        d["trials"] += 1
        d[outcome] += 1
        if m >= 6:
            confusion[t, g if outcome in ("right", "wrong") else 6] += 1
    for d in per.values():
        decided = d["trials"] - d["missed"]
        d["accuracy"] = d["right"] / decided if decided else None
        d["wrong_rate"] = d["wrong"] / decided if decided else None
    big = [v for k, v in per.items() if float(k) >= 6]
    tot = sum(v["trials"] - v["missed"] for v in big)
    right = sum(v["right"] for v in big)
    return {
        "per_margin_db": per,
        "confusion_margin_ge_6db": confusion.tolist(),
        "phase_id_accuracy_margin_6db": right / tot if tot else None,
        "phase_id_wrong_rate_margin_6db": sum(v["wrong"] for v in big) / tot if tot else None,
        "phase_id_trials_margin_6db": tot,
        # one-sided 95 % lower bound on the accuracy (Clopper-Pearson): what the trials show
        "phase_id_accuracy_margin_6db_lower95": _lower_bound(right, tot) if tot else None,
        "bursts_per_trial": BURSTS_PER_TRIAL,
    }


def _lower_bound(k: int, n: int, conf: float = 0.95) -> float:
    from scipy.stats import beta

    return float(beta.ppf(1 - conf, k, n - k + 1)) if k > 0 else 0.0


def scenario_success(name: str, seconds: float, workers: int, tmp: Path) -> dict:
    from gridsim.simulate import run_scenario
    from receiver.replay import replay

    res = run_scenario(name, tmp / name, duration_s=seconds, progress=False)
    rp = replay(res.audio_path.with_suffix(""), workers=workers, progress=False)
    s = rp.score or {}
    return {
        "scenario": name,
        "seconds": seconds,
        "inputs": rp.n_inputs,
        "sent": s.get("sent"),
        "decoded": s.get("decoded"),
        "message_success_rate": s.get("message_success_rate"),
        "feeder_phase_accuracy": s.get("feeder_phase_accuracy"),
        "ambiguous": s.get("ambiguous"),
        "wrong_location": s.get("wrong_location"),
        "extra_bundles": s.get("extra_bundles"),
        "replay_realtime_factor": round(rp.realtime_factor, 2),
        "replay_wall_s": round(rp.wall_s, 1),
        "sent_ebn0_db_median": float(np.median([r["ebn0_db"] for r in s.get("rows", [])])) if s.get("rows") else None,
        "success_by_ebn0": _by_ebn0(s.get("rows", [])),
    }


def _simulate_child(scenario: str, seconds: float, stem: str, cpu: int | None, q) -> None:
    """In a fresh process (on one core when ``cpu`` is given): a 1-s warm-up (numba's cache, the
    scenario's imports), then the timed run; puts (wall_s, cpu_s, n_inputs, bursts) on ``q``."""
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    from gridsim.simulate import run_scenario

    run_scenario(scenario, stem + "-warm", duration_s=1.0, progress=False)
    t0, c0 = time.perf_counter(), time.process_time()
    res = run_scenario(scenario, stem, duration_s=seconds, progress=False)
    q.put((time.perf_counter() - t0, time.process_time() - c0, res.scenario.n_inputs, len(res.transmissions)))


def simulate_speed(seconds: float, tmp: Path, scenario: str = "large") -> dict:
    """Simulator real-time factor on one core: ``run_scenario`` (population, schedule, bursts,
    channel, PCM_24 capture, sidecar and truth) of ``seconds`` of the 36-input scenario in a
    process pinned to one core. The CPU-time factor is reported too: on a shared machine the
    wall clock also counts other processes' time on that core."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_simulate_child, args=(scenario, seconds, str(tmp / f"sim-{scenario}"), 0, q))
    # one core means one thread too: the affinity set in the child holds only for threads made
    # after it, and numpy's BLAS starts its threads when the spawned child unpickles its target
    saved = {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    os.environ.update(dict.fromkeys(saved, "1"))
    try:
        p.start()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    wall_s, cpu_s, n_inputs, bursts = q.get()
    p.join()
    return {
        "scenario": scenario,
        "seconds": seconds,
        "inputs": n_inputs,
        "bursts": bursts,
        "wall_s": round(wall_s, 2),
        "cpu_s": round(cpu_s, 2),
        "realtime_factor_wall": round(seconds / wall_s, 2),
        "realtime_factor_cpu": round(seconds / cpu_s, 2),
        "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }


def _by_ebn0(rows: list[dict]) -> dict:
    out = {}
    for lo in range(-6, 20, 2):
        sel = [r for r in rows if lo <= r["ebn0_db"] < lo + 2]
        if sel:
            out[f"{lo}..{lo + 2}"] = {"sent": len(sel), "decoded": sum(r["decoded"] for r in sel)}
    return out


def plot_confusion(pid: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = np.array(pid["confusion_margin_ge_6db"])
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    a1.imshow(m, cmap="Blues")
    labels = ["f0 A", "f0 B", "f0 C", "f1 A", "f1 B", "f1 C"]
    a1.set_xticks(range(7), labels + ["amb."], rotation=45)
    a1.set_yticks(range(6), labels)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            if m[i, j]:
                a1.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=8)
    a1.set_xlabel("inferred")
    a1.set_ylabel("true input")
    a1.set_title("feeder/phase, crosstalk >= 6 dB down")
    ms = sorted(pid["per_margin_db"], key=float)
    for key, lab in (("right", "right"), ("ambiguous", "ambiguous"), ("wrong", "wrong")):
        a2.plot(
            [float(k) for k in ms],
            [pid["per_margin_db"][k][key] / pid["per_margin_db"][k]["trials"] for k in ms],
            "o-",
            label=lab,
        )
    a2.set_xlabel("crosstalk margin (dB below the true input)")
    a2.set_ylabel("fraction of trials")
    a2.legend()
    a2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


STAGES = ("phase", "demo", "chain", "large", "profile", "service", "simulate", "startup", "kill")


def results_dir(quick: bool, out: Path | None) -> tuple[Path, bool]:
    """Where a run writes (its JSON and plots), and whether that is a fresh temporary directory:
    ``--out`` if given, else the committed results, except for a --quick run, which is a smoke
    run and never overwrites them (a new temporary directory, kept and named at the end)."""
    if out is not None:
        return Path(out), False
    if quick:
        return Path(tempfile.mkdtemp(prefix="gla-bench-receiver-quick-")), True
    return RESULTS, False


def side_by_side(out: dict, ran: set[str]) -> dict:
    """The ratio replay / (2 x chain) when both were measured in this run; dropped when only one
    of them was (it compares figures of one run, on one machine in one state)."""
    from benchmarks.bench_product import replay_to_chain_ratio

    if {"chain", "large"} <= ran:
        out["replay_to_chain_ratio"] = replay_to_chain_ratio(
            out["replay_realtime_factor_36in_48k_2cores"], out["chain_realtime_factor_36in_1core"]
        )
        # the same by CPU time: the chain's CPU seconds per stream second over the replay's whole
        # tree's (1.0: the replay spends no CPU beyond the chain's); on a shared machine the
        # clock also counts the other jobs, CPU time much less
        chain_cpu = 1.0 / out["chain"]["cpu_realtime_factor_36in_48k_1core"]
        replay_cpu = out["large"]["tree_cpu_s"] / out["large"]["capture_s"]
        out["replay_to_chain_cpu_ratio"] = round(chain_cpu / replay_cpu, 3)
    elif ran & {"chain", "large"}:
        out.pop("replay_to_chain_ratio", None)
        out.pop("replay_to_chain_cpu_ratio", None)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run; writes into a temporary directory unless --out")
    ap.add_argument("--skip", nargs="*", default=[], choices=[*STAGES, "latency"], help="stages not to run")
    ap.add_argument(
        "--capture",
        type=Path,
        default=None,
        help="an existing capture (stem) of the large scenario for the large, profile and service stages, "
        "used in place (default: a 600-s one simulated into a temporary directory, 30 s with --quick)",
    )
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="directory of receiver.json and the plots (default benchmarks/results; --quick: a new temporary one)",
    )
    ap.add_argument("--replay-runs", type=int, default=None, help="timed replays of the capture (default 3, quick 1)")
    ap.add_argument(
        "--service-seconds", type=float, default=None, help="stream fed to gla receive (default 90, quick 15)"
    )
    args = ap.parse_args(argv)
    q = args.quick
    skip = set(args.skip) | ({"service"} if "latency" in args.skip else set())
    if args.capture is not None:
        args.capture = Path(str(args.capture).removesuffix(".wav").removesuffix(".sigmf-meta"))
        if not Path(str(args.capture) + ".sigmf-meta").exists():
            ap.error(f"--capture {args.capture}: no {args.capture}.sigmf-meta")
    workers = max(1, min(2, os.cpu_count() or 1))
    res_dir, temporary = results_dir(q, args.out)
    res_dir.mkdir(parents=True, exist_ok=True)
    path = res_dir / "receiver.json"
    out = json.loads(path.read_text()) if path.exists() else {}
    ran: set[str] = set()
    walls: dict[str, float] = {}
    t_run = time.perf_counter()
    from benchmarks import bench_product as BP
    from benchmarks import product_plots

    def stage(name: str) -> bool:
        if name in skip:
            return False
        ran.add(name)
        walls[name] = time.perf_counter()
        print(f"== stage {name}", flush=True)
        return True

    def done(name: str) -> None:
        walls[name] = round(time.perf_counter() - walls[name], 1)
        print(f"== stage {name}: {walls[name]} s", flush=True)

    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        if stage("phase"):
            # at >= 6 dB the target is 99.9 % right: 3,000+ bursts without an error put the one-sided
            # 95 % lower bound at 99.9 %; the closer margins only show the trend
            margins = (
                {0.0: 48, 1.0: 48, 2.0: 48, 3.0: 48, 4.0: 48, 6.0: 2400, 10.0: 360, 20.0: 360}
                if not q
                else {1.0: 24, 6.0: 24, 20.0: 24}
            )
            pid = phase_id(margins, workers)
            print("phase id", {k: v for k, v in pid.items() if k != "confusion_margin_ge_6db"}, flush=True)
            out.update(
                phase_id_accuracy_margin_6db=pid["phase_id_accuracy_margin_6db"],
                phase_id_wrong_rate_margin_6db=pid["phase_id_wrong_rate_margin_6db"],
                phase_id=pid,
            )
            plot_confusion(pid, res_dir / "confusion.png")
            done("phase")
        if stage("demo"):
            d = scenario_success("demo", 300.0 if not q else 30.0, workers, tmp)
            print("demo", d, flush=True)
            # bundles that matched no transmission sent (ghosts of strong bursts, false alarms): target 0
            out.update(
                message_success_rate_demo=d["message_success_rate"],
                bundles_matching_nothing_sent_demo=d["extra_bundles"],
                demo=d,
            )
            done("demo")
        if stage("chain"):
            ch = BP.chain_speed(4.0 if q else 20.0, 3 if q else 5, tmp)
            print("chain", {k: ch[k] for k in ("realtime_factor_36in_48k_1core", "realtime_factor_runs")}, flush=True)
            out.update(chain_realtime_factor_36in_1core=ch["realtime_factor_36in_48k_1core"], chain=ch)
            done("chain")
        capture, capture_note = args.capture, str(args.capture)
        if capture is None and {"large", "profile", "service"} - skip:
            t = time.perf_counter()
            made = BP.make_capture(tmp / "large-capture", 30.0 if q else 600.0)
            capture = Path(made["stem"])
            capture_note = f"simulated in the run: {made['command']}"
            print(f"{capture_note} ({made['wall_s']} s)", flush=True)
            walls["capture"] = round(time.perf_counter() - t, 1)
        if stage("large"):
            assert capture is not None
            rp = BP.replay_speed(capture, tmp / "replays", runs=args.replay_runs or (1 if q else 3), workers=workers)
            s = rp.pop("score", None) or {}
            rp.update({k: s.get(k) for k in ("sent", "decoded", "message_success_rate", "feeder_phase_accuracy")})
            rp.update(
                extra_bundles=s.get("extra_bundles"),
                success_by_ebn0=_by_ebn0(s.get("rows", [])),
                capture=capture_note,
            )
            print("large", {k: v for k, v in rp.items() if k not in ("processes", "success_by_ebn0")}, flush=True)
            out.update(
                message_success_rate_large=rp["message_success_rate"],
                replay_realtime_factor_36in_48k_2cores=rp["realtime_factor"],
                replay_capture_s=rp["capture_s"],
                replay_peak_rss_mb=rp["peak_rss_mb"],
                large=rp,
            )
            done("large")
        if stage("profile"):
            assert capture is not None
            from benchmarks.stage_profile import profile_in_child

            pr = profile_in_child(capture, 10.0 if q else 60.0)
            print("profile", pr["stage_ns_per_input_sample"], flush=True)
            out.update(stage_profile=pr)
            done("profile")
        if stage("service"):
            assert capture is not None
            sv = BP.service_realtime(capture, tmp / "service", args.service_seconds or (15.0 if q else 90.0), workers)
            print("service", {k: v for k, v in sv.items() if k not in ("processes", "latency_s_all")}, flush=True)
            out.update(
                service_cpu_fraction_36in_realtime=sv["cpu_fraction_of_machine"],
                service_latency_median_s=sv["latency_median_s"],
                service_latency_max_s=sv["latency_max_s"],
                latency_s_max=sv["latency_max_s"],
                service=sv,
            )
            out.pop("latency", None)  # (the 12-input demo stream this stage replaces)
            done("service")
        if stage("simulate"):
            sim = simulate_speed(20.0 if q else 120.0, tmp)
            print("simulate", sim, flush=True)
            out.update(simulate_realtime_factor_36in_1core=sim["realtime_factor_wall"], simulate=sim)
            done("simulate")
    if stage("startup"):
        from benchmarks import bench_startup

        su = bench_startup.run(runs=3 if q else 5)
        print("startup", {k: su[k] for k in ("replay_startup_s", "receive_startup_s")}, flush=True)
        out.update(replay_startup_s=su["replay_startup_s"], receive_startup_s=su["receive_startup_s"], startup=su)
        done("startup")
    if stage("kill"):
        try:
            from benchmarks import bench_kill

            kill_kw: dict[str, Any] = {"n_bundles": 60} if q else {}
            k = bench_kill.run(**kill_kw)
            print("kill", k, flush=True)
            out.update(
                bundles_lost_in_kill_test=k["bundles_lost_in_kill_test"],
                bundles_duplicated_in_kill_test=k["bundles_duplicated_in_kill_test"],
                kill_test=k,
            )
        except ImportError as e:
            print(f"kill test not available: {e}")
        done("kill")
    side_by_side(out, ran)
    if "large" in out and "stage_profile" in out and ran & {"large", "profile"}:
        product_plots.plot_stages(out["stage_profile"], out["large"], res_dir / "replay_stages.png")
    if "large" in ran:
        product_plots.plot_processes(out["large"], out, res_dir / "replay_processes.png")
    cmd = (
        "python -m benchmarks.bench_receiver"
        + (" --quick" if q else "")
        + (f" --capture {args.capture}" if args.capture else "")
        + (" --skip " + " ".join(args.skip) if args.skip else "")
    )
    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    mach = machine()
    # which run each stage's figures come from (a --skip run keeps the others' earlier figures)
    stages = dict(out.get("stage_runs") or {})
    stages.pop("latency", None)
    for st in ran:
        stages[st] = {"command": cmd, "date": now, "machine": mach, "wall_s": walls.get(st)}
    out.update(
        command=cmd,
        date=now,
        machine=mach,
        stage_runs=stages,
        run_wall_s=round(time.perf_counter() - t_run, 1),
        run_capture_simulated_s=walls.get("capture"),
    )
    write_json(path, out)
    print(f"wrote {path}" + (" (a quick run: the committed results are untouched)" if temporary else ""))
    print(f"whole run {out['run_wall_s']} s; stages: {', '.join(f'{k} {v} s' for k, v in walls.items())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
