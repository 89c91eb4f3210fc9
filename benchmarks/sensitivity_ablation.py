"""Ablation of the substation-channel sensitivity gap (issue 2/6 (b)): which impairment costs what.

Runs the trial of :func:`gridsim.trials.trial_substation` (same burst, same seeds, same
level computation) with ChannelConfig variations, and records per trial the channel, the failure
kind, the switching transients that overlap the burst, the transformer cut-off and the receiver's
own Eb/N0 / pre-FEC error count. Seeds are shared between variants (paired comparison).

    nice -n 10 python -m benchmarks.sensitivity_ablation --ebn0 4.5 5.5 --trials 200 --workers 2

Failure kinds: ``missed`` (no result on the right channel/code), ``mistimed`` (a result on the right
channel/code but > 40 samples off), ``crc_fail`` (detected at the right time, CRC failed),
``wrong_frame`` (CRC passed on other bytes).
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import multiprocessing as mp
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import erfcinv

from benchmarks.common import machine, write_json
from dsp.air import params as P
from dsp.rx.chain import InputChain
from gridsim import trials as T

FS = T.FS

VARIANTS: dict[str, dict[str, Any]] = {
    # name: (impulse rate /s/feeder, cutoff factor (None = benchmark draw 0.95..1.3), interferers on, impulses on)
    "bench": dict(impulse_rate=0.2, cutoff_x=None, interferers=True),
    "imp_0.05": dict(impulse_rate=0.05, cutoff_x=None, interferers=True),
    "imp_off": dict(impulse_rate=0.0, cutoff_x=None, interferers=True),
    "no_lowpass": dict(impulse_rate=0.2, cutoff_x=3.0, interferers=True),
    "interf_off": dict(impulse_rate=0.2, cutoff_x=None, interferers=False),
    "harm_noise_only": dict(impulse_rate=0.0, cutoff_x=3.0, interferers=False),
    # proof of concept of a fix (not run by default): the benchmark channel, with narrowband tones
    # excised from the comb output in the frequency domain before the channelizer (non-causal, whole record)
    "bench_excise": dict(impulse_rate=0.2, cutoff_x=None, interferers=True, excise=True),
    # the same idea inside the receiver, causal: InputChain(excise_tones=True) excises the tones from
    # each burst's baseband span before demodulation (dsp.rx.excise). The chain's default since
    # 2026-11-22 (session 3); the results file's rows of "bench" before that date ran without it
    "bench_excise_rx": dict(impulse_rate=0.2, cutoff_x=None, interferers=True, excise_rx=True),
    "bench_no_excise_rx": dict(impulse_rate=0.2, cutoff_x=None, interferers=True, excise_rx=False),
}
DEFAULT_VARIANTS = [v for v in VARIANTS if not (VARIANTS[v].get("excise") or "excise_rx" in VARIANTS[v])]


def _excise_tones(y: np.ndarray, thresh_db: float = 10.0, guard: int = 2) -> np.ndarray:
    """Zero the FFT bins of ``y`` more than ``thresh_db`` over the median power of their 201-bin
    neighbourhood (and ``guard`` bins each side): narrowband interferers and harmonic residue.
    The wanted burst sits ~5 dB under the noise per bin, so it never crosses the threshold."""
    from scipy.ndimage import median_filter

    Y = np.fft.rfft(y)
    p = np.abs(Y) ** 2
    ref = median_filter(p, size=201, mode="nearest") / math.log(2)  # median of exp(1) -> mean
    hit = p > ref * 10 ** (thresh_db / 10)
    if guard:
        hit = np.convolve(hit, np.ones(2 * guard + 1), mode="same") > 0
    Y[hit] = 0.0
    return np.fft.irfft(Y, y.size)


def _classify(got, ch, code, t_start, fr):
    kind, res = "missed", None
    for r in got:
        if r.channel != ch or r.code != code:
            continue
        if abs(r.start_sample - t_start * FS) < 40:
            if r.crc_ok and r.frame == fr:
                return "ok", r
            kind, res = ("wrong_frame" if r.crc_ok else "crc_fail"), r
        elif kind == "missed":
            kind, res = "mistimed", r
    return kind, res


def trial(args) -> dict:
    variant, ebn0_db, seed = args
    v = VARIANTS[variant]
    x, plan, fr, ch, code, t_start, ex = T.substation_signal(
        ebn0_db,
        seed,
        impulse_rate=v["impulse_rate"],
        interferers=v["interferers"],
        cutoff_hz=v["cutoff_x"] * 3600.0 if v["cutoff_x"] is not None else None,
    )
    chan, first, n_burst, phase, cutoff = ex["chan"], ex["first"], ex["n_burst"], ex["phase"], ex["cutoff_hz"]
    c = plan.channel(ch)
    # --- the chain, with the result kept ---
    chain = InputChain(plan, 0, **({"excise_tones": v["excise_rx"]} if "excise_rx" in v else {}))
    got = []
    if v.get("excise"):
        y = np.concatenate([chain.process_comb(x[i : i + 24000]) for i in range(0, x.size, 24000)])
        lock = chain.lock_samples
        y[lock:] = _excise_tones(y[lock:])
        for i in range(0, y.size, 24000):
            got += chain.process_baseband(chain.chan.process(y[i : i + 24000])).bursts
    else:
        for i in range(0, x.size, 24000):
            got += chain.process(x[i : i + 24000]).bursts
    got += chain.flush().bursts
    kind, r = _classify(got, ch, code, t_start, fr)
    imps = chan.impulse_events(max(0, first - int(0.02 * FS)), n_burst + int(0.02 * FS))
    # the impulse's share on this phase (gain) and its peak over the noise RMS
    imp_db = [e["peak_db"] + 20 * math.log10(abs(e["gains"][phase])) for e in imps]
    return dict(
        variant=variant,
        ebn0_db=ebn0_db,
        seed=seed,
        channel=ch,
        kind=kind,
        cutoff_hz=round(cutoff, 1),
        lp_db_at_fc=round(-10 * math.log10(1 + (c.fc_hz / cutoff) ** 4), 3),
        impulses=len(imps),
        impulse_max_db=round(max(imp_db), 1) if imp_db else None,
        impulse_ring_hz=[round(e["ring_hz"]) for e in imps],
        blanked=int(np.sum(chain.chan.blanked)),
        rx_ebn0_db=None if r is None else round(float(r.ebn0_db), 2),
        pre_fec_errors=None if r is None else int(r.pre_fec_bit_errors),
    )


def _implied_loss_db(ebn0_db: float, pre_fec_errors: list[int]) -> float | None:
    """Eb/N0 loss implied by the pooled pre-FEC BER (BPSK, rate 1/2, preamble not counted)."""
    nbits = P.coded_bits(P.FecRate.R1_2) * len(pre_fec_errors)
    if not nbits:
        return None
    ber = max(sum(pre_fec_errors), 0.5) / nbits
    esn0 = erfcinv(2 * ber) ** 2  # BER = Q(sqrt(2 Es/N0)) = erfc(sqrt(Es/N0))/2
    ebn0_eff = 10 * math.log10(esn0 * P.coded_bits(P.FecRate.R1_2) / P.FRAME_BITS)
    return round(ebn0_db - ebn0_eff, 2)


def summarise(rows: list[dict]) -> list[dict]:
    out = []
    keys = sorted({(r["variant"], r["ebn0_db"]) for r in rows}, key=lambda k: (list(VARIANTS).index(k[0]), k[1]))
    for v, e in keys:
        rs = [r for r in rows if r["variant"] == v and r["ebn0_db"] == e]
        fail = [r for r in rs if r["kind"] != "ok"]
        kinds = {k: sum(r["kind"] == k for r in rs) for k in ("missed", "mistimed", "crc_fail", "wrong_frame")}
        by_ch = {}
        for chn in range(3):
            rc = [r for r in rs if r["channel"] == chn]
            by_ch[str(chn)] = dict(
                trials=len(rc),
                errors=sum(r["kind"] != "ok" for r in rc),
                implied_loss_db=_implied_loss_db(
                    e, [r["pre_fec_errors"] for r in rc if r["pre_fec_errors"] is not None]
                ),
                rx_ebn0_median_db=(
                    float(np.median([r["rx_ebn0_db"] for r in rc if r["rx_ebn0_db"] is not None]))
                    if any(r["rx_ebn0_db"] is not None for r in rc)
                    else None
                ),
            )
        with_imp = [r for r in rs if r["impulses"]]
        out.append(
            dict(
                variant=v,
                ebn0_db=e,
                trials=len(rs),
                frame_errors=len(fail),
                fer=len(fail) / len(rs),
                kinds=kinds,
                by_channel=by_ch,
                trials_with_impulse=len(with_imp),
                errors_with_impulse=sum(r["kind"] != "ok" for r in with_imp),
                trials_without_impulse=len(rs) - len(with_imp),
                errors_without_impulse=len(fail) - sum(r["kind"] != "ok" for r in with_imp),
                implied_loss_db_no_impulse=_implied_loss_db(
                    e, [r["pre_fec_errors"] for r in rs if r["pre_fec_errors"] is not None and not r["impulses"]]
                ),
            )
        )
    return out


def inband_interference_db(seed: int) -> float:
    """Noise rise (dB) that the narrowband interferers on the burst's input and inside its channel
    (+- drift) would cause if they acted as white noise over the chip band: 10 log10(1 + sum P_tone
    / (N0 * chip rate)). Recomputed from the trial seed (the draws of the benchmark trial)."""
    from gridsim.channel import ChannelConfig, Layout, SubstationChannel

    rng = np.random.default_rng(seed)
    plan = P.ChannelPlan.default()
    _, ch, _, _, _, _, _ = T.burst(rng, plan)
    chan = SubstationChannel(ChannelConfig(noise_floor_dbc=85.0), Layout(1, 1), seed=int(seed) % 2**31)
    rng.uniform(-100, 100), rng.uniform(0, 2 * np.pi), rng.uniform(0.95, 1.3)  # clock, carrier phase, cut-off
    phase = int(rng.integers(3))
    c = plan.channel(ch)
    n0 = chan.noise_rms[phase] ** 2 / (FS / 2)
    rise = 0.0
    for it in chan.interferers:
        g = abs(it["gains"][phase])
        if g and c.f_low_hz - it["drift_hz"] < it["freq_hz"] < c.f_high_hz + it["drift_hz"]:
            rise += g**2 / 2 / (n0 * P.CHIP_RATE_HZ)
    return 10 * math.log10(1 + rise)


def interference_split(rows: list[dict]) -> list[dict]:
    """FER of each (variant, Eb/N0) cell split by the in-band interferer noise rise of the trial."""
    cache: dict[int, float] = {}
    out = []
    for v, e in sorted({(r["variant"], r["ebn0_db"]) for r in rows}):
        rs = [r for r in rows if r["variant"] == v and r["ebn0_db"] == e]
        for lo, hi in ((0.0, 0.01), (0.01, 0.5), (0.5, 1.5), (1.5, 99.0)):
            sel = []
            for r in rs:
                if r["seed"] not in cache:
                    cache[r["seed"]] = inband_interference_db(r["seed"])
                if lo <= cache[r["seed"]] < hi:
                    sel.append(r)
            out.append(
                dict(
                    variant=v,
                    ebn0_db=e,
                    tone_rise_db=[lo, hi],
                    trials=len(sel),
                    errors=sum(r["kind"] != "ok" for r in sel),
                )
            )
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ebn0", type=float, nargs="+", default=[4.5, 5.5])
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS)
    ap.add_argument("--seed0", type=int, default=7_000_000)
    ap.add_argument("--seeds", type=int, nargs="*", help="explicit trial seeds (instead of seed0 + i)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "sensitivity_ablation.json"))
    ap.add_argument("--append", action="store_true", help="merge with the rows already in --out")
    ap.add_argument("--analyse", action="store_true", help="only add the interferer split to --out")
    a = ap.parse_args(argv)
    if a.analyse:
        import json

        d = json.loads(Path(a.out).read_text())
        d["summary"] = summarise(d["rows"])
        d["interference_split"] = interference_split(d["rows"])
        write_json(Path(a.out), d)
        for x in d["interference_split"]:
            print(x)
        return
    rows: list[dict[str, Any]] = []
    prev_cmd: list[str] = []
    outp = Path(a.out)
    if a.append and outp.exists():
        import json

        old = json.loads(outp.read_text())
        rows, prev_cmd = old["rows"], ([old["command"]] if isinstance(old["command"], str) else old["command"])
    cmd = "nice -n 10 python -m benchmarks.sensitivity_ablation " + " ".join(sys.argv[1:] if argv is None else argv)
    t0 = time.time()
    with mp.get_context("fork").Pool(a.workers) as pool:
        for e in a.ebn0:
            for v in a.variants:
                seeds = a.seeds or [a.seed0 + 100_000 * int(round(e * 10)) + i for i in range(a.trials)]
                args = [(v, e, sd) for sd in seeds]
                res = pool.map(trial, args, chunksize=4)
                rows = [r for r in rows if not (r["variant"] == v and r["ebn0_db"] == e)] + res
                nerr = sum(r["kind"] != "ok" for r in res)
                print(f"{time.time() - t0:7.0f}s {v:16s} Eb/N0 {e:4.1f}: {nerr}/{len(res)} errors", flush=True)
                write_json(
                    outp,
                    dict(
                        command=prev_cmd + [cmd] if prev_cmd else cmd,
                        date=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                        machine=machine(),
                        wall_s=round(time.time() - t0, 1),
                        summary=summarise(rows),
                        rows=rows,
                    ),
                )


if __name__ == "__main__":
    main()
