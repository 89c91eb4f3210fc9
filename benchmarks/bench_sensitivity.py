"""Sensitivity: frame error rate against Eb/N0, whole receive chain (synchronisation included).

(a) white noise: one burst (random frame, channel, code, clock offset within +-100 ppm, carrier
    phase, start time) in white Gaussian noise plus a clean grid fundamental (without it there is
    no grid period T0 to receive with; the comb removes it), fed at 48 kHz through comb -> channelizer ->
    detector -> demodulator -> Viterbi -> CRC. A frame counts as received only if it was
    detected at the right time and its CRC passed with the sent bytes.
(b) substation channel: the same burst injected by gridsim's SubstationChannel (fundamental,
    drifting harmonics, -85 dBc noise floor, switching impulses, interferers, the hub's
    transformer low-pass) on its true input.
ideal: BPSK symbols with perfect timing, carrier and phase in white noise, through the same
    interleaver and soft Viterbi: the coherent soft-decision bound for 256-bit frames.

Eb is the energy per information bit of the data part (the 64-symbol preamble, 11 % of the burst,
is not counted; counting it would move every chain curve 0.47 dB right).
"""
from __future__ import annotations

import math
import multiprocessing as mp
import os

import numpy as np

from dsp.air import frame as F

from dsp.tx import burst
from dsp.tx import modulator
from dsp.air import params as P
from dsp.air.interleave import deinterleave
from dsp.rx.chain import InputChain
from dsp.fec.viterbi import decode_frame

FS = 48000.0
T_BIT = P.data_symbols(P.Modulation.BPSK, P.FecRate.R1_2) / P.SYMBOL_RATE_HZ / P.FRAME_BITS
LEAD_S = 0.45


def _burst(rng: np.random.Generator, plan: P.ChannelPlan):
    header = F.Header(kind=int(rng.integers(6)), hub_id=int(rng.integers(2**32)), counter=int(rng.integers(2**24)))
    fr = F.build_frame(header, bytes(rng.integers(0, 256, P.CIPHERTEXT_BYTES + P.TAG_BYTES, dtype=np.uint8)))
    ch = int(rng.integers(len(plan.channels)))
    code = int(rng.integers(P.CODES_PER_CHANNEL))
    c = plan.channel(ch)
    t_start = LEAD_S + float(rng.uniform(0, 0.05))
    f0 = 60.0 + float(rng.uniform(-0.05, 0.05))
    chips = burst.burst_chips(fr, ch, code)
    first, s = modulator.modulate(chips, fs_hz=FS, fc_hz=c.fc_hz, t_start_s=t_start, grid_period_s=1 / f0,
                                  clock_ppm=float(rng.uniform(-100, 100)), phase_rad=float(rng.uniform(0, 2 * np.pi)))
    return fr, ch, code, t_start, first, s, f0


def _run_chain(x: np.ndarray, plan: P.ChannelPlan, fr: bytes, ch: int, code: int, t_start: float) -> bool:
    chain = InputChain(plan, 0)
    got = []
    for i in range(0, x.size, 24000):
        got += chain.process(x[i:i + 24000]).bursts
    got += chain.flush().bursts
    for r in got:
        if r.channel == ch and r.code == code and abs(r.start_sample - t_start * FS) < 40 and r.crc_ok and r.frame == fr:
            return True
    return False


def trial_awgn(args) -> bool:
    ebn0_db, seed = args
    rng = np.random.default_rng(seed)
    plan = P.ChannelPlan.default()
    fr, ch, code, t_start, first, s, f0 = _burst(rng, plan)
    n = first + s.size + int(0.25 * FS)
    x = np.zeros(n)
    x[first:first + s.size] = s
    sigma = math.sqrt(T_BIT * FS / 2 / 10 ** (ebn0_db / 10))  # unit-power burst
    x += sigma * rng.standard_normal(n)
    # a clean fundamental 85 dB over the noise, as at a substation: the receiver needs the grid to
    # know T0; the comb removes it
    x += sigma * 10 ** (85 / 20) * math.sqrt(2) * np.cos(2 * np.pi * f0 * np.arange(n) / FS + float(rng.uniform(0, 2 * np.pi)))
    return _run_chain(x, plan, fr, ch, code, t_start)


