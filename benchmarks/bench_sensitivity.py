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

The trials (a) and (b) are :mod:`gridsim.trials`'s (``trial_awgn``, ``trial_substation``); this
module runs them over Eb/N0 points and seeds (``measure``) and finds where the FER crosses 1e-2.

Eb is the energy per information bit of the data part (the 64-symbol preamble, 11 % of the burst,
is not counted; counting it would move every chain curve 0.47 dB right).
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os

import numpy as np

from dsp.air import frame as F
from dsp.air import params as P
from dsp.air.interleave import deinterleave
from dsp.fec.viterbi import decode_frame
from dsp.tx import burst

# the trials (a burst in a channel, through the receive chain) are gridsim's; their names stay
# importable from here
from gridsim.trials import FS, LEAD_S, T_BIT, substation_signal, trial_awgn, trial_substation  # noqa: F401


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


def measure(
    kind: str, points: list[float], max_trials: int, max_errors: int, workers: int, seed0: int = 0, progress=None
) -> list[dict]:
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
