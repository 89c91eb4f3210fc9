"""Narrowband-interference excision on a burst's baseband span (frequency domain).

Non-harmonic tones (the simulator's "interferers": 10-30 dB over the noise in a 1-Hz bin) pass the
comb, and the despreader (spreading factor 4) only spreads them over the chip band: a tone 27 dB
over N0 in 1 Hz inside the 900-Hz channel adds ~2 dB of noise to the burst
(benchmarks/sensitivity_ablation.py). The burst itself is spread over ~900 Hz and sits under the
noise per FFT bin at the Eb/N0 where frames start failing, so a bin far above its neighbourhood
is interference: zeroing it (and a guard on each side) costs the burst a few bins' worth of energy
(0.3 Hz each over a 3.3 s span) and removes the tone.

Samples that are exact zeros (impulse blanking, see dsp.channelizer) are kept exact zeros: the
demodulator uses them to find blanked symbols.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import median_filter

THRESH_DB = 10.0  #: a bin this far over its neighbourhood's mean power is excised
NEIGHBOURHOOD = 101  #: bins in the running median (about 30 Hz over a 3.3 s span at 1500 Hz)
GUARD = 2  #: extra bins excised on each side of a hit (the tone drifts a little over a burst)


def excise_tones(r: np.ndarray, thresh_db: float = THRESH_DB, neighbourhood: int = NEIGHBOURHOOD,
                 guard: int = GUARD) -> tuple[np.ndarray, int]:
    """(``r`` with the narrowband peaks of its spectrum zeroed, number of bins zeroed)."""
    r = np.asarray(r, dtype=np.complex128)
    if r.size < 4 * neighbourhood:
        return r, 0
    R = np.fft.fft(r)
    p = np.abs(R) ** 2
    # median of an exponential variable is ln 2 times its mean
    ref = median_filter(p, size=neighbourhood, mode="wrap") / math.log(2.0)
    hit = p > ref * 10.0 ** (thresh_db / 10.0)
    if not hit.any():
        return r, 0
    if guard:
        k = np.ones(2 * guard + 1)
        hit = np.convolve(np.concatenate([hit[-guard:], hit, hit[:guard]]).astype(float), k, mode="valid") > 0
    R[hit] = 0.0
    out = np.fft.ifft(R)
    out[r == 0] = 0.0
    return out, int(hit.sum())
