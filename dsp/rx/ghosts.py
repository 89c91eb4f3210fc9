"""Ghost detections: a detection that a decoded burst's own correlation explains.

A strong burst re-triggers the preamble correlators of its channel inside itself: its data
symbols, spread by its code, correlate with every code's preamble template, most where the code
phase and the symbol boundary realign (every lcm(127, 4) = 508 chips, 0.7056 s; the last such
lag whose template still fits in the burst is 2032 chips, 2.822 s after chip 0). The detector's
rival check (:func:`dsp.rx.detect.templates.sidelobe_bound`) turns most of these down, but not
all: its bound is a fixed SIDELOBE_DB under the burst's peak, the data's correlation with a
preamble is a random sum that reaches -8 dB now and then, and the statistic is normalised by
each block's noise, which a block mostly past the burst's end puts lower than the peak's block
(so the same sidelobe reads several dB stronger there). Such a detection was demodulated, failed
its CRC and became a bundle that matched nothing sent.

Once a burst is decoded (CRC passed) its chips are known, so what it puts on the correlator of
any code at any lag can be computed instead of bounded: :class:`DecodedSpan` keeps a decoded
burst's chips, start, chip period and correlation level, and :meth:`DecodedSpan.explains` tells
whether a later detection on the same channel, starting inside that burst, is no stronger than
the burst's own correlation with that detection's template at that lag (chip-level, both paths
of the harmonic-null comb, a margin for the pulse shape, timing and noise). A second burst at a
comparable level (another hub on the same code) is far above that prediction and goes on to be
demodulated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from dsp.air import params as P
from dsp.air.codes import chip_code, preamble_bits
from dsp.rx.detect import Detection
from dsp.tx.burst import burst_chips

MARGIN_DB = 3.0  # over the chip-level prediction: pulse shape, fractional lag, the peak's own loss
SAMPLES_PER_CHIP = 48000.0 / P.CHIP_RATE_HZ  # input samples per chip at fs = 48 kHz (nominal clock)


@lru_cache(maxsize=64)
def preamble_chips(channel: int, code: int) -> np.ndarray:
    """The preamble's chips (64 symbols x 4 chips, +-1) of one code: what its template carries."""
    n = P.PREAMBLE_SYMBOLS * P.CHIPS_PER_SYMBOL
    bits = (1.0 - 2.0 * preamble_bits().astype(np.float64)).repeat(P.CHIPS_PER_SYMBOL)
    out = bits * np.asarray(chip_code(channel, code), np.float64)[np.arange(n) % P.CODE_LENGTH]
    out.setflags(write=False)
    return out


@dataclass(frozen=True)
class DecodedSpan:
    """A decoded (CRC-ok) burst of one channel, as the ghost check needs it."""

    channel: int
    code: int
    start_sample: float  # input index of the centre of chip 0
    end_sample: float  # input index one chip past its last chip (two-path tail included)
    chip_samples: float  # input samples per chip (its clock offset included)
    level: float  # its correlation peak, |r|^2 / E_p (the detection's lambda x noise power)
    chips: np.ndarray  # its chips, as sent
    t0_chips: int  # the second path's delay in chips (one grid period)

    @classmethod
    def of(
        cls,
        channel: int,
        code: int,
        start_sample: float,
        frame: bytes,
        clock_ppm: float,
        plan: P.ChannelPlan,
        level: float = 0.0,
    ) -> DecodedSpan:
        """The span of ``frame`` sent on ``channel``/``code`` from ``start_sample``; ``level`` is
        its detection's lambda x noise power (0 where it was not detected: only
        :meth:`predicted_ratio` is then of use)."""
        ch = plan.channel(channel)
        chips = np.asarray(burst_chips(frame, channel, code, ch.modulation, ch.fec))
        spc = SAMPLES_PER_CHIP / (1.0 + clock_ppm * 1e-6)
        t0 = int(round(P.CHIP_RATE_HZ / plan.grid_hz))
        end = start_sample + (chips.size + t0) * spc
        return cls(channel, code, start_sample, end, spc, level, chips, t0)

    def inside(self, channel: int, start_sample: float) -> bool:
        """Whether a burst on ``channel`` starting at ``start_sample`` starts inside this one (after its chip 0)."""
        return channel == self.channel and self.start_sample < start_sample < self.end_sample

    def covers(self, det: Detection) -> bool:
        """Whether ``det`` is on this burst's channel and starts inside it (after its chip 0)."""
        return self.inside(det.channel, det.start_sample)

    def predicted_ratio(self, code: int, start_sample: float) -> float:
        """The largest |correlation|^2 this burst puts on code ``code``'s preamble template placed
        at ``start_sample`` (the two integer chip lags around it), relative to its own peak.
        Chip level: with Nyquist pulses, the correlation at a chip lag is the chip sequences'
        correlation; each side has the two paths (0 and T0), so the lag's value is bounded by
        2 |R(d)| + |R(d - T0)| + |R(d + T0)| against the peak's 2 x 256."""
        p = preamble_chips(self.channel, code)
        n = p.size
        x = (start_sample - self.start_sample) / self.chip_samples
        best = 0.0
        for d in (math.floor(x), math.floor(x) + 1):
            v = 0.0
            for k, w in ((d, 2.0), (d - self.t0_chips, 1.0), (d + self.t0_chips, 1.0)):
                a, b = max(k, 0), min(k + n, self.chips.size)
                if b > a:
                    v += w * abs(np.dot(self.chips[a:b], p[a - k : b - k]))
            best = max(best, v)
        return (best / (2.0 * n)) ** 2

    def explains(self, det: Detection) -> bool:
        """Whether ``det`` (inside this burst, see :meth:`covers`) is no stronger than this burst's
        own correlation at its code and lag (MARGIN_DB over the prediction, plus what noise can
        add to it, in the detection's noise units as :func:`dsp.rx.detect.sidelobe_bound` does)."""
        if not self.covers(det) or det.noise_power <= 0:
            return False
        side = self.predicted_ratio(det.code, det.start_sample) * self.level / det.noise_power
        side *= 10 ** (MARGIN_DB / 10)
        return det.lambda_peak < side + 4.0 * math.sqrt(side) + 6.0
