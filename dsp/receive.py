"""The receive chain of one CT input: comb -> channelizer -> detectors -> demodulator -> decoder.

``InputChain.process(block)`` takes samples of one input (any block size) and returns the
bursts whose last sample has arrived, as :class:`dsp.despread.BurstResult` records tagged with
the input. Each channel keeps a ring of its baseband (long enough for one burst after its
detection); a detection waits until its whole burst is in the ring, then it is demodulated.
Samples before the comb has locked (:data:`dsp.comb.LOCK_S`) are not used for detection.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from . import params as P
from .channelizer import DECIMATION, Channelizer
from .comb import LOCK_S, HarmonicComb
from .despread import BurstDemodulator, BurstResult
from .detector import Detection, DetectorBank
from . import excise as _excise

KEEP_S = 8.0  # baseband history per channel


@dataclass
class _Pending:
    det: Detection
    need_m: int  # baseband index that must be in the ring before demodulation


@dataclass
class ChainStats:
    samples_in: int = 0
    nonfinite: int = 0
    detections: int = 0
    crc_ok: int = 0
    crc_fail: int = 0
    truncated: int = 0


class InputChain:
    def __init__(self, plan: P.ChannelPlan, input_index: int = 0, fs_hz: float = 48000.0,
                 threshold: float | None = None, iterations: int = 3, excise_tones: bool = True) -> None:
        self.plan, self.input_index, self.fs_hz = plan, input_index, fs_hz
        self.excise_tones = excise_tones  # narrowband-interference excision on each burst's span (dsp.excise)
        self.comb = HarmonicComb(fs_hz, plan.grid_hz)
        self.chan = Channelizer(plan, fs_hz)
        kw = {} if threshold is None else {"threshold": threshold}
        self.bank = DetectorBank(plan.channels, plan.grid_hz, fs_hz / DECIMATION, **kw)
        self.dets = self.bank.dets  # per channel: its state machines and counters (``state``)
        self.demods = [BurstDemodulator(c, fs_hz, iterations) for c in plan.channels]
        self.keep = int(KEEP_S * fs_hz / DECIMATION)
        self.lock_samples = int(LOCK_S * fs_hz)
        self.reset()

    def reset(self) -> None:
        self.comb.reset()
        self.chan.reset()
        self.bank.reset()
        nch = len(self.plan.channels)
        self.ring = [np.zeros(0, complex) for _ in range(nch)]
        self.ring_start = [0] * nch
        self.pending: list[list[_Pending]] = [[] for _ in range(nch)]
        self.stats = ChainStats()
        self.det_time_s = 0.0

    def copy(self) -> "InputChain":
        c = InputChain.__new__(InputChain)
        c.__dict__.update(self.__dict__)
        c.comb, c.chan = self.comb.copy(), self.chan.copy()
        c.bank = self.bank.copy()
        c.dets = c.bank.dets
        c.ring = [r.copy() for r in self.ring]
        c.ring_start = list(self.ring_start)
        c.pending = [list(p) for p in self.pending]
        c.stats = ChainStats(**vars(self.stats))
        return c

    def process(self, x: np.ndarray) -> list[tuple[int, BurstResult]]:
        return self.process_baseband(self.chan.process(self.process_comb(x)))

    def process_comb(self, x: np.ndarray) -> np.ndarray:
        """The comb's share of :meth:`process` (with the lock gate and the bad-sample count)."""
        x = np.asarray(x)
        if x.ndim != 1:
            raise ValueError(f"one input at a time: got shape {x.shape}")
        n0 = self.comb.state.n
        bad0 = self.comb.state.nonfinite
        y = self.comb.process(x)
        self.stats.samples_in += x.size
        self.stats.nonfinite += self.comb.state.nonfinite - bad0
        if n0 < self.lock_samples:  # not locked yet: nothing before LOCK_S reaches the detectors
            y[: max(0, min(y.size, self.lock_samples - n0))] = 0.0
        return y

    def process_baseband(self, bb: np.ndarray) -> list[tuple[int, BurstResult]]:
        """Everything after the channelizer: detectors, rings, demodulation of complete bursts.
        (``det_time_s`` accumulates the detectors' share, for the throughput benchmark.)"""
        out = []
        t = time.perf_counter()
        found_all = self.bank.process(bb)
        self.det_time_s += time.perf_counter() - t
        for c, found in enumerate(found_all):
            self.ring[c] = np.concatenate([self.ring[c], bb[c]])
            for d in found:
                self.stats.detections += 1
                end = d.start_sample + self.demods[c].span_samples(self.plan.grid_hz)
                need = int(np.ceil((end - Channelizer.input_index(0)) / DECIMATION)) + 2
                self.pending[c].append(_Pending(d, need))
            have = self.ring_start[c] + self.ring[c].size
            still = []
            for p in self.pending[c]:
                if p.need_m <= have:
                    out.append((self.input_index, self._demod(c, p.det, p.need_m)))
                else:
                    still.append(p)
            self.pending[c] = still
            self.comb.trim_log(int(2 * KEEP_S * self.plan.grid_hz))
            drop = self.ring[c].size - self.keep
            if drop > 0:
                self.ring[c] = self.ring[c][drop:]
                self.ring_start[c] += drop
        return out

    def flush(self) -> list[tuple[int, BurstResult]]:
        """End of stream: demodulate what is still pending if its burst is complete (a burst cut
        off by the end of the stream is counted in ``stats.truncated`` and dropped). The baseband
        the impulse blanker still holds back (0.15 s) goes through the detectors first."""
        out = self.process_baseband(self.chan.flush())
        for c, found in enumerate(self.bank.flush()):
            for d in found:
                self.stats.detections += 1
                end = d.start_sample + self.demods[c].span_samples(self.plan.grid_hz)
                need = int(np.ceil((end - Channelizer.input_index(0)) / DECIMATION)) + 2
                self.pending[c].append(_Pending(d, need))
            have = self.ring_start[c] + self.ring[c].size
            for p in self.pending[c]:
                if p.need_m <= have:
                    out.append((self.input_index, self._demod(c, p.det, p.need_m)))
                else:
                    self.stats.truncated += 1
            self.pending[c] = []
        return out

    def _demod(self, c: int, d: Detection, need_m: int) -> BurstResult:
        first = int((d.start_sample - Channelizer.input_index(0)) / DECIMATION) - 16
        first = max(first, self.ring_start[c])
        # the burst's span only (the ring may hold more, depending on how the stream was cut)
        r = self.ring[c][first - self.ring_start[c]:need_m - self.ring_start[c]]
        if self.excise_tones:
            r, _ = _excise.excise_tones(r)
        f0, fund = self.comb.at(d.start_sample)
        res = self.demods[c].demodulate(r, first, d.start_sample, d.code, f0, d.lambda_peak, fund)
        if res.crc_ok:
            self.stats.crc_ok += 1
        else:
            self.stats.crc_fail += 1
        return res