def substation_signal(ebn0_db: float, seed: int, *, impulse_rate: float = 0.2, interferers: bool = True,
                      cutoff_hz: float | None = None):
    """One burst injected on its true input of gridsim's SubstationChannel at ``ebn0_db``: returns
    (samples of that input, plan, frame, channel, code, t_start, extra) with ``extra`` the channel
    object, the burst's first sample and length, the input (phase) and the transformer cut-off.
    The keyword arguments vary the channel for ablations (benchmarks/sensitivity_ablation.py);
    the defaults are the benchmark's."""
    from gridsim.channel import ChannelConfig, Injection, Layout, SubstationChannel
    from gridsim.simulate import ebn0_db as ebn0_of_level

    rng = np.random.default_rng(seed)
    plan = P.ChannelPlan.default()
    fr, ch, code, t_start, first, s, f0 = _burst(rng, plan)
    cfg = ChannelConfig(noise_floor_dbc=85.0, impulse_rate_per_feeder_per_s=impulse_rate,
                        enable_impulses=impulse_rate > 0, enable_interferers=interferers)
    chan = SubstationChannel(cfg, Layout(1, 1), seed=int(seed) % 2**31)
    f0_true = float(chan.grid_frequency(first, 1)[0])
    c = plan.channel(ch)
    first, s = modulator.modulate(burst.burst_chips(fr, ch, code), fs_hz=FS, fc_hz=c.fc_hz, t_start_s=t_start,
                                  grid_period_s=1 / f0_true, clock_ppm=float(rng.uniform(-100, 100)),
                                  phase_rad=float(rng.uniform(0, 2 * np.pi)))
    cutoff = float(rng.uniform(0.95, 1.3) * 3600.0)  # drawn always, so the other draws stay the same
    if cutoff_hz is not None:
        cutoff = float(cutoff_hz)
    level = ebn0_db - ebn0_of_level(0.0, 85.0, FS, c.fc_hz, cutoff)  # level that gives this Eb/N0
    phase = int(rng.integers(3))
    inj = Injection(first, s, 0, 0, phase, level, cutoff, int(seed) % 2**31)
    n = first + s.size + int(0.25 * FS)
    extra = {"chan": chan, "first": first, "n_burst": s.size, "phase": phase, "cutoff_hz": cutoff}
    return chan.render(0, n, [inj])[:, phase], plan, fr, ch, code, t_start, extra


def trial_substation(args) -> bool:
    x, plan, fr, ch, code, t_start, _ = substation_signal(*args)
    return _run_chain(x, plan, fr, ch, code, t_start)


def ideal_fer(ebn0_db: float, frames: int, seed: int = 1) -> float:
    rng = np.random.default_rng(seed)
    es = 10 ** (ebn0_db / 10) * P.FRAME_BITS / P.coded_bits(P.FecRate.R1_2)
    sigma = math.sqrt(1 / (2 * es))
    errs = 0
    for _ in range(frames):
        fr = bytes(rng.integers(0, 256, P.FRAME_BYTES, dtype=np.uint8))
        air = burst.frame_coded_bits(fr)
        soft = (1.0 - 2.0 * air) + sigma * rng.standard_normal(air.size)
        bits = decode_frame(deinterleave(soft), P.FRAME_BITS)
        errs += F.frame_from_bits(bits) != fr
    return errs / frames


def measure(kind: str, points: list[float], max_trials: int, max_errors: int, workers: int, seed0: int = 0,
            progress=None) -> list[dict]:
    fn = trial_awgn if kind == "awgn" else trial_substation
    out = []
    with mp.get_context("fork").Pool(workers) as pool:
        for e in points:
            errs = trials = 0
            batch = max(workers * 4, 8)
            while trials < max_trials and errs < max_errors:
                args = [(e, seed0 + 100_000 * int(e * 10) + trials + i) for i in range(batch)]
                res = pool.map(fn, args)
                trials += len(res)
                errs += sum(1 for ok in res if not ok)
                if progress:
                    progress(kind, e, trials, errs)
            out.append({"ebn0_db": e, "trials": trials, "frame_errors": errs, "fer": errs / trials})
    return out


def ebn0_at_fer(curve: list[dict], target: float = 1e-2) -> float | None:
    """Eb/N0 where the FER curve crosses ``target`` (log-linear interpolation). A point with no
    error counts at its one-sided 95 % upper bound, 3 / trials (the rule of three), so a zero
    never pulls the crossing lower than the trials can show."""
    pts = [(c["ebn0_db"], c["fer"] if c["fer"] > 0 else 3.0 / c.get("trials", 3e6)) for c in curve]
    for (e1, f1), (e2, f2) in zip(pts, pts[1:]):
        if f1 >= target > f2 or (f1 > target and f2 <= target):
            t = (math.log10(target) - math.log10(f1)) / (math.log10(f2) - math.log10(f1))
            return round(e1 + t * (e2 - e1), 3)
    return None


if __name__ == "__main__":
    import sys
    e = float(sys.argv[1]) if len(sys.argv) > 1 else 4.0
    print(measure("awgn", [e], 64, 64, os.cpu_count() or 2, progress=lambda *a: print(a)))
